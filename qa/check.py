"""`qa check [--repair]`: read every stored chunk and sentence back; re-embed or rebuild what is damaged.

The store is opened and read in a child process: an embedded Chroma store damaged by concurrent
writers can segfault, abort or hang as it opens, and that must end the child, not `qa`. The child
prints one JSON object (what it found); the parent turns it, or the child's crash, into one line.
"""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from qa.errors import QAError

if TYPE_CHECKING:
    from qa.engine import Engine
    from qa.settings import Settings
    from qa.store import Store

log = logging.getLogger(__name__)
# Only these settings reach the child: it opens the store and reads it, nothing else (no keys).
_CHILD_SETTINGS = ("data_dir", "collection", "chroma_host", "chroma_port")


@dataclass
class Findings:
    """What one look at the store found."""

    chunks: int = 0
    sentences: int = 0
    unreadable_chunks: list[str] = field(default_factory=list)
    unreadable_sentences: list[str] = field(default_factory=list)
    chunks_lacking_sentences: list[str] = field(default_factory=list)
    orphan_sentences: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)  # folders the chunks were ingested from
    problem: str = ""  # set when the store could not be opened or read at all

    @property
    def damaged_chunks(self) -> set[str]:
        return {*self.unreadable_chunks, *self.chunks_lacking_sentences,
                *(s.rpartition(":")[0] for s in self.unreadable_sentences)}

    @property
    def healthy(self) -> bool:
        return not self.problem and not self.damaged_chunks and not self.orphan_sentences

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy, "problem": self.problem, "chunks": self.chunks, "sentences": self.sentences,
            "unreadable_chunks": len(self.unreadable_chunks), "unreadable_sentences": len(self.unreadable_sentences),
            "chunks_lacking_sentences": len(self.chunks_lacking_sentences),
            "orphan_sentences": len(self.orphan_sentences), "roots": self.roots,
        }

    def summary(self) -> str:
        if self.problem:
            return self.problem
        if self.healthy:
            return f"{self.chunks} chunks and {self.sentences} sentences, every vector and text readable."
        parts = []
        if self.unreadable_chunks:
            parts.append(f"{len(self.unreadable_chunks)} chunks")
        if self.unreadable_sentences:
            parts.append(f"{len(self.unreadable_sentences)} sentences")
        what = (" and ".join(parts) + " can't be read back") if parts else ""
        extra = []
        if self.chunks_lacking_sentences:
            extra.append(f"{len(self.chunks_lacking_sentences)} chunks lack sentence vectors")
        if self.orphan_sentences:
            extra.append(f"{len(self.orphan_sentences)} sentence vectors belong to no chunk")
        return "; ".join(x for x in [what, *extra] if x) + f" (of {self.chunks} chunks, {self.sentences} sentences)."


def inspect_store(settings: Settings) -> Findings:
    """Read every record of both collections with its vector and text (run in the child)."""
    from qa.store import ChromaStore

    found = Findings()
    # Any embedding model's index can be read back: the child knows only where the store is.
    store = ChromaStore(settings, read_only=True, check=False)
    if not store.exists:
        return found
    return inspect(store)


def inspect(store: Store) -> Findings:
    """What `qa check` finds in `store`: unreadable records, chunks lacking sentence vectors, orphan sentences."""
    found = Findings()
    chunks = store.records("chunks")
    sentences = store.records("sentences")
    found.chunks, found.unreadable_chunks = len(chunks), sorted(store.unreadable("chunks", [r.id for r in chunks]))
    found.sentences, found.unreadable_sentences = len(sentences), sorted(store.unreadable("sentences", [r.id for r in sentences]))
    sentence_ids = {r.id for r in sentences}
    chunk_ids = {r.id for r in chunks}
    found.chunks_lacking_sentences = [r.id for r in chunks if any(f"{r.id}:{i}" not in sentence_ids for i in range(r.sentences))]
    found.orphan_sentences = sorted(s for s in sentence_ids if s.rpartition(":")[0] not in chunk_ids)
    found.roots = sorted({r.root for r in [*chunks, *sentences] if r.root})
    return found


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        meaning = {"SIGSEGV": "a segfault", "SIGABRT": "an abort", "SIGBUS": "a bus error", "SIGKILL": "killed"}.get(name, name)
        return f"{meaning} ({name})"
    return f"exit status {code}"


def check_store(settings: Settings) -> Findings:
    """Inspect the store in a child process; a crash, hang or error there becomes `Findings.problem`."""
    where = settings.describe_store()
    child_settings = json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in settings.model_dump().items() if k in _CHILD_SETTINGS})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "qa.check", child_settings],
            capture_output=True, text=True, timeout=settings.check_timeout, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return Findings(problem=f"Opening {where} hung for over {settings.check_timeout:g} s (QA_CHECK_TIMEOUT).")
    lines = done.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        data = None
    if done.returncode == 0 and isinstance(data, dict) and "chunks" in data:
        return Findings(**data)
    if isinstance(data, dict) and data.get("error"):
        return Findings(problem=f"Opening {where} failed: {data['error']}", roots=data.get("roots", []))
    return Findings(problem=f"Opening {where} crashed the checking process: {_describe_exit(done.returncode)}.")


