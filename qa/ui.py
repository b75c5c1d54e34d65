"""The chat page (`qa chat`): a Gradio app on one shared Engine. Parse, call the engine, render.

`build_app(engine, settings)` returns the Blocks (for tests and embedding); `serve(app, settings)`
launches it on 127.0.0.1 with the queue, upload limit, CSS and optional basic auth from settings.
Conversations live in per-session state; the engine (model, index) is shared by all sessions.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from qa.errors import ConfigError, IndexMissingError, InputError, QAError, StoreBusyError, StoreError
from qa.startup import skip_gradio_stub_rewrite
from qa.ui_render import (
    CSS,
    HEAD,
    render_answer,
    render_documents,
    render_error,
    render_pending,
    render_question,
)

if TYPE_CHECKING:
    import gradio as gr
    from starlette.middleware import Middleware

    from qa.engine import Engine
    from qa.settings import Settings
    from qa.types import Answer

log = logging.getLogger(__name__)
skip_gradio_stub_rewrite()  # before gradio is imported: see qa/startup.py

# The same file types `qa ingest` reads (issue 15), under the same checks.
UPLOAD_TYPES = (".txt", ".md", ".markdown", ".rst", ".pdf", ".docx", ".pptx", ".html", ".htm", ".csv", ".tsv")
_STREAM_EVERY = 0.05  # seconds between chat updates while an answer streams in
_SHOWN_QUESTION = 300  # an over-long question is echoed up to this many characters

Message = dict[str, Any]


def new_session() -> dict[str, Any]:
    """One browser session's conversation: what the Chatbot shows and the answered turns behind it."""
    return {"messages": [], "turns": []}


def _history(turns: list[dict[str, Any]]) -> list[dict[str, str]]:
    history: list[dict[str, str]] = []
    for turn in turns:
        history.append({"role": "user", "content": turn["question"]})
        history.append({"role": "assistant", "content": turn["answer"]["text"]})
    return history


def _error_reply(exc: BaseException, settings: Settings) -> str:
    if isinstance(exc, InputError):
        return str(exc)
    if isinstance(exc, IndexMissingError):
        return (
            "Sorry, no documents are indexed yet. Press “Re-index seeds” in the Documents panel "
            "(or run `qa ingest`), then ask again."
        )
    if isinstance(exc, StoreBusyError):
        return "Another upload or re-index is still running; try again when it has finished."
    if isinstance(exc, StoreError):  # names server paths and hosts: for the log, not the page
        log.warning("store error: %s", exc)
        return "Sorry, the document store isn't available right now. Please try again in a moment; the details are in the server log."
    if isinstance(exc, QAError):
        return f"Sorry, I couldn't answer that. {exc}"
    detail = f" ({type(exc).__name__}: {exc})" if settings.debug else ""
    return (
        "Sorry, something went wrong while answering this one" + detail + ". "
        "Please try again; if it keeps happening, the details are in the server log."
    )


def _user(html_text: str) -> Message:
    return {"role": "user", "content": html_text}


def _assistant(html_text: str) -> Message:
    return {"role": "assistant", "content": html_text}


