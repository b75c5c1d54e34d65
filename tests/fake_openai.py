"""A small OpenAI-compatible HTTP server on 127.0.0.1 for tests: the real `openai` client talks to it by base URL.

    from fake_openai import FakeOpenAI, Reply

    with FakeOpenAI() as fake:                      # or fake = FakeOpenAI().start(); ...; fake.stop()
        fake.reply("Russia will expel 60 US diplomats [1].")   # default reply to every chat request
        fake.enqueue(Reply(status=429), Reply(text="Retried [1]."))   # the next replies, in order
        fake.when("standalone question", "What did Guterres say?")    # reply to requests whose messages contain a text
        settings = Settings(llm_base_url=fake.base_url, ...)
        ...
        fake.chat_requests[-1]["messages"]          # what the client actually sent

Endpoints: POST /v1/chat/completions (JSON, or server-sent events with `"stream": true`), GET /v1/models,
POST /v1/embeddings (deterministic vectors, float or base64). Each chat request takes the first queued
`Reply`, else the first matching `when` rule, else the default. A `Reply` can delay, fail with a status
(and `Retry-After`), return an empty or malformed completion, cut a stream off mid-way, or never end
(`endless=True`: a stream of deltas, or a JSON body trickled a space at a time; `hangups` records when
the client gave up).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Reply:
    """How the server answers one chat request."""

    text: str = "This is a reply from the fake model."
    status: int = 200
    delay: float = 0.0  # seconds to wait before answering (to trigger client timeouts)
    retry_after: float | None = None  # seconds, sent as Retry-After with an error status
    chunk_chars: int = 8  # characters per streamed delta
    chunk_delay: float = 0.0  # seconds between streamed deltas
    truncate_after: int | None = None  # streaming: drop the connection after this many content chunks
    malformed: bool = False  # a 200 whose body is not a chat completion
    error_message: str = ""  # message in the error body of a non-200 reply
    endless: bool = False  # streaming: repeat `text` in deltas until the client hangs up (or the server stops)

    @classmethod
    def empty(cls) -> Reply:
        """A well-formed completion with no text in it."""
        return cls(text="")


@dataclass
class Request:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    received_at: float = field(default_factory=time.monotonic)


class FakeOpenAI:
    """An OpenAI-compatible server with scripted replies that records every request."""

    def __init__(self, *, api_key: str | None = None, model: str = "fake-model", embedding_dim: int = 16) -> None:
        self.api_key = api_key  # when set, requests without `Authorization: Bearer <api_key>` get 401
        self.model = model
        self.embedding_dim = embedding_dim
        self.requests: list[Request] = []
        self.hangups: list[float] = []  # time.monotonic() when a client closed an endless stream
        self._default = Reply()
        self._queue: list[Reply] = []
        self._rules: list[tuple[str, Reply | Callable[[dict[str, Any]], Reply | str]]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeOpenAI:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", port), handler)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What to put in QA_LLM_BASE_URL (or `openai.OpenAI(base_url=...)`)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting ------------------------------------------------------------------------------

    def reply(self, reply: Reply | str) -> None:
        """The default reply to chat requests that no queued reply or rule claims."""
        with self._lock:
            self._default = reply if isinstance(reply, Reply) else Reply(text=reply)

    def enqueue(self, *replies: Reply | str) -> None:
        """Replies for the next chat requests, in order (e.g. `Reply(status=429), "ok [1]."`)."""
        with self._lock:
            self._queue.extend(r if isinstance(r, Reply) else Reply(text=r) for r in replies)

    def when(self, contains: str, reply: Reply | str | Callable[[dict[str, Any]], Reply | str]) -> None:
        """Answer requests whose messages contain `contains` (case-insensitive) with `reply`."""
        with self._lock:
            self._rules.append((contains.lower(), reply if not isinstance(reply, str) else Reply(text=reply)))

    def reset(self) -> None:
        """Forget the recorded requests, queued replies and rules; the default reply goes back to a plain text."""
        with self._lock:
            self.requests.clear()
            self.hangups.clear()
            self._queue.clear()
            self._rules.clear()
            self._default = Reply()

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of the chat completion requests received so far, oldest first."""
        with self._lock:
            return [r.body for r in self.requests if r.path.endswith("/chat/completions")]

    def _pick(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
            text = "\n".join(_content_text(m.get("content")) for m in body.get("messages", []) if isinstance(m, dict)).lower()
            for contains, reply in self._rules:
                if contains in text:
                    chosen = reply(body) if callable(reply) else reply
                    return chosen if isinstance(chosen, Reply) else Reply(text=chosen)
            return self._default

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def embedding_for(text: str, dim: int) -> list[float]:
    """A deterministic unit vector for `text` (same text, same vector)."""
    raw = b"".join(hashlib.sha256(f"{i}:{text}".encode()).digest() for i in range(dim // 8 + 1))
    values = [v / 2**31 - 1.0 for v in struct.unpack(f"<{dim}I", raw[: dim * 4])]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is expected here, not a failure of the fake.
        pass


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass

    # -- plumbing -------------------------------------------------------------------------------

    def _record(self, body: Any) -> None:
        with self.fake._lock:
            self.fake.requests.append(Request(self.command, self.path, dict(self.headers.items()), body))

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        kind = {401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded"}.get(status, "server_error")
        self._send_json(status, {"error": {"message": message, "type": kind, "code": kind}}, headers)

    def _authorised(self) -> bool:
        if self.fake.api_key is None:
            return True
        if self.headers.get("Authorization", "") == f"Bearer {self.fake.api_key}":
            return True
        self._send_error(401, "Incorrect API key provided.")
        return False

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return {"_raw": raw.decode("utf-8", "replace")}

    # -- endpoints ------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._record(None)
        if not self._authorised():
            return
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": self.fake.model, "object": "model", "created": 0, "owned_by": "fake"}]})
        else:
            self._send_error(404, f"No route {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        body = self._read_json()
        self._record(body)
        if not self._authorised():
            return
        path = self.path.rstrip("/")
        if path.endswith("/chat/completions"):
            self._chat(body)
        elif path.endswith("/embeddings"):
            self._embeddings(body)
        else:
            self._send_error(404, f"No route {self.path}")

    def _chat(self, body: dict[str, Any]) -> None:
        reply = self.fake._pick(body)
        self.fake._wait(reply.delay)
        if reply.status != 200:
            headers = {"Retry-After": f"{reply.retry_after:g}"} if reply.retry_after is not None else {}
            self._send_error(reply.status, reply.error_message or f"Fake error {reply.status}", headers)
            return
        model = body.get("model", self.fake.model)
        if reply.malformed:
            self._send_json(200, {"unexpected": "shape", "model": model})
            return
        if body.get("stream"):
            self._stream(model, reply, include_usage=bool((body.get("stream_options") or {}).get("include_usage")))
            return
        if reply.endless:
            self._trickle(reply)
            return
        self._send_json(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )

    def _stream(self, model: str, reply: Reply, *, include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: bool = False) -> dict[str, Any]:
            data: dict[str, Any] = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if usage:
                data["usage"] = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            return data

        def send(event: dict[str, Any]) -> None:
            self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())

        pieces = [reply.text[i : i + reply.chunk_chars] for i in range(0, len(reply.text), max(reply.chunk_chars, 1))]
        send(chunk({"role": "assistant", "content": ""}))
        if reply.endless:
            try:
                while not self.fake._stopping.is_set():
                    for piece in pieces:
                        self.fake._wait(reply.chunk_delay)
                        send(chunk({"content": piece}))
            except OSError:  # the client hung up: what a deadline must make it do
                with self.fake._lock:
                    self.fake.hangups.append(time.monotonic())
            self.close_connection = True
            return
        for n, piece in enumerate(pieces):
            if reply.truncate_after is not None and n >= reply.truncate_after:
                self._write_chunk(b'data: {"id": "chatcmpl-fa')  # half an event, then the line drops
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.fake._wait(reply.chunk_delay)
            send(chunk({"content": piece}))
        send(chunk({}, finish="stop"))
        if include_usage:
            send(chunk({}, usage=True))
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")

    def _trickle(self, reply: Reply) -> None:
        """A JSON reply that never ends: a space (valid leading JSON whitespace) every `chunk_delay` seconds."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while not self.fake._stopping.is_set():
                self._write_chunk(b" ")
                self.fake._wait(max(reply.chunk_delay, 0.01))
        except OSError:
            with self.fake._lock:
                self.fake.hangups.append(time.monotonic())
        self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _embeddings(self, body: dict[str, Any]) -> None:
        inputs = body.get("input", [])
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        dim = int(body.get("dimensions") or self.fake.embedding_dim)
        data = []
        for i, item in enumerate(inputs):
            vector = embedding_for(item if isinstance(item, str) else json.dumps(item), dim)
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        self._send_json(200, {"object": "list", "data": data, "model": body.get("model", "fake-embed"), "usage": {"prompt_tokens": 1, "total_tokens": 1}})


def serve(**kwargs: Any) -> Iterator[FakeOpenAI]:
    """Run a `FakeOpenAI` for the duration of a `with`/fixture; kwargs go to `FakeOpenAI`."""
    fake = FakeOpenAI(**kwargs).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    """One fake server for the session; use `fake_openai` for a clean script per test."""
    yield from serve()


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The session's fake server, reset before each test (import both fixtures into your test module)."""
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()
