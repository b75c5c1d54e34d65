"""Find and read documents, then cut them into sentence-aligned chunks that remember where they came from."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from qa.errors import InputError
from qa.readers import FORMATS, HEADING, SUFFIXES, TABLE, TEXT, Block, read_document, reader_for, supported, with_sections
from qa.text import iter_windows, paragraph_spans, sentence_spans
from qa.types import Chunk, Sentence, doc_id

log = logging.getLogger(__name__)

TokenCounter = Callable[[list[str]], list[int]]


# Readers by file suffix live in `qa.readers` (one per format); this is the list of readable suffixes.
READERS: tuple[str, ...] = SUFFIXES


@dataclass(frozen=True)
class Document:
    source: str  # path relative to the ingested root, POSIX style
    path: Path
    title: str
    text: str
    file_hash: str
    root: str = ""  # the ingested folder, resolved: identity = (root, source)
    blocks: tuple[Block, ...] = ()
    markup: str = ""

    @property
    def doc_id(self) -> str:
        return doc_id(self.root, self.source)


@dataclass
class Scan:
    documents: list[Document]
    skipped: dict[str, str]
    root: Path | None = None
    # Set when one file was ingested: only these sources are compared with the store (nothing else is removed).
    only: set[str] | None = None


def find_files(root: Path) -> list[Path]:
    """Supported files under `root`, sorted; symlinks leading outside `root` are not followed."""
    found, _ = walk_folder(root)
    return [p for p in found if supported(p)]


def walk_folder(root: Path) -> tuple[list[Path], dict[Path, str]]:
    """Every visible file under `root` (sorted), and the ones refused on the way with their reason."""
    if not root.exists():
        raise InputError(f"Folder not found: {root}. Pass a folder, or one file ({FORMATS}).")
    if not root.is_dir():
        raise InputError(f"Not a folder: {root}. Pass a folder of documents.")
    real_root = root.resolve()
    found: list[Path] = []
    refused: dict[Path, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if _inside(path, real_root):
                found.append(path)
            else:
                refused[path] = f"it points outside {root}; not followed"
    return found, refused


def _inside(path: Path, real_root: Path) -> bool:
    try:
        path.resolve().relative_to(real_root)
    except (ValueError, OSError):
        return False
    return True


def load_path(path: Path, *, max_bytes: int) -> Scan:
    """A folder (everything in it) or one file (its folder is the root, and only it is compared)."""
    if path.is_file():
        root = path.parent
        source = path.name
        scan = Scan([], {}, root=root, only={source})
        _load_into(scan, path, source, root, max_bytes)
        return scan
    return load_folder(path, max_bytes=max_bytes)


def load_folder(root: Path, *, max_bytes: int) -> Scan:
    """Read every file; unsupported or unreadable ones are reported in `skipped` instead of failing the lot."""
    found, refused = walk_folder(root)
    scan = Scan([], {p.relative_to(root).as_posix(): reason for p, reason in refused.items()}, root=root)
    for path in found:
        _load_into(scan, path, path.relative_to(root).as_posix(), root, max_bytes)
    return scan


def _load_into(scan: Scan, path: Path, source: str, root: Path, max_bytes: int) -> None:
    try:
        scan.documents.append(load_file(path, source=source, max_bytes=max_bytes, root=root_key(root)))
    except InputError as exc:
        scan.skipped[source] = str(exc)
    except OSError as exc:
        scan.skipped[source] = f"cannot read it ({exc.strerror or exc})"


def root_key(root: Path) -> str:
    """How the store names an ingested folder: its resolved absolute path."""
    return str(root.resolve())


def load_file(path: Path, *, source: str, max_bytes: int, root: str = "") -> Document:
    if not supported(path):
        reader_for(path)  # raises the "unsupported file type" InputError
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(f"too large ({size / 1e6:.1f} MB, limit {max_bytes / 1e6:.0f} MB: QA_MAX_FILE_MB)")
    if size == 0:
        raise InputError("empty file")
    extracted = read_document(path)
    text = extracted.text
    if not text.strip():
        raise InputError("empty file")
    file_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Document(
        source=source, path=path, title=extracted.title or _title(path), text=text, file_hash=file_hash,
        root=root, blocks=tuple(extracted.blocks), markup=extracted.markup,
    )


def _title(path: Path) -> str:
    stem = path.name.split(".")[0]
    return re.sub(r"[_\s]+", " ", stem).strip() or path.name


def save_text(data_dir: Path, doc: Document) -> None:
    """Keep the extracted text under QA_DATA_DIR: what citations' offsets refer to (`quote == text[start:end]`)."""
    path = text_path(data_dir, doc.doc_id)
    if read_saved_text(data_dir, doc.doc_id) == doc.text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(doc.text, encoding="utf-8", newline="")
    tmp.replace(path)


