"""A small stand-in for Slack on 127.0.0.1, for tests.

`FakeSlack` speaks the Web API methods the bot uses (auth.test, chat.postMessage, chat.update,
chat.postEphemeral, conversations.replies, apps.connections.open) to the real `slack_sdk.WebClient`
pointed at `base_url`, keeps the messages it was sent per channel, and records every call.
`signed_headers`, `event_envelope` and `click_payload` build requests the way Slack signs and sends them.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-fake-app-token"
SIGNING_SECRET = "fake-signing-secret"
TEAM_ID = "T0FAKE"
BOT_USER_ID = "UQABOT"
BOT_ID = "BQABOT"
USER_ID = "UALICE"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None = None


@dataclass
class FakeSlack:
    """Slack's Web API with fixed answers; `wait_for` polls the recorded calls until they appear."""

    bot_token: str = BOT_TOKEN
    app_token: str = APP_TOKEN
    socket_url: str | None = None
    failures: dict[str, str] = field(default_factory=dict)  # method -> Slack error code to answer with
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._ts = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                url = urlsplit(self.path)
                params: dict[str, Any] = dict(parse_qsl(url.query))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if body:
                    if "json" in (self.headers.get("Content-Type") or ""):
                        params.update(json.loads(body))
                    else:
                        params.update(parse_qsl(body.decode("utf-8")))
                auth = self.headers.get("Authorization") or ""
                token = auth.removeprefix("Bearer ") or params.get("token")
                method = url.path.rsplit("/", 1)[-1]
                result = fake._answer(method, params, token)
                data = json.dumps(result).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/api/"

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what tests look at ----------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def wait_for(
        self, method: str, where: Callable[[Call], bool] = lambda c: True, *, count: int = 1, timeout: float = 30.0
    ) -> list[Call]:
        """The calls to `method` matching `where`, once there are `count` of them; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self.calls if c.method == method and where(c)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(c.method, c.params.get("text")) for c in self.calls]
                    raise AssertionError(f"no {count} x {method} within {timeout}s; calls so far: {seen}")
                self._cond.wait(left)

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        with self._cond:
            return [
                dict(m)
                for m in self.messages.get(channel, [])
                if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts
            ]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        with self._cond:
            return dict(next(m for m in self.messages.get(channel, []) if m["ts"] == ts))

    # -- what people do in Slack -------------------------------------------------------------------

    def user_says(self, channel: str, text: str, *, user: str = USER_ID, thread_ts: str | None = None, im: bool = False,
                  event_type: str | None = None) -> dict[str, Any]:
        """Store a person's message and return the event Slack would deliver for it."""
        message: dict[str, Any] = {"type": "message", "user": user, "text": text, "ts": self.next_ts()}
        if thread_ts:
            message["thread_ts"] = thread_ts
        with self._cond:
            self.messages.setdefault(channel, []).append(message)
        event = dict(message, channel=channel, event_ts=message["ts"], team=TEAM_ID)
        if im:
            event["channel_type"] = "im"
        event["type"] = event_type or ("message" if im else "app_mention")
        return event

    def next_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.000100"

    # -- the Web API -----------------------------------------------------------------------------

    def _answer(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        with self._cond:
            self.calls.append(Call(method, params, token))
            self._cond.notify_all()
            if method in self.failures:
                return {"ok": False, "error": self.failures[method]}
            expected = self.app_token if method == "apps.connections.open" else self.bot_token
            if token != expected:
                return {"ok": False, "error": "invalid_auth"}
            handler = getattr(self, "_" + method.replace(".", "_"), None)
            if handler is None:
                return {"ok": False, "error": "unknown_method"}
            result: dict[str, Any] = handler(params)
            return result

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.test/",
            "team": "Fake",
            "user": "qa",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params["channel"]
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": params.get("text", ""),
                   "ts": self.next_ts()}
        if params.get("blocks"):
            message["blocks"] = _blocks(params["blocks"])
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        self.messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        for message in self.messages.get(params["channel"], []):
            if message["ts"] == params["ts"]:
                message["text"] = params.get("text", "")
                message["blocks"] = _blocks(params.get("blocks") or [])
                return {"ok": True, "channel": params["channel"], "ts": params["ts"], "text": message["text"]}
        return {"ok": False, "error": "message_not_found"}

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": self.next_ts()}

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params["channel"], params["ts"]
        thread = [
            dict(m) for m in self.messages.get(channel, []) if m["ts"] == ts or m.get("thread_ts") == ts
        ]
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        return {"ok": True, "messages": thread, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.socket_url:
            return {"ok": False, "error": "not_allowed_token_type"}
        return {"ok": True, "url": self.socket_url}


def _blocks(value: Any) -> list[dict[str, Any]]:
    blocks = json.loads(value) if isinstance(value, str) else value
    return list(blocks)


# -- requests as Slack sends them ------------------------------------------------------------------


def signed_headers(body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None,
                   content_type: str = "application/json") -> dict[str, str]:
    """X-Slack-Signature v0: HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def event_envelope(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "A0FAKE",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{event['ts'].replace('.', '')}",
        "event_time": int(float(event["ts"])),
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }


def click_payload(message: dict[str, Any], channel: str, action_id: str, *, user: str = USER_ID) -> dict[str, Any]:
    """The block_actions payload Slack sends when `user` clicks the button `action_id` on `message`."""
    button = next(
        e for b in message.get("blocks", []) if b["type"] == "actions" for e in b["elements"] if e["action_id"] == action_id
    )
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "alice", "team_id": TEAM_ID},
        "api_app_id": "A0FAKE",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel, "is_ephemeral": False,
                      "thread_ts": message.get("thread_ts")},
        "trigger_id": "1.2.3",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "channel": {"id": channel, "name": "general"},
        "message": message,
        "response_url": "https://hooks.slack.test/actions/1",
        "actions": [
            {"type": "button", "action_id": action_id, "block_id": "qa_feedback", "value": button["value"],
             "text": button["text"], "action_ts": str(time.time())}
        ],
    }
