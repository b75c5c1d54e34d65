"""`qa` on the command line: parse, call the engine, print. Errors are one line and exit 1."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from qa.errors import friendly_errors

if TYPE_CHECKING:
    from qa.engine import Engine

_URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s@'\"]+@")


class _CredentialFreeFormatter(logging.Formatter):
    """Log lines (tracebacks included) without the `user:password@` of any URL: client libraries log full URLs."""

    def format(self, record: logging.LogRecord) -> str:
        return _URL_CREDENTIALS.sub("", super().format(record))


def _engine(collection: str | None = None, *, must_exist: bool = False) -> Engine:
    from qa.engine import Engine

    return Engine.open(collection=collection, must_exist=must_exist)


_collection_option = click.option(
    "-c", "--collection", default=None, help="Collection to use (default QA_COLLECTION); `qa collections` lists them."
)


class LazyGroup(click.Group):
    """Commands that live in their own modules (and pull heavy imports) load only when invoked."""

    lazy: dict[str, tuple[str, str]] = {
        # name: ("module:attribute", short help shown by `qa --help` without importing the module)
        "chat": ("qa.ui:chat_command", "Start the chat page (Gradio) on the engine."),
        "check": ("qa.check:check_command", "Read every stored vector and text back; --repair re-embeds what is damaged."),
        "eval": ("qa.eval:eval_command", "Score the engine against a gold Q&A set; compare runs; gate CI."),
        "feedback": ("qa.feedback:feedback_group", "Work with the feedback log (export it as gold data)."),
        "serve": ("qa.api:serve_command", "Serve the HTTP API (OpenAI-compatible chat, documents, metrics)."),
        "slack": ("qa.slack:slack_command", "Run the Slack bot (Socket Mode or Events API over HTTP)."),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            import importlib

            module_name, attribute = self.lazy[cmd_name][0].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                raise click.ClickException(f"`qa {cmd_name}` needs {exc.name}: run `make install`.") from exc
            command: click.Command = getattr(module, attribute)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.commands[name].get_short_help_str(60)) for name in self.commands]
        rows += [(name, help_text) for name, (_, help_text) in self.lazy.items()]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show debug logs.")
def main(verbose: bool) -> None:
    """Grounded question answering over your documents, with citations."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:  # ours from basicConfig, not a host's (pytest's, an app's)
            handler.setFormatter(_CredentialFreeFormatter("%(levelname)s: %(message)s"))
    for noisy in ("chromadb", "httpx", "urllib3", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)
    logging.getLogger("qa").setLevel(logging.DEBUG if verbose else logging.INFO)


@main.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--progress/--no-progress", default=None, help="Force the progress bar on or off.")
@click.option("--rebuild", is_flag=True, help="Drop the collection first and embed everything again (e.g. after changing QA_EMBED_MODEL).")
@_collection_option
@friendly_errors
def ingest(folder: Path | None, as_json: bool, progress: bool | None, collection: str | None, rebuild: bool = False) -> None:
    """Index FOLDER or one FILE (default: QA_SEEDS_DIR) incrementally: only new or changed files are embedded.

    Reads PDF, .docx, .pptx, HTML, CSV, reStructuredText, Markdown and text; every file left out is
    listed with its reason."""
    engine = _engine(collection)
    report = engine.ingest(folder, progress=progress, rebuild=rebuild)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    for source, reason in report.skipped.items():
        click.echo(f"warning: skipped {source}: {reason}", err=True)
    click.echo(
        f"Indexed {folder or engine.settings.seeds_dir}: {len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.removed)} removed, {len(report.unchanged)} unchanged, {len(report.skipped)} skipped; "
        f"{report.chunks_embedded} chunks embedded, {report.chunks_deleted} deleted in {report.seconds:.1f}s."
    )


@main.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print the Answer as JSON.")
@click.option("-k", "--top-k", type=int, default=None, help="Passages to retrieve (default QA_TOP_K).")
@click.option("--show-prompt", is_flag=True, help="Also print the prompts sent to the LLM (LLM mode).")
@_collection_option
@friendly_errors
def ask(question: str, as_json: bool, top_k: int | None, show_prompt: bool, collection: str | None) -> None:
    """Answer QUESTION from the indexed documents, with numbered sources."""
    _no_collection_at_exit()
    answer = _engine(collection, must_exist=True).ask(question, k=top_k)
    if as_json:
        click.echo(json.dumps(answer.to_dict(with_prompts=show_prompt), indent=2, ensure_ascii=False))
        return
    if show_prompt:
        click.echo(render_prompts(answer))
    click.echo(render_answer(answer))


