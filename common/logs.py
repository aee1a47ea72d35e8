"""Process-wide logging set-up, the same in every process, with secrets redacted.

Redaction applies to the whole formatted line: message, arguments, exception text, traceback (whose source
lines and messages can hold a token) and stack information. :class:`RedactingFormatter` does it for every
handler :func:`configure_logging` installs; :class:`RedactingFilter` redacts the message alone, for handlers
whose formatter is not ours.
"""

from __future__ import annotations

import logging
import re

# Slack tokens (xoxb-, xoxp-, xoxe-, xapp-, …) and signing-secret-like hex strings (32 hex digits or more).
_TOKEN = re.compile(r"\b(xox[a-z]|xapp)-[A-Za-z0-9-]+")
_HEX_SECRET = re.compile(r"\b[0-9A-Fa-f]{32,}\b")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def redact(text: str) -> str:
    return _HEX_SECRET.sub("***", _TOKEN.sub(r"\1-***", text))


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


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
