"""One reader per file format behind one protocol: `read(path) -> Document`.

A reader returns the text that citations' offsets refer to, cut into blocks (headings, paragraphs,
table rows) that carry their location: the page or slide, and the heading level. `read_document`
picks the reader by file suffix; an unsupported or unreadable file raises `InputError` with the
reason, which the ingest reports as a skip, never silently.

| suffix | reader | library |
|---|---|---|
| .txt | `qa.readers.text` | charset-normalizer (encodings) |
| .md .markdown | `qa.readers.markdown` | markdown-it-py |
| .rst | `qa.readers.rst` | docutils |
| .pdf | `qa.readers.pdf` | pypdfium2 |
| .docx | `qa.readers.office` | python-docx |
| .pptx | `qa.readers.office` | python-pptx |
| .html .htm | `qa.readers.html` | beautifulsoup4 |
| .csv .tsv | `qa.readers.table` | csv (standard library), charset-normalizer |

Libraries are imported inside the reader that needs them, so `qa --help` stays fast.
"""

from __future__ import annotations

import bisect
import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from qa.errors import InputError

HEADING = "heading"
TEXT = "text"
TABLE = "table"  # one block per table; its `units` are the rows, each quoted alone
CODE = "code"


@dataclass(frozen=True)
class Block:
    """A span of the extracted text: a heading, a paragraph or a table, and where it sits."""

    start: int
    end: int
    kind: str = TEXT
    level: int = 0  # headings: 1 = top level
    page: int | None = None  # PDF page or PPTX slide, from 1
    units: tuple[tuple[int, int], ...] = ()  # fixed sentence-like units (table rows), absolute offsets


@dataclass(frozen=True)
class Location:
    """Where an offset of the extracted text sits: page or slide, and heading path ("A › B")."""

    page: int | None
    section: str


@dataclass
class Document:
    """What a reader returns: the extracted text, its blocks in reading order and a title if the file names one."""

    text: str
    blocks: list[Block]
    title: str = ""
    markup: str = ""  # "markdown" when inline Markdown (emphasis, links, code) is kept in the text
    _starts: list[int] = field(default_factory=list, repr=False)
    _locations: list[Location] = field(default_factory=list, repr=False)

    def locations(self) -> list[tuple[int, Location]]:
        """The location map: `(offset, location)` pairs, each in force up to the next offset."""
        self._index()
        return list(zip(self._starts, self._locations))

    def locate(self, offset: int) -> Location:
        """Page and heading path at character `offset` of the text."""
        self._index()
        i = bisect.bisect_right(self._starts, offset) - 1
        return self._locations[i] if i >= 0 else Location(None, "")

    def _index(self) -> None:
        if self._starts or not self.blocks:
            return
        for block, section in with_sections(self.blocks, self.text):
            self._starts.append(block.start)
            self._locations.append(Location(block.page, section))


SECTION_SEPARATOR = " › "


def with_sections(blocks: Iterable[Block], text: str) -> Iterable[tuple[Block, str]]:
    """Each block with the heading path in force at it (a heading's own path includes itself)."""
    path: list[tuple[int, str]] = []
    for block in blocks:
        if block.kind == HEADING:
            while path and path[-1][0] >= block.level:
                path.pop()
            path.append((block.level, " ".join(text[block.start : block.end].split())))
        yield block, SECTION_SEPARATOR.join(title for _, title in path)


class Reader(Protocol):
    """Reads one file format."""

    def read(self, path: Path) -> Document: ...


class TextBuilder:
    """Builds extracted text block by block, recording each block's offsets; blocks are separated by a blank line."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.blocks: list[Block] = []

    def _append(self, text: str) -> tuple[int, int]:
        if self._length:
            self._parts.append("\n\n")
            self._length += 2
        start = self._length
        self._parts.append(text)
        self._length += len(text)
        return start, self._length

    def add(self, text: str, kind: str = TEXT, *, level: int = 0, page: int | None = None) -> None:
        text = text.strip()
        if not text:
            return
        if kind == HEADING:
            text = " ".join(text.split())
        start, end = self._append(text)
        self.blocks.append(Block(start, end, kind, level, page))

    def add_table(self, header: list[str], rows: Iterable[list[str]], *, page: int | None = None) -> None:
        """A table as one block of rows, each row "Header: value; Header: value" on its own line."""
        lines = [line for line in (row_text(header, row) for row in rows) if line]
        if not lines:
            return
        start, end = self._append("\n".join(lines))
        units, at = [], start
        for line in lines:
            units.append((at, at + len(line)))
            at += len(line) + 1
        self.blocks.append(Block(start, end, TABLE, 0, page, tuple(units)))

    def document(self, *, title: str = "", markup: str = "") -> Document:
        return Document("".join(self._parts), self.blocks, title=" ".join(title.split()), markup=markup)


def row_text(header: list[str], row: list[str]) -> str:
    """One table row as "Header: value" pairs; a row without headers is its values joined by "; "."""
    pairs = []
    for i, value in enumerate(row):
        value = " ".join(value.split())
        if not value:
            continue
        name = " ".join(header[i].split()) if i < len(header) else ""
        pairs.append(f"{name}: {value}" if name and name != value else value)
    return "; ".join(pairs)


# Readers by file suffix: module and class, imported on first use.
_READERS: dict[str, tuple[str, str]] = {
    ".txt": ("qa.readers.text", "TextReader"),
    ".md": ("qa.readers.markdown", "MarkdownReader"),
    ".markdown": ("qa.readers.markdown", "MarkdownReader"),
    ".rst": ("qa.readers.rst", "RstReader"),
    ".pdf": ("qa.readers.pdf", "PdfReader"),
    ".docx": ("qa.readers.office", "DocxReader"),
    ".pptx": ("qa.readers.office", "PptxReader"),
    ".html": ("qa.readers.html", "HtmlReader"),
    ".htm": ("qa.readers.html", "HtmlReader"),
    ".csv": ("qa.readers.table", "CsvReader"),
    ".tsv": ("qa.readers.table", "CsvReader"),
}
SUFFIXES: tuple[str, ...] = tuple(_READERS)
FORMATS = "PDF, Word (.docx), PowerPoint (.pptx), HTML, CSV, reStructuredText, Markdown and text"


def supported(path: Path) -> bool:
    return path.suffix.lower() in _READERS


def reader_for(path: Path) -> Reader:
    """The reader for `path`'s file type; `InputError` for a type no reader handles."""
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise InputError(f"unsupported file type {suffix or '(no suffix)'}; readable: {', '.join(SUFFIXES)}")
    module, name = _READERS[suffix]
    reader: Reader = getattr(importlib.import_module(module), name)()
    return reader


def read_document(path: Path) -> Document:
    """Extract `path`'s text and locations; `InputError` says why a file can't be read."""
    reader = reader_for(path)
    try:
        document = reader.read(path)
    except (InputError, OSError):
        raise
    except Exception as exc:  # each library raises its own types for a damaged file
        raise InputError(f"unreadable {path.suffix.lower().lstrip('.').upper()} file ({type(exc).__name__}: {_first_line(exc)})") from exc
    if not document.text.strip():
        raise InputError("no text in it")
    return document


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no details"