def _no_collection_at_exit() -> None:
    """Let the process end without a last cyclic GC over everything it loaded.

    Interpreter shutdown runs the cyclic GC over every object chromadb, bm25s and the corpus
    created: 0.3-0.8 s of a cold `qa ask` (issue 8). Freezing the heap at exit skips that pass;
    atexit handlers (logging's flush among them) still run, and reference counting still frees
    what it frees. Only objects kept alive by cycles are left to the OS, and a question leaves
    nothing there to finish: it only reads (a corpus cache it saves is complete before it answers).
    """
    import atexit
    import gc

    atexit.unregister(gc.freeze)  # once, however many questions a host process asks
    atexit.register(gc.freeze)


def render_prompts(answer: Any) -> str:
    if not answer.prompts:
        return "(No prompt: extractive mode sends nothing to a language model.)\n"
    lines = []
    for purpose, messages in answer.prompts.items():
        lines.append(f"===== prompt: {purpose} =====")
        for message in messages:
            lines.append(f"----- {message['role']} -----")
            lines.append(message["content"])
    lines.append("===== end of prompts =====")
    lines.append("")
    return "\n".join(lines)


def render_answer(answer: Any) -> str:
    lines = [answer.text]
    if answer.notice:
        lines.append(f"({answer.notice})")
    for flag in answer.unsupported_sentences:
        lines.append(f"  ⚠ not backed by a source ({flag.describe()}): “{' '.join(flag.text.split())}”")
    if answer.citations:
        lines.append("")
        lines.append("Sources:")
        for c in answer.citations:
            lines.append(f"  [{c.n}] {c.label}, {c.location} (chars {c.start}-{c.end}): “{c.plain_quote}”")
    lines.append("")
    why = "no valid citation" if not answer.citations else "most of it is not backed by its citations"
    lines.append(f"mode: {answer.mode}" + ("" if answer.grounded else f" (ungrounded: {why})"))
    return "\n".join(lines)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
def info(as_json: bool) -> None:
    """Show the store, collection, chunk count, embedding model and answering mode."""
    data = _engine().info()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        click.echo(f"{key.replace('_', ' '):<{width}}  {value}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
def collections(as_json: bool) -> None:
    """List the collections in the store, with their chunk counts."""
    engine = _engine()
    rows = [{"name": name, "chunks": engine.for_collection(name).chunk_count(), "default": name == engine.settings.collection}
            for name in engine.collections()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"No collections yet in {engine.settings.describe_store()}. Run `qa ingest DIR --collection NAME`.")
    for row in rows:
        click.echo(f"{row['name']}  {row['chunks']} chunks" + ("  (default)" if row["default"] else ""))


@main.group()
def docs() -> None:
    """List or remove indexed documents."""


@docs.command("list")
@_collection_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
def docs_list(collection: str | None, as_json: bool) -> None:
    """Indexed documents with chunk counts, folders and when each was indexed."""
    import datetime

    records = _engine(collection, must_exist=True).document_list()
    for r in records:
        at = r["indexed_at"]
        r["indexed_at"] = datetime.datetime.fromtimestamp(at, tz=datetime.timezone.utc).isoformat(timespec="seconds") if at else None
    if as_json:
        click.echo(json.dumps(records, indent=2, ensure_ascii=False))
        return
    if not records:
        click.echo("No documents indexed.")
    for r in records:
        click.echo(f"{r['source']}  {r['chunks']} chunks  indexed {r['indexed_at'] or 'unknown'}  from {r['root']}")


@docs.command("rm")
@click.argument("source")
@_collection_option
@friendly_errors
def docs_rm(source: str, collection: str | None) -> None:
    """Remove document SOURCE (as `qa docs list` names it) from the index; its file stays where it is."""
    from qa.errors import InputError

    engine = _engine(collection, must_exist=True)
    found = engine.delete_document(source)
    if not found:
        raise InputError(f"No document {source!r} in collection {engine.settings.collection!r}; `qa docs list` shows them.")
    chunks = sum(len(ids) for ids in found.values())
    for root in found:
        click.echo(
            f"Removed {source} ({chunks} chunks). Its file in {root} stays: delete it there too, "
            "or the next `qa ingest` of that folder adds it back."
        )


def fewer_gc_passes() -> None:
    """Run the cyclic GC less often than Python's default, for a process that imports the heavy libraries.

    A `qa` process creates hundreds of thousands of long-lived objects while it imports chromadb,
    gradio or llama-index, and at the default threshold (700 new objects) the collector walks them
    again and again: 0.5 s of gradio's 3 s import. At 10,000 it still collects every cycle, in
    fewer, larger passes. (The test workers call it too.)
    """
    import gc

    gc.set_threshold(10_000, 10, 10)


def run() -> None:
    """The `qa` program (pyproject's script): `main` with `fewer_gc_passes`. A host that calls `main`
    itself keeps its own GC settings."""
    fewer_gc_passes()
    main()


if __name__ == "__main__":  # pragma: no cover
    run()
