"""`qa serve`: the engine over HTTP. OpenAI-compatible chat, `/v1/ask`, document management, health, metrics.

`build_app(engine)` returns the FastAPI app (for tests and embedding); `serve_command` is `qa serve`.
Front-end rules as everywhere: parse, call the engine, render. Every error leaves as JSON in
OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`), never as a traceback.

What is per process: the engines (one per collection, sharing the model), their corpus caches,
the concurrency slots and the metrics. The index itself is Chroma's: with `QA_CHROMA_HOST` every
copy reads the same one and reloads its corpus when the store's generation changes.
"""

# No `from __future__ import annotations`: FastAPI reads the route handlers' hints at definition time,
# and the request models are local to build_app.
import asyncio
import hashlib
import hmac
import json
import logging
import math
import queue
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from qa.errors import ConfigError, IndexMissingError, InputError, QAError, StoreError
from qa.types import MARKER

if TYPE_CHECKING:
    from fastapi import FastAPI

    from qa.engine import Engine
    from qa.settings import Settings
    from qa.types import Answer

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_UPLOAD_SLACK = 64_000  # multipart framing around an upload of exactly QA_MAX_UPLOAD_MB
_PATHS = (
    "/v1/chat/completions", "/v1/models", "/v1/ask", "/v1/documents", "/v1/documents:reindex", "/healthz", "/metrics",
)


class ApiError(Exception):
    """An error reply: HTTP status plus OpenAI's error fields."""

    def __init__(
        self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,  # noqa: A002
        param: str | None = None, headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def api_error(exc: BaseException, settings: "Settings") -> ApiError:
    """Our errors by type, to the status a client can act on; anything else is a 500 without details."""
    from qa.errors import QuestionTooLongError

    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, QuestionTooLongError):
        return ApiError(413, str(exc), code="question_too_long")
    if isinstance(exc, InputError):
        if "over the" in str(exc):  # an upload over QA_MAX_UPLOAD_MB (qa.ui.save_upload)
            return ApiError(413, str(exc), code="too_large")
        return ApiError(400, str(exc), code="invalid_input")
    if isinstance(exc, ConfigError):
        return ApiError(400, str(exc), code="invalid_value")
    if isinstance(exc, IndexMissingError):
        return ApiError(503, str(exc), type="server_error", code="index_missing")
    if isinstance(exc, StoreError):
        return ApiError(503, str(exc), type="server_error", code="store_unavailable")
    if isinstance(exc, QAError):
        return ApiError(500, str(exc), type="server_error", code="qa_error")
    detail = f" ({type(exc).__name__}: {exc})" if settings.debug else ""
    return ApiError(500, f"Internal error{detail}; the details are in the server log.", type="server_error", code="internal_error")


# -- Markdown: documents are untrusted, so their text can't become links, images or HTML ------------

_MD_SPECIAL = frozenset("\\`*_{}[]()<>#|~!&")
_OPEN_MARKER = re.compile(r"\[[\d\s,;]{0,24}$")  # what may still become a `MARKER` when the next delta comes


def escape_markdown(text: str) -> str:
    """`text` shown literally by a Markdown renderer, except `[n]` citation markers."""
    out, at = [], 0
    for marker in MARKER.finditer(text):
        out.append(_escape_md(text[at : marker.start()]))
        out.append(marker.group(0))
        at = marker.end()
    out.append(_escape_md(text[at:]))
    return "".join(out)


def _escape_md(text: str) -> str:
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


