"""Find and read documents, then cut them into sentence-aligned chunks that remember where they came from."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from qa.errors import InputError
from qa.text import count_spans, iter_windows, paragraph_spans, sentence_spans, split_long
from qa.types import Chunk, Sentence

log = logging.getLogger(__name__)

TokenCounter = Callable[[list[str]], list[int]]


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise InputError("looks like a binary file, not text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start}); convert it with `iconv -t UTF-8`") from None
    # Keep offsets meaningful: only Windows/Mac line ends are normalised, nothing else.
    return text.replace("\r\n", "\n").replace("\r", "\n")


# Readers by file suffix: one entry per format. A reader returns the text that offsets refer to.
READERS: dict[str, Callable[[Path], str]] = {".txt": _read_text, ".md": _read_text, ".markdown": _read_text}


@dataclass(frozen=True)
class Document:
    source: str  # path relative to the corpus root, POSIX style
    path: Path
    title: str
    text: str
    file_hash: str


@dataclass
class Scan:
    documents: list[Document]
    skipped: dict[str, str]


def find_files(root: Path) -> list[Path]:
    """Supported files under `root`, sorted; symlinks leading outside `root` are not followed."""
    if not root.exists():
        raise InputError(f"Folder not found: {root}. Pass a folder of .txt or .md files.")
    if not root.is_dir():
        raise InputError(f"Not a folder: {root}. Pass a folder of .txt or .md files.")
    real_root = root.resolve()
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in READERS:
                continue
            found.append(Path(dirpath) / name)
    return [p for p in found if _inside(p, real_root)]


def _inside(path: Path, real_root: Path) -> bool:
    try:
        path.resolve().relative_to(real_root)
    except (ValueError, OSError):
        log.warning("skipped %s: it points outside %s", path, real_root)
        return False
    return True


def load_folder(root: Path, *, max_bytes: int) -> Scan:
    """Read every supported file; unreadable ones are reported in `skipped` instead of failing the lot."""
    documents: list[Document] = []
    skipped: dict[str, str] = {}
    for path in find_files(root):
        source = path.relative_to(root).as_posix()
        try:
            documents.append(load_file(path, source=source, max_bytes=max_bytes))
        except InputError as exc:
            skipped[source] = str(exc)
        except OSError as exc:
            skipped[source] = f"cannot read it ({exc.strerror or exc})"
    return Scan(documents, skipped)


def load_file(path: Path, *, source: str, max_bytes: int) -> Document:
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):  # reading a FIFO named x.txt would wait for a writer forever
        raise InputError("not a regular file (a pipe, socket or device); only regular files are read")
    size = info.st_size
    if size > max_bytes:
        raise InputError(f"too large ({size / 1e6:.1f} MB, limit {max_bytes / 1e6:.0f} MB: QA_MAX_FILE_MB)")
    text = READERS[path.suffix.lower()](path)
    if not text.strip():
        raise InputError("empty file")
    file_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Document(source=source, path=path, title=_title(path, text), text=text, file_hash=file_hash)


def _title(path: Path, text: str) -> str:
    heading = re.match(r"\s*#\s+(.+)", text)
    if path.suffix.lower() in {".md", ".markdown"} and heading:
        return heading.group(1).strip()
    stem = path.name.split(".")[0]
    return re.sub(r"[_\s]+", " ", stem).strip() or path.name


def chunk_document(doc: Document, *, count_tokens: TokenCounter, max_tokens: int) -> list[Chunk]:
    """Paragraphs, then runs of whole sentences up to `max_tokens` word pieces each.

    A single sentence longer than the window is split at clause or word boundaries, since the
    encoder would otherwise silently drop its tail.
    """
    chunks: list[Chunk] = []
    for number, (p_start, p_end) in enumerate(paragraph_spans(doc.text), start=1):
        spans = sentence_spans(doc.text[p_start:p_end], p_start)
        sizes = count_spans(doc.text, spans, count_tokens=count_tokens, max_tokens=max_tokens)
        spans, sizes = _split_oversize(doc.text, spans, sizes, count_tokens, max_tokens)
        for i, j in iter_windows(sizes, max_tokens):
            start, end = spans[i][0], spans[j - 1][1]
            text = doc.text[start:end]
            sentences = tuple(Sentence(s, e) for s, e in spans[i:j])
            chunks.append(
                Chunk(
                    id=chunk_id(doc.source, start, text),
                    source=doc.source,
                    title=doc.title,
                    paragraph=number,
                    start=start,
                    end=end,
                    text=text,
                    sentences=sentences,
                    file_hash=doc.file_hash,
                )
            )
    return chunks


def chunk_id(source: str, start: int, text: str) -> str:
    """Content-derived id: the same text at the same place in the same file keeps its id across runs."""
    return hashlib.sha256(f"{source}\x00{start}\x00{text}".encode()).hexdigest()[:32]


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
        out_sizes.extend(count_spans(text, pieces, count_tokens=count_tokens, max_tokens=max_tokens))
    return out_spans, out_sizes


def _pieces(
    text: str, start: int, end: int, max_tokens: int, count_tokens: TokenCounter
) -> list[tuple[int, int]]:
    """Cut one over-long sentence at clause marks or whitespace (windows inside a run without any)."""
    return split_long(text, start, end, count_tokens=count_tokens, max_tokens=max_tokens)


def iter_chunks(documents: Iterable[Document], *, count_tokens: TokenCounter, max_tokens: int) -> Iterable[Chunk]:
    for doc in documents:
        yield from chunk_document(doc, count_tokens=count_tokens, max_tokens=max_tokens)
