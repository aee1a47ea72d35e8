"""A local fake of the Slack Web API over real HTTP, in the spirit of bolt-python's mock_web_api_server.

It records every call and answers like Slack does for the methods the product uses. Code under test
reaches it through slack_sdk's ``base_url`` (SLACK_API_URL). Faults can be scripted per method
(HTTP status with headers, a delay longer than the client's timeout, or Slack's ``{"ok": false, "error": …}``),
and rate limits too (every n-th call answered 429 with Retry-After). ``token_error`` answers every Web API call
with that error, as Slack does once the token is revoked (``token_revoked``, ``invalid_auth``, …). Channels the
bot is not in, known channels and thread messages can be set up.

Messages are checked against Slack's size limits (:func:`message_error`) on chat.postMessage, chat.update,
chat.postEphemeral and response_url posts, and refused the way Slack refuses them (``invalid_blocks``,
``msg_blocks_too_long``, ``msg_too_long``); a refused call is recorded with its ``error`` and is not
``delivered``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse

from testkit.waiting import wait_until


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    status: int = 200
    at: float = field(default_factory=time.time)
    # Slack's ``error`` when it refused the call (``{"ok": false}``), else None.
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status == 200 and self.error is None


# Slack's limits on one message (https://docs.slack.dev/reference/block-kit/blocks). Slack's block-text limit is
# not documented; ``msg_blocks_too_long`` has been reported from about 12,000 characters of block text on.
MAX_BLOCKS = 50
MAX_TEXT_OBJECT_CHARS = 3000
MAX_CONTEXT_ELEMENTS = 10
MAX_BLOCK_ID_CHARS = 255
MAX_BUTTON_TEXT_CHARS = 75
MAX_BUTTON_VALUE_CHARS = 2000
MAX_BLOCKS_TEXT_CHARS = 12_000
# Slack truncates ``text`` past 40,000 characters and advises at most 4,000; the fake refuses past 4,000, so a
# test notices a reply that leans on the truncation.
MAX_MESSAGE_TEXT_CHARS = 4000
MESSAGE_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral", "response_url"})


def _text_objects(value: Any) -> list[dict[str, Any]]:
    """Every text object (``{"type": "mrkdwn"|"plain_text", "text": ...}``) anywhere in ``value``."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if value.get("type") in ("mrkdwn", "plain_text") and isinstance(value.get("text"), str):
            found.append(value)
        for child in value.values():
            found.extend(_text_objects(child))
    elif isinstance(value, list):
        for child in value:
            found.extend(_text_objects(child))
    return found


def _block_error(block: Any) -> str | None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return "invalid_blocks"
    if len(str(block.get("block_id") or "")) > MAX_BLOCK_ID_CHARS:
        return "invalid_blocks"
    if any(len(t["text"]) > MAX_TEXT_OBJECT_CHARS for t in _text_objects(block)):
        return "invalid_blocks"
    if block["type"] == "section" and not (block.get("text") or block.get("fields")):
        return "invalid_blocks"
    if block["type"] == "context" and not 0 < len(block.get("elements") or []) <= MAX_CONTEXT_ELEMENTS:
        return "invalid_blocks"
    for element in block.get("elements") or []:
        if isinstance(element, dict) and element.get("type") == "button":
            if len(str(element.get("value") or "")) > MAX_BUTTON_VALUE_CHARS:
                return "invalid_blocks"
            if len(str((element.get("text") or {}).get("text") or "")) > MAX_BUTTON_TEXT_CHARS:
                return "invalid_blocks"
    return None


def message_error(params: dict[str, Any]) -> str | None:
    """The error Slack answers a message with (``text`` and ``blocks``) that breaks its limits; None if it is fine."""
    blocks = params.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return "invalid_blocks_format"
    text = params.get("text")
    if not blocks and not text and not params.get("attachments"):
        return "no_text"
    if len(str(text or "")) > MAX_MESSAGE_TEXT_CHARS:
        return "msg_too_long"
    if blocks:
        if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
            return "invalid_blocks"
        for block in blocks:
            problem = _block_error(block)
            if problem:
                return problem
        if sum(len(t["text"]) for t in _text_objects(blocks)) > MAX_BLOCKS_TEXT_CHARS:
            return "msg_blocks_too_long"
    return None