class ChatPage:
    """The event handlers of one app; the engine is shared by every session.

    Uploads and re-indexes hold the store's writer lock (`engine.writing()`); questions never wait
    for them: the engine answers from the last complete corpus until the new one is swapped in.
    """

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._engines: dict[str, Engine] = {}

    def engine_for(self, state: dict[str, Any] | None) -> Engine:
        """The engine on the session's chosen collection (the collection selector), else the default."""
        name = (state or {}).get("collection") or self.settings.collection
        if name == self.engine.settings.collection:
            return self.engine
        if name not in self._engines:
            self._engines[name] = self.engine.for_collection(name)
        return self._engines[name]

    def select_collection(self, name: str | None, state: dict[str, Any] | None) -> tuple[Any, ...]:
        """Switch this session to collection `name`: a new conversation, that collection's documents."""
        session = new_session()
        if name and name != self.settings.collection:
            session["collection"] = name
        return [], session, None, self.corpus(session)

    # -- chat -----------------------------------------------------------------------------------

    def chat(self, message: str | None, state: dict[str, Any] | None) -> Iterator[tuple[Any, ...]]:
        """Answer `message` in this session's conversation; yields (textbox, chatbot, state, answer)."""
        from qa.engine import clean_question

        state = state if state and "turns" in state else new_session()
        messages: list[Message] = state["messages"]
        text = message if isinstance(message, str) else ""
        try:
            question = clean_question(text, limit=self.settings.max_question_chars)
        except InputError as exc:
            shown = text.strip()
            if shown:
                too_long = len(shown) > _SHOWN_QUESTION
                messages.append(_user(render_question(shown[:_SHOWN_QUESTION] + ("…" if too_long else ""))))
            messages.append(_assistant(render_error(_error_reply(exc, self.settings))))
            # an over-long question stays in the box to be shortened; an empty one has nothing to keep
            yield (text if shown else ""), messages, state, {"error": str(exc)}
            return

        messages.append(_user(render_question(text)))  # as typed; the engine gets the cleaned text
        messages.append(_assistant(render_pending()))
        yield "", messages, state, None

        try:
            answer = yield from self._stream(question, state, messages)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reply; the app keeps serving
            if not isinstance(exc, QAError):
                log.exception("chat failed")  # the question's text goes only to the question log, if at all
            messages[-1] = _assistant(render_error(reply := _error_reply(exc, self.settings)))
            # Store and unexpected errors name paths and internals: the API gets the polite reply too.
            yield "", messages, state, {"error": str(exc) if isinstance(exc, QAError) and not isinstance(exc, StoreError) else reply}
            return
        messages[-1] = _assistant(render_answer(answer, self._document_texts(answer)))
        data = answer.to_dict()
        state["turns"].append(
            {"question": question, "answer": data, "index": len(messages) - 1,
             "history": [t["question"] for t in state["turns"]]}
        )
        yield "", messages, state, data

    def _document_texts(self, answer: Answer) -> dict[str, str]:
        """The cited documents' extracted texts, so a source opens inside its whole document."""
        texts: dict[str, str] = {}
        for citation in answer.citations:
            if citation.doc_id and citation.doc_id not in texts:
                text = self.engine.document_text(citation.doc_id)
                if text is not None:
                    texts[citation.doc_id] = text
        return texts

    def _stream(
        self, question: str, state: dict[str, Any], messages: list[Message]
    ) -> Generator[tuple[Any, ...], None, Answer]:
        """Relay the engine's text deltas into the last chat message; return the final Answer."""
        from qa.types import Answer

        stream = self.engine_for(state).stream(question, _history(state["turns"]))
        first = next(stream, None)
        partial, last_shown = "", 0.0
        item: Any = first
        while item is not None:
            if isinstance(item, Answer):
                return item
            if isinstance(item, str):
                partial += item
                now = time.monotonic()
                if now - last_shown >= _STREAM_EVERY:
                    messages[-1] = _assistant(render_pending(partial))
                    last_shown = now
                    yield "", messages, state, None
            item = next(stream, None)
        raise RuntimeError("the engine's stream ended without an Answer")

    def clear(self, state: dict[str, Any] | None = None) -> tuple[list[Message], dict[str, Any], None]:
        session = new_session()
        if state and state.get("collection"):
            session["collection"] = state["collection"]  # a new chat stays in the chosen collection
        return [], session, None

    # -- feedback -------------------------------------------------------------------------------

    def feedback(self, state: dict[str, Any] | None, data: gr.LikeData, request: gr.Request) -> None:
        """A thumb on an answer: append it, with its question and citations, to the feedback log."""
        import gradio as gr

        from qa.feedback import record_feedback

        if data.liked not in (True, False) or not state:
            return  # a thumb taken back, or a custom option: nothing to record
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        turn = next((t for t in state.get("turns", []) if t["index"] == index), None)
        if turn is None:
            gr.Info("Only answers can be rated.")
            return
        record_feedback(
            self.settings,
            answer=turn["answer"],
            helpful=bool(data.liked),
            channel="web",
            user=getattr(request, "username", None),
            history=turn["history"],
        )
        gr.Info("Thanks, your feedback is saved.")

    # -- corpus ---------------------------------------------------------------------------------

    def corpus(self, state: dict[str, Any] | None = None) -> str:
        engine = self.engine_for(state)
        try:
            if engine.is_empty():
                return render_documents([])
            return render_documents(engine.documents())
        except QAError as exc:
            return render_error(_error_reply(exc, self.settings))

    def reindex(self) -> tuple[str, str]:
        """Re-index the seeds folder (incremental) and report what changed."""
        try:
            with self.engine.writing(command="qa chat: re-index"):
                report = self.engine.ingest(self.settings.seeds_dir, progress=False)
        except QAError as exc:
            return render_error(_error_reply(exc, self.settings) if isinstance(exc, StoreError) else str(exc)), self.corpus()
        except Exception as exc:  # noqa: BLE001
            log.exception("re-index failed")
            return render_error(_error_reply(exc, self.settings)), self.corpus()
        lines = [
            f"Re-indexed {self.settings.seeds_dir.name}/: {len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.removed)} removed, {len(report.unchanged)} unchanged; {report.chunks_embedded} chunks embedded."
        ]
        lines[0] = lines[0].removesuffix(".") + f"; {len(report.skipped)} not indexed."
        lines += [f"Skipped {source}: {reason}" for source, reason in report.skipped.items()]
        return _status(lines), self.corpus()

    def upload(self, paths: list[str] | str | None) -> tuple[str, str, None]:
        """Save uploaded documents (the types `qa ingest` reads) under the seeds folder and index them; report each file."""
        if not paths:
            return "", self.corpus(), None
        files = [paths] if isinstance(paths, str) else list(paths)
        lines: list[str] = []
        saved: dict[str, str] = {}
        try:
            with self.engine.writing(command="qa chat: upload"):  # the files saved and indexed by one writer
                for path in files:
                    original = Path(path).name
                    try:
                        saved[save_upload(Path(path), self.settings)] = original
                    except InputError as exc:
                        lines.append(f"{original}: {exc}")
                if saved:
                    report = self.engine.ingest(self.settings.seeds_dir, progress=False)
                    for name, original in saved.items():
                        if name in report.skipped:
                            lines.append(f"{original}: not indexed, {report.skipped[name]}")
                        elif name in report.unchanged:
                            lines.insert(0, f"{original}: already indexed as {name}.")
                        else:
                            renamed = f" (saved as {name})" if name != original else ""
                            lines.insert(0, f"{original}: added and indexed{renamed}.")
        except QAError as exc:
            lines.append(_error_reply(exc, self.settings) if isinstance(exc, StoreError) else str(exc))
        except Exception as exc:  # noqa: BLE001
            log.exception("upload failed")
            lines.append(_error_reply(exc, self.settings))
        finally:
            for path in files:
                _discard(Path(path))
        return _status(lines), self.corpus(), None