def text_path(data_dir: Path, key: str) -> Path:
    return data_dir / "documents" / f"{key}.txt"


def read_saved_text(data_dir: Path, key: str) -> str | None:
    """A document's extracted text as ingested, or None if it was never stored (or was removed)."""
    if not re.fullmatch(r"[0-9a-f]{24}", key):
        return None
    try:
        with open(text_path(data_dir, key), encoding="utf-8", newline="") as fh:
            return fh.read()
    except OSError:
        return None


def chunk_document(doc: Document, *, count_tokens: TokenCounter, max_tokens: int) -> list[Chunk]:
    """Blocks (paragraphs, table rows), then runs of whole sentences up to `max_tokens` word pieces each.

    Headings are never part of a chunk: they become its heading path (`section`). A table's rows
    are its sentences, so a row is quoted whole with its headers. A single sentence longer than the
    window is split at clause or word boundaries, since the encoder would otherwise drop its tail.
    """
    blocks = doc.blocks or tuple(Block(s, e, TEXT) for s, e in paragraph_spans(doc.text))
    chunks: list[Chunk] = []
    number = 0
    for block, section in with_sections(blocks, doc.text):
        if block.kind == HEADING:
            continue
        number += 1
        if block.kind == TABLE and block.units:
            spans = list(block.units)
        else:
            spans = sentence_spans(doc.text[block.start : block.end], block.start)
        if not spans:
            continue
        sizes = count_tokens([doc.text[s:e] for s, e in spans])
        spans, sizes = _split_oversize(doc.text, spans, sizes, count_tokens, max_tokens)
        # A table row is a chunk of its own: rows don't complete each other the way a paragraph's
        # sentences do, so an answer quotes the one row that answers, never its neighbour too.
        windows = [(i, i + 1) for i in range(len(spans))] if block.kind == TABLE else iter_windows(sizes, max_tokens)
        for i, j in windows:
            start, end = spans[i][0], spans[j - 1][1]
            text = doc.text[start:end]
            sentences = tuple(Sentence(s, e) for s, e in spans[i:j])
            chunks.append(
                Chunk(
                    id=chunk_id(doc.source, start, text, root=doc.root),
                    source=doc.source,
                    title=doc.title,
                    paragraph=number,
                    start=start,
                    end=end,
                    text=text,
                    sentences=sentences,
                    file_hash=doc.file_hash,
                    page=block.page,
                    section=section,
                    root=doc.root,
                    markup=doc.markup,
                )
            )
    return chunks


def chunk_id(source: str, start: int, text: str, *, root: str = "") -> str:
    """Content-derived id: the same text at the same place in the same file of the same folder keeps its id.

    The folder is part of it, so a copy of a folder gets its own chunks: ingesting or pruning the
    copy never rewrites or deletes the original's.
    """
    key = f"{root}\x00{source}" if root else source
    return hashlib.sha256(f"{key}\x00{start}\x00{text}".encode()).hexdigest()[:32]


def _split_oversize(
    text: str,
    spans: list[tuple[int, int]],
    sizes: list[int],
    count_tokens: TokenCounter,
    max_tokens: int,
) -> tuple[list[tuple[int, int]], list[int]]:
    if all(n <= max_tokens for n in sizes):
        return spans, sizes
    out_spans: list[tuple[int, int]] = []
    out_sizes: list[int] = []
    for (s, e), n in zip(spans, sizes):
        if n <= max_tokens:
            out_spans.append((s, e))
            out_sizes.append(n)
            continue
        pieces = _pieces(text, s, e, max_tokens, count_tokens)
        out_spans.extend(pieces)
        out_sizes.extend(count_tokens([text[a:b] for a, b in pieces]))
    return out_spans, out_sizes


def _pieces(
    text: str, start: int, end: int, max_tokens: int, count_tokens: TokenCounter
) -> list[tuple[int, int]]:
    """Cut one over-long sentence at whitespace into pieces of at most `max_tokens` word pieces."""
    cuts = [m.end() for m in re.finditer(r"[;,:]?\s+", text[start:end])]
    bounds = [0, *cuts, end - start]
    segments = [(start + a, start + b) for a, b in zip(bounds, bounds[1:]) if b > a]
    sizes = count_tokens([text[a:b] for a, b in segments])
    pieces: list[tuple[int, int]] = []
    for i, j in iter_windows(sizes, max_tokens):
        a, b = segments[i][0], segments[j - 1][1]
        raw = text[a:b]
        a += len(raw) - len(raw.lstrip())
        b -= len(raw) - len(raw.rstrip())
        if b > a:
            pieces.append((a, b))
    return pieces


def iter_chunks(documents: Iterable[Document], *, count_tokens: TokenCounter, max_tokens: int) -> Iterable[Chunk]:
    for doc in documents:
        yield from chunk_document(doc, count_tokens=count_tokens, max_tokens=max_tokens)