class MarkdownStream:
    """`escape_markdown` over streamed deltas: holds back a `[1` until its `]` arrives, so markers survive splits."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, delta: str) -> str:
        self._pending += delta
        held = _OPEN_MARKER.search(self._pending)
        cut = held.start() if held else len(self._pending)
        out, self._pending = self._pending[:cut], self._pending[cut:]
        return escape_markdown(out)

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return escape_markdown(out)


def sources_markdown(answer: "Answer") -> str:
    """The "Sources" list that follows an answer: `[n] file, paragraph p (chars a-b): “quote”`."""
    if not answer.citations:
        return ""
    lines = ["", "", "**Sources**", ""]
    for c in answer.citations:
        quote = " ".join(c.quote.split())
        quote = quote if len(quote) <= 300 else quote[:299] + "…"
        lines.append(
            f"- [{c.n}] {escape_markdown(c.source)}, paragraph {c.paragraph} (chars {c.start}-{c.end}): “{escape_markdown(quote)}”"
        )
    return "\n".join(lines)


def notice_markdown(answer: "Answer") -> str:
    return f"\n\n_{escape_markdown(answer.notice)}_" if answer.notice else ""


def answer_markdown(answer: "Answer") -> str:
    """The whole reply content: the answer with `[n]` markers, any notice, then the sources."""
    return escape_markdown(answer.text) + notice_markdown(answer) + sources_markdown(answer)


def message_extras(answer: "Answer") -> dict[str, Any]:
    """What `qa` adds to OpenAI's assistant message: citations (Answer.citations' fields) and flags."""
    return {
        "citations": [c.to_dict() for c in answer.citations],
        "abstained": answer.abstained,
        "grounded": answer.grounded,
        "mode": answer.mode,
        "notice": answer.notice,
    }


# -- metrics (Prometheus text format; per process) -------------------------------------------------


class Metrics:
    """Request counts, a latency histogram, abstentions and LLM fallbacks, in Prometheus' text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, list[int]] = {}  # path -> counts per bucket (+Inf last)
        self.latency_sum: dict[str, float] = {}
        self.answers = 0
        self.abstentions = 0
        self.fallbacks = 0
        self.rejected: dict[int, int] = {}

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, path, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            counts = self.latency.setdefault(path, [0] * (len(_LATENCY_BUCKETS) + 1))
            for i, bound in enumerate(_LATENCY_BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self.latency_sum[path] = self.latency_sum.get(path, 0.0) + seconds
            if status in (413, 429):
                self.rejected[status] = self.rejected.get(status, 0) + 1

    def answered(self, answer: "Answer", *, llm_enabled: bool) -> None:
        with self._lock:
            self.answers += 1
            self.abstentions += int(answer.abstained)
            self.fallbacks += int(llm_enabled and answer.notice is not None)

    def render(self) -> str:
        with self._lock:
            out = [
                "# HELP qa_requests_total HTTP requests by method, path and status.",
                "# TYPE qa_requests_total counter",
            ]
            for (method, path, status), n in sorted(self.requests.items()):
                out.append(f'qa_requests_total{{method="{method}",path="{path}",status="{status}"}} {n}')
            out += [
                "# HELP qa_request_duration_seconds Time from request to the last byte of the response.",
                "# TYPE qa_request_duration_seconds histogram",
            ]
            for path, counts in sorted(self.latency.items()):
                for bound, n in zip([*map(str, _LATENCY_BUCKETS), "+Inf"], counts):
                    out.append(f'qa_request_duration_seconds_bucket{{path="{path}",le="{bound}"}} {n}')
                out.append(f'qa_request_duration_seconds_sum{{path="{path}"}} {self.latency_sum[path]:.6f}')
                out.append(f'qa_request_duration_seconds_count{{path="{path}"}} {counts[-1]}')
            out += [
                "# HELP qa_answers_total Answers given (chat completions and /v1/ask).",
                "# TYPE qa_answers_total counter",
                f"qa_answers_total {self.answers}",
                "# HELP qa_abstentions_total Answers that said the documents don't say.",
                "# TYPE qa_abstentions_total counter",
                f"qa_abstentions_total {self.abstentions}",
                "# HELP qa_llm_fallbacks_total LLM answers replaced by the extractive one (model unavailable or failed).",
                "# TYPE qa_llm_fallbacks_total counter",
                f"qa_llm_fallbacks_total {self.fallbacks}",
                "# HELP qa_rejected_total Requests refused by a limit (413 too large, 429 busy).",
                "# TYPE qa_rejected_total counter",
            ]
            for status, n in sorted(self.rejected.items()):
                out.append(f'qa_rejected_total{{status="{status}"}} {n}')
            return "\n".join(out) + "\n"


# -- limits ----------------------------------------------------------------------------------------


class Slots:
    """`size` questions at once, at most `queue` waiting, each at most `timeout` s; past that, 429 at once."""

    def __init__(self, size: int, queue: int, timeout: float) -> None:
        self._size, self._queue, self._timeout = max(1, size), max(0, queue), timeout
        self._semaphore: asyncio.Semaphore | None = None
        self._waiting = 0

    @property
    def semaphore(self) -> asyncio.Semaphore:
        if self._semaphore is None:  # created inside the server's event loop
            self._semaphore = asyncio.Semaphore(self._size)
        return self._semaphore

    async def acquire(self) -> None:
        busy = ApiError(
            429, "Too many questions at once; retry in a moment.", type="rate_limit_error", code="busy",
            headers={"Retry-After": "1"},
        )
        if not self.semaphore.locked():
            # Taken without yielding to the loop: a `wait_for` here would let the requests arriving
            # in the same instant all see a free slot and queue behind it, past QA_API_QUEUE.
            await self.semaphore.acquire()
            return
        if self._waiting >= self._queue:
            raise busy
        self._waiting += 1
        try:
            await asyncio.wait_for(self.semaphore.acquire(), timeout=self._timeout)
        except TimeoutError as exc:
            raise busy from exc
        finally:
            self._waiting -= 1

    def release(self) -> None:
        self.semaphore.release()


class ClientRate:
    """`qa serve`'s per-client limit: `qa/ratelimit.py`'s token bucket (the chat page's), answering as the API does.

    The client is the API key when keys are set (several users behind one proxy address stay apart),
    else the peer address; past the limit, 429 in OpenAI's error shape with `Retry-After`.
    """

    def __init__(self, per_minute: float, burst: int, *, max_clients: int = 10_000) -> None:
        from qa.ratelimit import RateLimiter

        self.limiter = RateLimiter(per_minute, burst, max_clients=max_clients)

    def check(self, client: str) -> None:
        allowed, wait = self.limiter.allow(client)
        if not allowed:
            seconds = max(1, math.ceil(wait))
            raise ApiError(
                429, f"Too many requests from this client; retry in {seconds} s.", type="rate_limit_error",
                code="rate_limited", headers={"Retry-After": str(seconds)},
            )


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a body over the limit (by Content-Length or as it arrives) gets 413 before it is parsed."""

    def __init__(self, app: Any, *, limit: int, upload_limit: int, on_reject: Any) -> None:
        self.app, self.limit, self.upload_limit, self.on_reject = app, limit, upload_limit, on_reject

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["method"] == "POST" and scope["path"] == "/v1/documents" else self.limit
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(scope, send, limit)
            return
        seen = 0
        started = exceeded = False

        async def limited_receive() -> Any:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def tracking_send(message: Any) -> None:
            # A handler that caught the overflow as a parse error replies 413 all the same.
            nonlocal started
            if exceeded:
                if not started:
                    started = True
                    await self._reject(scope, send, limit)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                started = True
                await self._reject(scope, send, limit)

    async def _reject(self, scope: dict[str, Any], send: Any, limit: int) -> None:
        error = ApiError(413, f"The request body is over the {limit:,}-byte limit.", code="request_too_large")
        body = json.dumps(error.body()).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        self.on_reject(scope, 413)


class Timing:
    """ASGI middleware: every response, streamed ones to their last byte, goes into the metrics."""

    def __init__(self, app: Any, *, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def tracking_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            path = scope["path"]
            path = path if path in _PATHS else ("/v1/documents/{id}" if path.startswith("/v1/documents/") else "other")
            self.metrics.observe(scope["method"], path, status, time.perf_counter() - started)


# -- the service -----------------------------------------------------------------------------------


class Service:
    """What the routes share: the engines by collection, slots, metrics, keys."""

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self.settings = engine.settings
        self.metrics = Metrics()
        self.slots = Slots(self.settings.api_concurrency, self.settings.api_queue, self.settings.api_queue_timeout)
        self.rate = ClientRate(self.settings.api_rate_per_minute, self.settings.api_rate_burst)
        self._engines: dict[str, Engine] = {self.settings.collection: engine}
        self._lock = threading.Lock()
        raw = self.settings.api_keys.get_secret_value() if self.settings.api_keys else ""
        self.keys = [k.strip().encode() for k in raw.split(",") if k.strip()]

    # auth: every key compared in full, so the time taken says nothing about which key or how much matched
    def check_key(self, authorization: str | None, client: str) -> None:
        if not self.keys:
            self.rate.check(client)
            return
        scheme, _, token = (authorization or "").partition(" ")
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        ok = False
        for key in self.keys:
            ok |= hmac.compare_digest(given, key)
        if not ok:
            message = "Missing API key: send `Authorization: Bearer <key>`." if not given else "Incorrect API key."
            raise ApiError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        self.rate.check("key:" + hashlib.sha256(given).hexdigest()[:16])

    def engine_for(self, collection: str | None, *, must_exist: bool = True, param: str = "collection") -> "Engine":
        from qa.settings import check_collection_name

        name = collection or self.settings.collection
        with self._lock:
            if name in self._engines:
                return self._engines[name]
        try:
            check_collection_name(name)
        except ConfigError as exc:
            raise ApiError(400, str(exc), code="invalid_collection", param=param) from exc
        if must_exist and name not in self.engine.collections():
            known = ", ".join(self.engine.collections()) or "none yet"
            raise ApiError(
                404, f"No collection {name!r} (collections: {known}). Index one with `qa ingest DIR --collection {name}`.",
                code="model_not_found" if param == "model" else "collection_not_found", param=param,
            )
        with self._lock:
            return self._engines.setdefault(name, self.engine.for_collection(name))

    def upload_dir(self, collection: str) -> Path:
        """Where uploads to `collection` are saved: the seeds folder for the default one, as on the chat page."""
        if collection == self.settings.collection:
            return self.settings.seeds_dir
        return self.settings.data_dir / "uploads" / collection

    def question(self, text: str) -> str:
        """The engine's cleaned question; an over-long one is a 413 (`api_error`), an empty one a 400."""
        from qa.engine import clean_question

        return clean_question(text, limit=self.settings.max_question_chars)

    def start_answer(self, engine: "Engine", question: str, history: list[Any], k: int | None) -> tuple[Iterator[Any], Any]:
        """The engine's stream and its first item (in a worker thread); writes never hold questions up."""
        stream = engine.stream(question, history, k=k)
        first = next(stream, None)
        return stream, first

    def count_tokens(self, texts: list[str]) -> int:
        return self.engine.count_tokens(texts)


def _text_of(content: Any) -> str:
    """A message's text: a string, or OpenAI's list of parts (text parts joined; images etc. ignored)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds") if epoch else None


def build_app(engine: "Engine") -> "FastAPI":
    """The API on `engine` (its collection is the default `model`). Not started: run it with uvicorn."""
    from fastapi import Depends, FastAPI, File, Header, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from qa.types import Answer

    service = Service(engine)
    settings = service.settings

    app = FastAPI(
        title="qa",
        version="0.1.0",
        description="Grounded answers from your documents, with checkable citations. OpenAI-compatible chat; "
        "`model` names a collection.",
        docs_url=None,  # FastAPI's pages load Swagger UI and ReDoc from a CDN: ours serves its own copy
        redoc_url=None,
    )
    app.state.service = service
    add_docs(app)

    def error_response(exc: BaseException) -> JSONResponse:
        error = api_error(exc, settings)
        if error.status >= 500 and not isinstance(exc, (QAError, ApiError)):
            log.error("request failed", exc_info=exc)
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(QAError)
    async def _qa_error(request: Request, exc: QAError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else str(first.get("msg", "invalid request"))
        return error_response(ApiError(400, message, code="invalid_request", param=where or None))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(ApiError(exc.status_code, str(exc.detail), code=code))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    def authorised(request: Request, authorization: str | None = Header(default=None, include_in_schema=False)) -> None:
        service.check_key(authorization, request.client.host if request.client else "unknown")

    auth = [Depends(authorised)]

    # -- models ----------------------------------------------------------------------------------

    class ChatMessage(BaseModel):
        model_config = ConfigDict(extra="allow")
        role: str
        content: Any = None

    class ChatRequest(BaseModel):
        model_config = ConfigDict(extra="allow")  # temperature, max_tokens, ...: accepted, not used
        model: str = Field(settings.collection, description="The collection to answer from.")
        messages: list[ChatMessage] = Field(min_length=1)
        stream: bool = False
        stream_options: dict[str, Any] | None = None
        k: int | None = Field(None, ge=1, le=50, description="Passages to retrieve (default QA_TOP_K).")

    class AskRequest(BaseModel):
        question: str
        history: list[dict[str, Any] | str] = Field(default_factory=list)
        collection: str | None = None
        k: int | None = Field(None, ge=1, le=50)

    class ReindexRequest(BaseModel):
        collection: str | None = None
        folder: str | None = Field(None, description="One of the collection's folders; default: all of them.")
        stream: bool = Field(False, description="Stream progress as NDJSON lines.")

    # -- answering -------------------------------------------------------------------------------

    def completion_id() -> str:
        return "chatcmpl-" + secrets.token_hex(12)

    def usage(prompt_texts: list[str], content: str) -> dict[str, int]:
        prompt, completion = service.count_tokens(prompt_texts), service.count_tokens([content])
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def split_messages(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
        last = messages[-1]
        if last.role != "user":
            raise ApiError(400, "The last message must be the user's question.", code="invalid_messages", param="messages")
        history = [
            {"role": m.role, "content": _text_of(m.content)}
            for m in messages[:-1]
            if m.role in ("user", "assistant") and _text_of(m.content).strip()
        ]
        return _text_of(last.content), history

    @app.post("/v1/chat/completions", dependencies=auth, tags=["OpenAI-compatible"])
    async def chat_completions(body: ChatRequest) -> Any:
        """OpenAI chat completions: the last user message is the question, the ones before it the history."""
        raw_question, history = split_messages(body.messages)
        question = service.question(raw_question)
        target = await run_in_threadpool(lambda: service.engine_for(body.model, param="model"))
        await service.slots.acquire()
        try:
            stream, first = await run_in_threadpool(service.start_answer, target, question, history, body.k)
        except BaseException:
            service.slots.release()
            raise
        prompt_texts = [m["content"] for m in history] + [question]
        created, cid, model = int(time.time()), completion_id(), body.model
        if not body.stream:
            try:
                items = [first, *(await run_in_threadpool(list, stream))]
            finally:
                service.slots.release()
            answer = next(i for i in items if isinstance(i, Answer))
            service.metrics.answered(answer, llm_enabled=settings.llm_enabled)
            content = answer_markdown(answer)
            counted = await run_in_threadpool(usage, prompt_texts, content)
            return {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{
                    "index": 0, "finish_reason": "stop", "logprobs": None,
                    "message": {"role": "assistant", "content": content, "refusal": None, **message_extras(answer)},
                }],
                "usage": counted,
            }

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        async def events() -> AsyncIterator[str]:
            escaper, sent, content = MarkdownStream(), "", ""
            try:
                yield chunk({"role": "assistant", "content": ""})
                items = _chain(first, stream)
                async for item in iterate_in_threadpool(items):
                    if isinstance(item, Answer):
                        tail = escaper.flush()
                        if item.text != sent:  # the LLM broke off: its replacement follows the partial text
                            tail += "\n\n" + escape_markdown(item.text)
                        tail += notice_markdown(item) + sources_markdown(item)
                        content += tail
                        service.metrics.answered(item, llm_enabled=settings.llm_enabled)
                        yield chunk({"content": tail, **message_extras(item)})
                        yield chunk({}, "stop", usage=await run_in_threadpool(usage, prompt_texts, content))
                        break
                    sent += item
                    piece = escaper.feed(item)
                    if piece:
                        content += piece
                        yield chunk({"content": piece})
            except Exception as exc:  # noqa: BLE001 - the status line is gone; the error goes in the stream
                yield f"data: {json.dumps(error_response_body(exc))}\n\n"
            finally:
                service.slots.release()
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    def error_response_body(exc: BaseException) -> dict[str, Any]:
        error = api_error(exc, settings)
        if error.status >= 500 and not isinstance(exc, QAError):
            log.error("stream failed", exc_info=exc)
        return error.body()

    @app.post("/v1/ask", dependencies=auth, tags=["qa"])
    async def ask(body: AskRequest) -> dict[str, Any]:
        """One question with its history; returns `Answer.to_dict()` (text, citations, flags, timings)."""
        question = service.question(body.question)
        target = await run_in_threadpool(service.engine_for, body.collection)
        await service.slots.acquire()
        try:
            stream, first = await run_in_threadpool(service.start_answer, target, question, list(body.history), body.k)
            items = [first, *(await run_in_threadpool(list, stream))]
        finally:
            service.slots.release()
        answer = next(i for i in items if isinstance(i, Answer))
        service.metrics.answered(answer, llm_enabled=settings.llm_enabled)
        result: dict[str, Any] = answer.to_dict()
        return result

    @app.get("/v1/models", dependencies=auth, tags=["OpenAI-compatible"])
    async def models() -> dict[str, Any]:
        """The collections, as OpenAI models: pass one as `model`."""
        names = await run_in_threadpool(engine.collections)
        if settings.collection not in names:
            names = [settings.collection, *names]
        return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "qa"} for n in names]}

    # -- documents -------------------------------------------------------------------------------

    @app.get("/v1/documents", dependencies=auth, tags=["documents"])
    async def list_documents(collection: str | None = Query(None)) -> dict[str, Any]:
        """Indexed documents with their chunk counts and when each was indexed."""
        target = await run_in_threadpool(service.engine_for, collection)
        records = await run_in_threadpool(target.document_list)
        return {
            "object": "list",
            "collection": target.settings.collection,
            "data": [{"id": r["source"], **r, "indexed_at": _iso(r["indexed_at"])} for r in records],
        }

    @app.post("/v1/documents", dependencies=auth, tags=["documents"], status_code=201)
    async def upload_document(file: UploadFile = File(...), collection: str | None = Query(None)) -> dict[str, Any]:
        """Upload one file (the chat page's types and QA_MAX_UPLOAD_MB) and index it."""
        target = await run_in_threadpool(lambda: service.engine_for(collection, must_exist=False))
        name = target.settings.collection
        folder = service.upload_dir(name)
        scratch = Path(tempfile.mkdtemp(prefix="qa-upload-"))
        try:
            from qa.ui import safe_filename, save_upload

            try:
                path = scratch / safe_filename(file.filename or "upload")
            except InputError as exc:
                raise ApiError(415, f"{file.filename}: {exc}", code="unsupported_file_type") from exc
            with open(path, "wb") as fh:
                await run_in_threadpool(shutil.copyfileobj, file.file, fh)
            await file.close()
            uploads = target.settings.model_copy(update={"seeds_dir": folder})

            def save_and_index() -> tuple[str, Any]:
                with target.writing(command=f"upload {file.filename}"):
                    saved = save_upload(path, uploads)
                    return saved, target.ingest(folder, progress=False)

            try:
                saved, report = await run_in_threadpool(save_and_index)
            except InputError as exc:
                raise api_error(InputError(f"{file.filename}: {exc}"), settings) from exc
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if saved in report.skipped:
            raise ApiError(400, f"{file.filename}: not indexed, {report.skipped[saved]}", code="not_indexed")
        status = "unchanged" if saved in report.unchanged else "updated" if saved in report.updated else "added"
        return {"id": saved, "collection": name, "status": status, "folder": str(folder), "report": report.to_dict()}

    @app.post("/v1/documents:reindex", dependencies=auth, tags=["documents"])
    async def reindex(body: ReindexRequest | None = None) -> Any:
        """Re-index the collection's folders (incremental); `stream: true` reports progress as NDJSON lines."""
        body = body or ReindexRequest()
        target = await run_in_threadpool(lambda: service.engine_for(body.collection, must_exist=False))
        records = await run_in_threadpool(target.document_list)
        upload = service.upload_dir(target.settings.collection)
        folders = sorted({r["root"] for r in records if r["root"]} | ({str(upload.resolve())} if upload.is_dir() else set()))
        if body.folder is not None:
            wanted = str(Path(body.folder).resolve())
            if wanted not in folders:
                raise ApiError(
                    400, f"{body.folder} is not one of this collection's folders ({', '.join(folders) or 'none'}).",
                    code="unknown_folder", param="folder",
                )
            folders = [wanted]
        if not folders:
            raise ApiError(400, "This collection has no folder to re-index yet; upload a document or run `qa ingest`.",
                           code="nothing_to_index")
        events: queue.Queue[dict[str, Any] | None] = queue.Queue()

        def work() -> None:
            try:
                with target.writing(command="reindex"):
                    for folder in folders:
                        events.put({"event": "folder", "folder": folder})

                        def progress(done: int, total: int, folder: str = folder) -> None:
                            events.put({"event": "progress", "folder": folder, "sentences_done": done, "sentences_total": total})

                        try:
                            report = target.ingest(folder, progress=False, on_progress=progress)
                            events.put({"event": "indexed", "folder": folder, "report": report.to_dict()})
                        except QAError as exc:
                            events.put({"event": "failed", "folder": folder, "error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - reported in the stream; the server keeps serving
                log.error("re-index failed", exc_info=exc)
                events.put({"event": "failed", "error": api_error(exc, settings).message})
            finally:
                events.put(None)

        threading.Thread(target=work, name="qa-reindex", daemon=True).start()

        def drain() -> Iterator[dict[str, Any]]:
            while (event := events.get()) is not None:
                yield event

        if body.stream:
            async def lines() -> AsyncIterator[str]:
                done = []
                async for event in iterate_in_threadpool(drain()):
                    done.append(event)
                    yield json.dumps(event) + "\n"
                yield json.dumps({"event": "done", "ok": not any(e["event"] == "failed" for e in done)}) + "\n"

            return StreamingResponse(lines(), media_type="application/x-ndjson")
        all_events = await run_in_threadpool(lambda: list(drain()))
        results = [e for e in all_events if e["event"] in ("indexed", "failed")]
        return {"collection": target.settings.collection, "ok": all(e["event"] == "indexed" for e in results), "folders": results}

    @app.delete("/v1/documents/{doc_id:path}", dependencies=auth, tags=["documents"])
    async def delete_document(doc_id: str, collection: str | None = Query(None)) -> dict[str, Any]:
        """Remove a document from the index; a file in the upload folder goes too, so a re-index won't bring it back."""
        target = await run_in_threadpool(service.engine_for, collection)
        upload = service.upload_dir(target.settings.collection).resolve()

        def delete() -> tuple[dict[str, list[str]], bool]:
            with target.writing(command=f"delete {doc_id}"):
                found = target.delete_document(doc_id)
                removed = False
                if str(upload) in found:
                    path = (upload / doc_id).resolve()
                    if path.is_relative_to(upload) and path.is_file():
                        path.unlink()
                        removed = True
                return found, removed

        found, file_deleted = await run_in_threadpool(delete)
        if not found:
            raise ApiError(404, f"No document {doc_id!r} in collection {target.settings.collection!r}.", code="document_not_found")
        return {"id": doc_id, "object": "document.deleted", "deleted": True,
                "chunks_deleted": sum(len(v) for v in found.values()), "file_deleted": file_deleted}

    # -- operations ------------------------------------------------------------------------------

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> JSONResponse:
        """200 when the store answers and the default collection has an index; 503 saying what is wrong."""
        try:
            chunks = await run_in_threadpool(engine.chunk_count)
        except QAError as exc:
            return JSONResponse({"status": "error", "error": str(exc)}, status_code=503)
        body = {"status": "ok" if chunks else "error", "store": settings.describe_store(),
                "collection": settings.collection, "chunks": chunks, "mode": engine.mode}
        if not chunks:
            body["error"] = f"No index yet. Run `qa ingest {settings.seeds_dir}` first."
        return JSONResponse(body, status_code=200 if chunks else 503)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus metrics of this process."""
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")

    limited = BodyLimit(
        app, limit=settings.api_max_body_kb * 1000, upload_limit=settings.max_upload_mb * 1_000_000 + _UPLOAD_SLACK,
        on_reject=lambda scope, status: None,
    )
    wrapped = Timing(limited, metrics=service.metrics)
    app.state.asgi = wrapped
    return app


DOCS_ASSETS = "/docs/assets"


def add_docs(app: "FastAPI") -> None:
    """`/docs`: Swagger UI on `/openapi.json`, its script, style and icon served by this app (works offline).

    The files come from the `swagger-ui-py` wheel (a pinned dependency shipping Swagger UI 5, which
    reads FastAPI's OpenAPI 3.1), not from a CDN, so the page works on a machine without internet
    access and loads nothing from a third party.
    """
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from starlette.staticfiles import StaticFiles

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_assets())), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


def swagger_ui_assets() -> Path:
    """The folder of Swagger UI's files inside the `swagger-ui-py` wheel (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("swagger_ui")
    folder = Path(next(iter(spec.submodule_search_locations or []), "")) / "static" if spec else None
    if folder is None or not (folder / "swagger-ui-bundle.js").is_file():
        raise ConfigError("`qa serve` needs swagger-ui-py for its /docs page: run `make install`.")
    return folder


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    if first is not None:
        yield first
    yield from rest


def asgi_app(engine: "Engine") -> "Timing":
    """`build_app(engine)` behind its body limit and timing middleware: what uvicorn serves."""
    wrapped: Timing = build_app(engine).state.asgi
    return wrapped


def check_bind(host: str, settings: "Settings") -> None:
    """Without QA_API_KEYS the API listens only on loopback."""
    if host not in LOOPBACK and not settings.api_keys:
        raise ConfigError(
            f"Refusing to serve on {host} without API keys: set QA_API_KEYS=key1,key2 (clients send "
            "`Authorization: Bearer key1`), or bind 127.0.0.1."
        )


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; others than loopback need QA_API_KEYS.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to serve on.")
def serve_command(host: str, port: int) -> None:
    """Serve the HTTP API: OpenAI-compatible chat, /v1/ask, documents, /healthz, /metrics, /docs."""
    from qa.engine import Engine
    from qa.errors import friendly_errors

    @friendly_errors
    def run() -> None:
        import socket

        import uvicorn

        engine = Engine.open()
        check_bind(host, engine.settings)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"Can't serve on {host}:{port} ({exc.strerror or exc}). Stop the other server or pass --port.") from exc
        click.echo("Loading the model and index…", err=True)
        engine.warm_up()
        try:
            if engine.is_empty():
                click.echo(f"warning: nothing indexed yet; run `qa ingest {engine.settings.seeds_dir}` or upload documents.", err=True)
        except QAError as exc:  # e.g. the Chroma server is down: serve anyway, /healthz says 503 until it is back
            click.echo(f"warning: {exc}", err=True)
        config = uvicorn.Config(asgi_app(engine), log_level="warning", timeout_graceful_shutdown=5,
                                access_log=False, server_header=False)
        click.echo(f"API: http://{host}:{port}/v1  docs: http://{host}:{port}/docs  (Ctrl+C to stop)")
        uvicorn.Server(config).run(sockets=[sock])

    run()


__all__ = ["ApiError", "MarkdownStream", "Metrics", "answer_markdown", "asgi_app", "build_app", "escape_markdown", "serve_command"]