@dataclass
class Fault:
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    # Slack's refusal: HTTP 200 with ``{"ok": false, "error": error}`` (``status`` is then ignored).
    error: str | None = None


class FakeSlack:
    def __init__(self, host: str = "127.0.0.1") -> None:
        """``host``: the address to listen on; "0.0.0.0" lets containers reach it (testkit/compose_check.py)."""
        self.calls: list[Call] = []
        self.faults: dict[str, list[Fault]] = {}
        # users.info answers by user id; a user without a ``team_id`` belongs to this workspace (``team_id``),
        # as auth.test reports it. Give one another team_id for a Slack Connect partner's user.
        self.team_id = "T0001"
        # When set, auth.test answers ``{"ok": false, "error": auth_error}`` (a revoked token: token_revoked, …).
        self.auth_error: str | None = None
        self.users: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, bytes] = {}
        # usergroups.users.list answers by user group id (unknown ids: no_such_subteam).
        self.usergroups: dict[str, list[str]] = {}
        # Where apps.connections.open sends Socket Mode clients (a FakeSocketMode's URL), when set.
        self.socket_mode_url: str | None = None
        self.public_base: str | None = None
        # conversations.info answers by channel id (unknown ids: channel_not_found); conversations.replies
        # answers the message stored under (channel, thread ts); posts and reactions in ``not_in`` channels are
        # refused with not_in_channel, as Slack does when the bot is not a member.
        self.channels: dict[str, dict[str, Any]] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.not_in: set[str] = set()
        # The reactions added, by (channel, ts); adding one again answers already_reacted, as Slack does.
        self.reactions: dict[tuple[str, str], list[str]] = {}
        # method → (every n-th call answered 429, Retry-After seconds); see rate_limit().
        self.rate_limits: dict[str, tuple[int, int]] = {}
        # When set, every Web API call is answered ``{"ok": false, "error": token_error}`` (a dead token).
        self.token_error: str | None = None
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._server = ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        """Where clients reach it: ``public_base`` when set (a container reaches a fake listening on 0.0.0.0 at
        the compose network's gateway), else the address it listens on. Upload and response URLs use it too."""
        if self.public_base:
            return self.public_base
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def response_url(self, name: str = "cmd") -> str:
        return f"{self.base}/response/{name}"

    # -- inspection ------------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.faults.clear()
            self.channels.clear()
            self.messages.clear()
            self.not_in.clear()
            self.reactions.clear()
            self.usergroups.clear()
            self.uploads.clear()  # a file an earlier test uploaded is not this test's
            self.rate_limits.clear()
            self.token_error = None
            self._counts.clear()
            self.auth_error = None

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, predicate: Callable[[FakeSlack], bool], timeout: float = 30.0) -> None:
        def calls() -> str:
            return f"calls so far: {[c.method for c in self.calls]}"

        wait_until(lambda: predicate(self), "the fake Slack", timeout, details=calls)

    def wait_for_calls(self, method: str, count: int = 1, timeout: float = 30.0) -> list[Call]:
        self.wait_for(lambda s: len(s.calls_to(method)) >= count, timeout)
        return self.calls_to(method)

    def responses(self, name: str) -> list[dict[str, Any]]:
        """What was posted to :meth:`response_url` ``name``, oldest first."""
        return [c.params for c in self.calls_to("response_url") if c.params.get("_name") == name]

    def wait_responses(self, name: str, count: int = 1, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Until ``count`` posts reached :meth:`response_url` ``name``; all of them."""
        self.wait_for(lambda s: len(s.responses(name)) >= count, timeout)
        return self.responses(name)

    def wait_response(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """The first post to :meth:`response_url` ``name``, once there is one."""
        return self.wait_responses(name, 1, timeout)[0]

    def fail(self, method: str, *faults: Fault) -> None:
        with self._lock:
            self.faults.setdefault(method, []).extend(faults)

    def rate_limit(self, method: str, every: int, retry_after: int = 1) -> None:
        """Answer every ``every``-th call of ``method`` with HTTP 429 and ``Retry-After: retry_after``."""
        with self._lock:
            self.rate_limits[method] = (every, retry_after)

    def add_channel(
        self,
        channel: str,
        *,
        member: bool = True,
        private: bool = False,
        ext_shared: bool = False,
        archived: bool = False,
        **info: Any,
    ) -> None:
        """A channel conversations.info knows, with its audience as Slack describes it (``is_private``,
        ``is_ext_shared``) and ``is_archived``; with ``member=False`` posts and reactions there are refused, and in
        an archived channel posts are refused with ``is_archived``."""
        self.channels[channel] = {
            "id": channel,
            "is_channel": True,
            "is_member": member,
            "is_private": private,
            "is_ext_shared": ext_shared,
            "is_archived": archived,
            **info,
        }
        if not member:
            self.not_in.add(channel)

    def update_channel(self, channel: str, **info: Any) -> None:
        """Change what conversations.info says of a known channel (``is_ext_shared=True``: it was shared, …)."""
        with self._lock:
            self.channels[channel] = {**self.channels[channel], **info}

    def _rate_limited(self, method: str) -> Fault | None:
        """Under the lock: the 429 this call gets, if ``rate_limit`` says so."""
        if method not in self.rate_limits:
            return None
        every, retry_after = self.rate_limits[method]
        self._counts[method] = self._counts.get(method, 0) + 1
        if self._counts[method] % every:
            return None
        return Fault(status=429, headers={"Retry-After": str(retry_after)})

    # -- Slack's answers -------------------------------------------------------------------------
    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "apps.connections.open":
            if not self.socket_mode_url:
                return {"ok": False, "error": "socket_mode_disabled"}
            return {"ok": True, "url": self.socket_mode_url}
        if method == "auth.test":
            if self.auth_error:
                return {"ok": False, "error": self.auth_error}
            return {
                "ok": True,
                "url": "https://fake.slack.test/",
                "team": "Fake",
                "user": "newsbot",
                "team_id": self.team_id,
                "user_id": "UBOT",
                "bot_id": "BBOT",
            }
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral", "reactions.add"):
            if not params.get("channel"):
                return {"ok": False, "error": "channel_not_found"}
            if params["channel"] in self.not_in:
                return {"ok": False, "error": "not_in_channel"}
            if (self.channels.get(str(params["channel"])) or {}).get("is_archived"):
                return {"ok": False, "error": "is_archived"}
        if method == "reactions.add":
            with self._lock:
                added = self.reactions.setdefault((str(params["channel"]), str(params.get("timestamp"))), [])
                if params.get("name") in added:
                    return {"ok": False, "error": "already_reacted"}
                added.append(str(params.get("name")))
            return {"ok": True}
        if method == "chat.getPermalink":
            ts = str(params.get("message_ts", "")).replace(".", "")
            return {"ok": True, "permalink": f"https://fake.slack.test/archives/{params.get('channel')}/p{ts}"}
        if method == "conversations.info":
            known = self.channels.get(str(params.get("channel")))
            return {"ok": True, "channel": known} if known else {"ok": False, "error": "channel_not_found"}
        if method == "conversations.replies":
            if params.get("channel") in self.not_in:
                return {"ok": False, "error": "not_in_channel"}
            parent = self.messages.get((str(params.get("channel")), str(params.get("ts"))))
            return {"ok": True, "messages": [parent]} if parent else {"ok": False, "error": "thread_not_found"}
        if method in ("chat.postMessage", "chat.update"):
            ts = params.get("ts") if method == "chat.update" else f"{int(time.time())}.{next(self._ts):06d}"
            return {
                "ok": True,
                "channel": params["channel"],
                "ts": ts,
                "message": {"text": params.get("text", ""), "ts": ts},
            }
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{int(time.time())}.{next(self._ts):06d}"}
        if method == "users.info":
            user = self.users.get(
                str(params.get("user")), {"id": params.get("user"), "is_admin": False, "is_owner": False}
            )
            return {"ok": True, "user": {"team_id": self.team_id, **user}}
        if method == "usergroups.users.list":
            members = self.usergroups.get(str(params.get("usergroup")))
            return (
                {"ok": True, "users": list(members)}
                if members is not None
                else {"ok": False, "error": "no_such_subteam"}
            )
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ts):08d}"
            return {"ok": True, "upload_url": f"{self.base}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = params.get("files")
            if isinstance(files, str):
                files = json.loads(files)
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title", "")} for f in files or []]}
        if method == "views.publish":
            return self._views_publish(params)
        return {"ok": False, "error": "unknown_method"}

    # Slack's own limits on a Home view, which views.publish refuses beyond.
    HOME_MAX_BLOCKS = 100
    SECTION_TEXT_MAX = 3000

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        """Answer like Slack: the view must be a home view within Slack's limits, for a user."""
        view = params.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not params.get("user_id") or not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        blocks = view.get("blocks") or []
        too_long = [b for b in blocks if len(((b.get("text") or {}).get("text")) or "") > self.SECTION_TEXT_MAX]
        if len(blocks) > self.HOME_MAX_BLOCKS or too_long:
            return {"ok": False, "error": "invalid_blocks"}
        return {"ok": True, "view": {"id": f"V{next(self._ts):08d}", "type": "home", "blocks": blocks}}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = urlparse(self.path).path
                headers = {k.lower(): v for k, v in self.headers.items()}
                if path.startswith("/upload/"):
                    fake.uploads[path.rsplit("/", 1)[-1]] = raw
                    with fake._lock:
                        fake.calls.append(Call("upload", {"size": len(raw)}, headers))
                    self._reply(200, b"OK")
                    return
                ctype = headers.get("content-type", "")
                params: dict[str, Any]
                if "json" in ctype:
                    params = json.loads(raw or b"{}")
                else:
                    params = dict(parse_qsl(raw.decode("utf-8", "replace")))
                # GET methods (conversations.info, conversations.replies, chat.getPermalink) send a query string.
                params.update(parse_qsl(urlparse(self.path).query))
                if path.startswith("/response/"):
                    method = "response_url"
                    params["_name"] = path.rsplit("/", 1)[-1]
                else:
                    method = path.removeprefix("/api/")
                with fake._lock:
                    fault = fake.faults[method].pop(0) if fake.faults.get(method) else fake._rate_limited(method)
                    if fault is None and fake.token_error and method != "response_url":
                        fault = Fault(error=fake.token_error)
                    call = Call(method, params, headers, fault.status if fault else 200)
                    if fault is not None and fault.error:
                        call.status, call.error = 200, fault.error
                    fake.calls.append(call)
                if fault is not None and fault.error:
                    if fault.delay_s:
                        time.sleep(fault.delay_s)
                    self._reply(200, json.dumps({"ok": False, "error": fault.error}).encode())
                    return
                if fault is not None:
                    if fault.delay_s:
                        time.sleep(fault.delay_s)
                    err = json.dumps({"ok": False, "error": "fault_injected"}).encode()
                    self._reply(fault.status, err, fault.headers)
                    return
                error = message_error(params) if method in MESSAGE_METHODS else None
                if error is not None:
                    # The Web API answers HTTP 200 with ok: false; response_url (like incoming webhooks) a 400.
                    status = 400 if method == "response_url" else 200
                    with fake._lock:
                        call.error, call.status = error, status
                    self._reply(status, json.dumps({"ok": False, "error": error}).encode())
                    return
                answer = {"ok": True} if method == "response_url" else fake._answer(method, params)
                self._reply(200, json.dumps(answer).encode())

            do_GET = do_POST

        return Handler
