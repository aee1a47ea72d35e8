"""Process-wide logging set-up, the same in every process, with secrets redacted.

Redaction applies to the whole formatted line: message, arguments, exception text, traceback (whose source
lines and messages can hold a token) and stack information. :class:`RedactingFormatter` does it for every
handler :func:`configure_logging` installs; :class:`RedactingFilter` redacts the message alone, for handlers
whose formatter is not ours.

``LOG_FORMAT=json`` writes one JSON object per line instead (:class:`JsonFormatter`): ``time``, ``level``,
``logger``, ``message``, ``exc_info`` when there is a traceback, and the request's context when known —
``event_id`` (the Slack event, or ``trigger_id`` for a command, shortcut or button), ``job_id`` and
``model_version``. The bot binds that context at the start of each Slack request (:func:`bind_log_context`) and
the worker sets it around each job (:func:`log_context`); :class:`ContextFilter` copies it onto every record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime

# Slack tokens (xoxb-, xoxp-, xoxe-, xapp-, …) and signing-secret-like hex strings (32 hex digits or more).
_TOKEN = re.compile(r"\b(xox[a-z]|xapp)-[A-Za-z0-9-]+")
_HEX_SECRET = re.compile(r"\b[0-9A-Fa-f]{32,}\b")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The context fields a JSON line may carry, in the order they are written.
CONTEXT_FIELDS = ("event_id", "trigger_id", "job_id", "model_version")

_context: ContextVar[Mapping[str, str] | None] = ContextVar("newsbot_log_context", default=None)


def redact(text: str) -> str:
    return _HEX_SECRET.sub("***", _TOKEN.sub(r"\1-***", text))


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Within the block, every log record of this thread (or task) carries ``fields`` (None ones are left out)."""
    known = {k: str(v) for k, v in fields.items() if v}
    token = _context.set({**(_context.get() or {}), **known})
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**fields: str | None) -> None:
    """Replace this thread's (or task's) context with ``fields``, until the next call: for a request handler that
    cannot wrap the work in :func:`log_context` (a Bolt middleware returns before its listener runs)."""
    _context.set({k: str(v) for k, v in fields.items() if v})


def current_context() -> Mapping[str, str]:
    return _context.get() or {}


class ContextFilter(logging.Filter):
    """Copies the current :func:`log_context` onto each record as attributes (``record.job_id``, …)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current_context().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class RedactingFormatter(logging.Formatter):
    """A formatter whose output, traceback included, has every token and secret redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(RedactingFormatter):
    """One JSON object per line; every string in it redacted like the text format's line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value:
                payload[key] = str(value)
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            payload["exc_info"] = record.exc_text
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps({k: redact(v) for k, v in payload.items()}, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr at ``level``, as text lines or (``fmt="json"``) JSON lines, secrets redacted."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else RedactingFormatter(LOG_FORMAT))
    handler.addFilter(RedactingFilter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