def _status(lines: list[str]) -> str:
    import html

    return "<div class=\"qa-status\">" + "<br>".join(html.escape(line) for line in lines) + "</div>"


def _discard(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def safe_filename(name: str) -> str:
    """A plain file name for an upload: no folders, no hidden files, only letters, digits, `.`, `-`, `_`."""
    base = unicodedata.normalize("NFKC", name.replace("\\", "/").rsplit("/", 1)[-1])
    stem, dot, ext = base.rpartition(".")
    if not dot or "." + ext.lower() not in UPLOAD_TYPES:
        raise InputError(f"only {', '.join(UPLOAD_TYPES)} files can be added.")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:100]
    return f"{stem or 'upload'}.{ext.lower()}"


def save_upload(path: Path, settings: Settings) -> str:
    """Copy one uploaded file into the seeds folder (never elsewhere, never over another file)."""
    name = safe_filename(path.name)
    limit = settings.max_upload_mb * 1_000_000
    size = path.stat().st_size
    if size > limit:
        raise InputError(f"{size / 1e6:.1f} MB is over the {settings.max_upload_mb} MB limit (QA_MAX_UPLOAD_MB).")
    data = path.read_bytes()
    if not data.strip():
        raise InputError("the file is empty.")
    from qa.documents import load_file

    # Read it as ingest will (same reader, same checks) before saving: a file no reader can use
    # (a scan without text, a damaged PDF) is refused here rather than left in the seeds folder.
    load_file(path, source=name, max_bytes=limit)
    seeds = settings.seeds_dir
    seeds.mkdir(parents=True, exist_ok=True)
    stem, ext = name.rsplit(".", 1)
    for n in range(1, 1000):
        candidate = name if n == 1 else f"{stem}-{n}.{ext}"
        target = seeds / candidate
        if target.is_file() and not target.is_symlink() and target.read_bytes() == data:
            return candidate  # the same file again: nothing to write
        try:
            with open(target, "xb") as fh:  # exclusive: never follows or replaces an existing entry
                fh.write(data)
            return candidate
        except FileExistsError:
            continue
    raise InputError("too many files with this name in the seeds folder.")


def parse_auth(settings: Settings) -> tuple[str, str] | None:
    if settings.ui_auth is None:
        return None
    user, sep, password = settings.ui_auth.get_secret_value().partition(":")
    if not sep or not user or not password:
        raise ConfigError("QA_UI_AUTH must look like `user:password` (both non-empty), or be unset for no login.")
    return user, password


def _with_event_args(method: Any, event_type: type) -> Any:
    """`method(state, event, request)` as a function whose hints Gradio can read (it injects by type)."""

    def handler(state: Any, event: Any, request: Any) -> Any:
        return method(state, event, request)

    import gradio as gr

    handler.__annotations__.update(event=event_type, request=gr.Request)
    return handler