def _child(argv: list[str]) -> int:
    from qa.settings import Settings

    logging.disable(logging.CRITICAL)
    settings = Settings(_env_file=None, **json.loads(argv[0]))
    from qa.store import store_error_types

    findings: tuple[type[BaseException], ...] = (QAError, *store_error_types())
    try:
        found = inspect_store(settings)
    except findings as exc:  # a store that can't be read is the finding; our bugs crash the child
        text = str(exc).splitlines()[0] if str(exc) else ""
        print(json.dumps({"error": f"{text} ({type(exc).__name__})".strip(), "roots": _roots_from_sqlite(settings)}))
        return 3
    print(json.dumps(found.__dict__))
    return 0


def _roots_from_sqlite(settings: Settings) -> list[str]:
    """The folders chunks were ingested from, read from Chroma's SQLite file without opening Chroma."""
    path = settings.store_path / "chroma.sqlite3"
    if settings.chroma_host or not path.is_file():
        return []
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute("SELECT DISTINCT string_value FROM embedding_metadata WHERE key = 'root'").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        log.debug("could not read roots from %s: %s", path, exc)
        return []
    return sorted(str(r[0]) for r in rows if r[0])


# -- repair -----------------------------------------------------------------------------------------


def repair(engine: Engine, found: Findings) -> list[str]:
    """Re-embed what `found` says is damaged, or rebuild a store that can't be opened; holds the writer lock."""
    settings = engine.settings
    lines: list[str] = []
    with engine.writing(command="qa check --repair"):
        roots = list(found.roots)
        if found.problem:
            from qa.store import probe_unlocked

            probe_unlocked(settings)  # a store that hangs because another process holds it is left alone
            roots = roots or _roots_from_sqlite(settings) or [str(settings.seeds_dir.resolve())]
            lines.append(_set_aside(engine))
        else:
            store = engine.store
            if found.orphan_sentences:
                store.delete_sentences(found.orphan_sentences)
                lines.append(f"Removed {len(found.orphan_sentences)} sentence vectors that belonged to no chunk.")
            gone = _chunks_from_missing_folders(engine, found, roots)
            if gone:
                lines.append(gone)
        for root in roots:
            if not Path(root).is_dir():
                lines.append(f"Not re-indexed: {root} is no longer a folder.")
                continue
            report = engine.ingest(root, progress=False)
            lines.append(
                f"Re-indexed {root}: {report.chunks_embedded} chunks embedded"
                + (f" ({report.chunks_repaired} repaired)" if report.chunks_repaired else "")
                + f", {report.chunks_deleted} deleted."
            )
    return lines


def _set_aside(engine: Engine) -> str:
    """Move an unopenable store out of the way (embedded: renamed, kept; server: its collections dropped)."""
    settings = engine.settings
    if settings.chroma_host:
        import chromadb
        import chromadb.config

        from qa.store import store_error_types

        client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port,
                                     settings=chromadb.config.Settings(anonymized_telemetry=False))
        for kind in ("chunks", "sentences"):
            try:
                client.delete_collection(f"{settings.collection}-{kind}")
            except store_error_types() as exc:  # already gone, or unreadable: rebuilt either way
                log.debug("dropping %s-%s: %s", settings.collection, kind, exc)
        engine.reopen()
        return f"Dropped the collections {settings.collection}-chunks and -sentences on the server; rebuilding them."
    aside = settings.store_path.with_name(f"{settings.store_path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    settings.store_path.rename(aside)
    engine.reopen()
    return f"Moved the store that can't be opened to {aside}; rebuilding it from the documents."


def _chunks_from_missing_folders(engine: Engine, found: Findings, roots: list[str]) -> str:
    """Damaged chunks from folders that are gone can't be re-embedded: drop them so questions don't fail on them."""
    missing = {r for r in roots if not Path(r).is_dir()}
    if not missing or not found.damaged_chunks:
        return ""
    store = engine.store
    doomed = [r.id for r in store.records("chunks") if r.id in found.damaged_chunks and r.root in missing]
    if not doomed:
        return ""
    store.delete(doomed)
    return f"Removed {len(doomed)} damaged chunks whose folder is gone (nothing on disk to re-embed them from)."


@click.command("check")
@click.option("--repair", "do_repair", is_flag=True, help="Re-embed what is missing; rebuild a store that can't be opened.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def check_command(do_repair: bool, as_json: bool) -> None:
    """Read every stored chunk and sentence back with its vector and text; --repair fixes what is damaged."""
    from qa.errors import friendly_errors
    from qa.settings import load_settings

    @friendly_errors
    def run() -> None:
        settings = load_settings()
        found = check_store(settings)
        if not do_repair or found.healthy:
            if as_json:
                click.echo(json.dumps(found.to_dict(), indent=2))
            elif found.healthy:
                click.echo(f"The store is healthy: {found.summary()}")
            if not found.healthy:
                raise QAError(f"The store is damaged: {found.summary()} Run `qa check --repair` to rebuild it from the documents on disk.")
            return
        from qa.engine import Engine

        lines = repair(Engine.open(settings), found)
        after = check_store(settings)
        if as_json:
            click.echo(json.dumps({"before": found.to_dict(), "repairs": lines, "after": after.to_dict()}, indent=2))
        else:
            click.echo(f"Found: {found.summary()}")
            for line in lines:
                click.echo(line)
        if not after.healthy:
            raise QAError(f"The store is still damaged after the repair: {after.summary()}")
        if not as_json:
            click.echo(f"The store is healthy: {after.summary()}")

    run()


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