def build_app(engine: Engine, settings: Settings) -> gr.Blocks:
    """The chat page on `engine`: chat with sources, thumbs up/down, the corpus panel. Not launched."""
    import gradio as gr

    page = ChatPage(engine, settings)
    with gr.Blocks(title="qa: answers from your documents", analytics_enabled=False, fill_width=False) as app:
        state = gr.State(new_session())
        gr.Markdown("## Ask your documents\nEvery answer quotes its sources: open a source to see the passage.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    elem_id="qa-chat",
                    label="Conversation",
                    height=560,
                    layout="bubble",
                    feedback_options=("Like", "Dislike"),
                    latex_delimiters=[],
                    sanitize_html=True,
                    group_consecutive_messages=False,
                    buttons=["copy"],
                    placeholder="Ask a question about the indexed documents, e.g. *What is Mark Sedwill's job?*",
                )
                with gr.Row():
                    box = gr.Textbox(
                        elem_id="qa-question",
                        show_label=False,
                        placeholder="Ask a question…",
                        lines=1,
                        max_lines=6,
                        scale=5,
                        autofocus=True,
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="qa-send")
                    new = gr.Button("New chat", scale=1, min_width=80, elem_id="qa-new")
                last = gr.JSON(visible=False)
            with gr.Column(scale=1, min_width=260):
                collections = _collection_choices(engine)
                selector = gr.Dropdown(
                    collections, value=settings.collection, label="Collection", elem_id="qa-collection",
                    visible=len(collections) > 1, interactive=True,
                )
                gr.Markdown("### Documents")
                docs = gr.HTML(elem_id="qa-corpus")
                reindex = gr.Button("Re-index seeds", size="sm", elem_id="qa-reindex")
                files = gr.File(
                    label=f"Add documents: PDF, Word, PowerPoint, HTML, CSV, reST, Markdown, text (up to {settings.max_upload_mb} MB at a time)",
                    file_count="multiple",
                    file_types=list(UPLOAD_TYPES),
                    type="filepath",
                    elem_id="qa-upload",
                )
                status = gr.HTML(elem_id="qa-status")

        outputs = [box, chatbot, state, last]
        # Enter and the Ask button share one limit: QA_UI_CONCURRENCY questions at once in all
        limit = settings.ui_concurrency
        box.submit(
            page.chat, [box, state], outputs, api_name="chat", show_progress="hidden",
            concurrency_id="chat", concurrency_limit=limit,
        )
        send.click(
            page.chat, [box, state], outputs, api_visibility="private", show_progress="hidden",
            concurrency_id="chat", concurrency_limit=limit,
        )
        new.click(page.clear, [state], [chatbot, state, last], api_visibility="private")
        chatbot.clear(page.clear, [state], [chatbot, state, last], api_visibility="private")
        selector.change(page.select_collection, [selector, state], [chatbot, state, last, docs], api_visibility="private")
        chatbot.like(_with_event_args(page.feedback, gr.LikeData), [state], None, api_visibility="private")
        reindex.click(page.reindex, None, [status, docs], api_name="reindex", concurrency_limit=1)
        files.upload(page.upload, [files], [status, docs, files], api_visibility="private", concurrency_limit=1)
        app.load(page.corpus, None, docs, api_visibility="private")
    # Bounded: past QA_UI_QUEUE_MAX waiting requests a join gets 503, which the page shows as "busy,
    # try again"; unbounded, a flood of anonymous joins grew the process by GBs and wedged the queue.
    app.queue(default_concurrency_limit=settings.ui_concurrency, max_size=max(settings.ui_queue_max, 1))
    blocks: gr.Blocks = app
    return blocks


def _collection_choices(engine: Engine) -> list[str]:
    """The store's collections for the selector, the default first; just the default if the store can't say."""
    try:
        names = engine.collections()
    except QAError:
        names = []
    return [engine.settings.collection, *(n for n in names if n != engine.settings.collection and not n.startswith("eval-"))]


def serve(
    app: gr.Blocks, settings: Settings, *, host: str = "127.0.0.1", port: int = 7860, block: bool = True,
    share: bool = False,
) -> str:
    """Launch `app` on host:port (never a public link unless `share`); returns the local URL."""
    auth = parse_auth(settings)
    try:
        app.launch(
            server_name=host,
            server_port=port,
            share=share,
            auth=auth,
            max_file_size=settings.max_upload_mb * 1_000_000,
            prevent_thread_lock=not block,
            show_error=False,
            quiet=True,
            ssr_mode=False,
            mcp_server=False,
            enable_monitoring=False,  # /monitoring is open without login and prints its key on every visit
            app_kwargs={"middleware": serving_middleware(settings)},
            css=CSS,
            head=HEAD,
        )
    except OSError as exc:
        raise ConfigError(f"Can't serve on {host}:{port} ({exc}). Stop the other server or pass --port.") from exc
    return str(app.local_url or f"http://{host}:{port}/")


_ACTION_PATHS = ("/gradio_api/", "/login")  # POSTs: queue joins, uploads, API calls, login attempts
_UPLOAD_PATH = "/gradio_api/upload"
_MULTIPART_SLACK = 64_000  # form boundaries and part headers around the files themselves
BUSY_REPLY = "The chat page is busy (QA_UI_QUEUE_MAX requests are waiting). Retry in a few seconds."


def serving_middleware(settings: Settings) -> list[Middleware]:
    """The chat page's limits on raw HTTP: a rate limit per client, the upload size, a `busy` reply."""
    from starlette.middleware import Middleware

    from qa.ratelimit import RateLimiter, RateLimitMiddleware

    limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    return [
        Middleware(RateLimitMiddleware, limiter=limiter, paths=_ACTION_PATHS),
        Middleware(_UploadLimit, limit=settings.max_upload_mb * 1_000_000 + _MULTIPART_SLACK),
        Middleware(_BusyReply),
    ]


class _UploadLimit:
    """Refuse an upload request whose body is over the limit (Gradio checks each file, not their sum)."""

    def __init__(self, app: Any, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("method") == "POST" and str(scope.get("path", "")).endswith(_UPLOAD_PATH):
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is None or not length.isdigit() or int(length) > self.limit:
                mb = (self.limit - _MULTIPART_SLACK) / 1e6
                status = 411 if length is None else 413
                message = f"Uploads are limited to {mb:g} MB at a time (QA_MAX_UPLOAD_MB), with a Content-Length."
                await _plain(send, status, message)
                return
        await self.app(scope, receive, send)


class _BusyReply:
    """Gradio's "queue is full" 503 gets a Retry-After and says what to do."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or not str(scope.get("path", "")).endswith("/queue/join"):
            await self.app(scope, receive, send)
            return
        busy = False

        async def relay(message: dict[str, Any]) -> None:
            nonlocal busy
            if message["type"] == "http.response.start" and message.get("status") == 503:
                busy = True
                await _plain(send, 503, BUSY_REPLY, retry_after=5, json_detail=True)
                return
            if not busy:
                await send(message)

        await self.app(scope, receive, relay)


async def _plain(send: Any, status: int, message: str, *, retry_after: int | None = None, json_detail: bool = False) -> None:
    import json

    body = json.dumps({"detail": message}).encode() if json_detail else message.encode()
    headers = [
        (b"content-type", b"application/json" if json_detail else b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def warm(engine: Engine) -> None:
    """Load the model and index now, so the first question doesn't pay for it."""
    engine.warm_up()


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


@click.command("chat")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 exposes the page.")
@click.option("--port", default=7860, show_default=True, type=int, help="Port to serve on.")
@click.option("--share", is_flag=True, help="Also open a public gradio.live link (needs QA_UI_AUTH).")
@click.option(
    "--insecure-no-auth", is_flag=True, help="Serve on a non-loopback --host without QA_UI_AUTH (anyone can reach it)."
)
def chat_command(host: str, port: int, share: bool, insecure_no_auth: bool) -> None:
    """Start the chat page (Gradio) on the engine."""
    from qa.engine import Engine
    from qa.errors import friendly_errors

    @friendly_errors
    def run() -> None:
        engine = Engine.open()
        settings = engine.settings
        if (share or not is_loopback(host)) and settings.ui_auth is None:
            if share:
                raise ConfigError("A public link needs a login: set QA_UI_AUTH=user:password, then retry --share.")
            if not insecure_no_auth:
                raise ConfigError(
                    f"Serving on {host} needs a login: set QA_UI_AUTH=user:password, "
                    "or pass --insecure-no-auth to let anyone who can reach it chat, upload and re-index."
                )
            click.echo(f"warning: serving on {host} without a login (--insecure-no-auth).", err=True)
        parse_auth(settings)
        click.echo("Loading the model and index…", err=True)
        warm(engine)
        app = build_app(engine, settings)
        url = serve(app, settings, host=host, port=port, block=False, share=share)
        click.echo(f"Chat page: {url}  (Ctrl+C to stop)")
        if app.share_url:
            click.echo(f"Public link: {app.share_url}")
        app.block_thread()

    run()
