"""PDF (pypdfium2, PDFium's text layer): lines rebuilt from positioned text, columns read in order.

PDFium maps CID fonts through their ToUnicode tables, which is what browser-printed PDFs use. A page
in two columns (a vertical gap that most lines keep clear of, with filled lines on both sides) is
read left column, then right, with full-width lines (titles) where they stand. Lines become
paragraphs at larger vertical gaps; a page is never split across blocks, so each block knows its page.
A PDF without any text layer (a scan) is refused with the fix: OCR it first.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from qa.errors import InputError
from qa.readers import HEADING, TABLE, TEXT, Block, Document, TextBuilder

log = logging.getLogger(__name__)


@dataclass
class _Segment:
    left: float
    bottom: float
    right: float
    top: float
    text: str
    bold: bool = False

    @property
    def height(self) -> float:
        return max(self.top - self.bottom, 0.1)


@dataclass
class _Line:
    segments: list[_Segment]
    column: int  # 0 full width, 1 left, 2 right

    @property
    def top(self) -> float:
        return max(s.top for s in self.segments)

    @property
    def bottom(self) -> float:
        return min(s.bottom for s in self.segments)

    @property
    def height(self) -> float:
        return statistics.median(s.height for s in self.segments)

    @property
    def text(self) -> str:
        return _joined(sorted(self.segments, key=lambda s: s.left))


def _joined(segments: list[_Segment]) -> str:
    """Segments of one line as text: a space where the gap between them is word-sized and none is there."""
    out = segments[0].text
    for a, b in zip(segments, segments[1:]):
        if b.left - a.right > 0.2 * min(a.height, b.height) and not out.endswith(" ") and not b.text.startswith(" "):
            out += " "
        out += b.text
    return " ".join(out.split())


class PdfReader:
    def read(self, path: Path) -> Document:
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                raise InputError("the PDF is password-protected; save an unprotected copy") from exc
            raise
        try:
            out = TextBuilder()
            chars = 0
            for index in range(len(pdf)):
                page = pdf[index]
                try:
                    textpage = page.get_textpage()
                    try:
                        chars += textpage.count_chars()
                        for part in page_parts(textpage, page.get_width()):
                            if isinstance(part, str):
                                out.add(part, TEXT, page=index + 1)
                            else:
                                out.add_table(part[0], part[1:], page=index + 1)
                    finally:
                        textpage.close()
                finally:
                    page.close()
            if not chars:
                raise InputError(
                    f"no text layer in its {len(pdf)} page(s): a scanned PDF? Run OCR on it first (e.g. `ocrmypdf in.pdf out.pdf`)"
                )
            title = str(pdf.get_metadata_dict(skip_empty=True).get("Title", ""))
            outline = _outline(pdf)
        finally:
            pdf.close()
        document = out.document(title=title)
        document.blocks = with_outline_headings(document, outline)
        return document


def _outline(pdf: Any) -> list[tuple[int, str, int]]:
    """The PDF's bookmarks as (level from 1, title, page from 1); LaTeX, DocBook and Word PDFs have them."""
    items = []
    try:
        for bookmark in pdf.get_toc(max_depth=6):
            dest = bookmark.get_dest()
            page = dest.get_index() if dest is not None else None
            title = " ".join((bookmark.get_title() or "").split())
            if page is not None and title:
                items.append((bookmark.level + 1, title, page + 1))
    except Exception as exc:  # a damaged outline costs the sections, never the text
        log.debug("PDF outline unreadable: %s", exc)
        return []
    return items


def with_outline_headings(document: Document, outline: list[tuple[int, str, int]]) -> list[Block]:
    """Blocks with the bookmarked headings marked as headings, so citations get a section path.

    A bookmark names its page, not its place on it: the heading is the first short block on that
    page (after the previous heading found there) whose text is the bookmark's title, perhaps
    behind a section number ("2.1 ASN.1 syntax" for the bookmark "ASN.1 syntax").
    """
    blocks = list(document.blocks)
    searched_from: dict[int, int] = {}
    for level, title, page in outline:
        want = title.lower()
        start = searched_from.get(page, 0)
        for i in range(start, len(blocks)):
            block = blocks[i]
            if block.page is None or block.page < page:
                continue
            if block.page > page:
                break
            text = " ".join(document.text[block.start : block.end].split()).lower()
            if block.kind != TABLE and len(text) <= len(want) + 12 and (text == want or text.endswith(want) or text.startswith(want)):
                blocks[i] = replace(block, kind=HEADING, level=level)
                searched_from[page] = i + 1
                break
    return blocks


def page_parts(textpage: Any, width: float) -> list[str | list[list[str]]]:
    """The page's text in reading order: paragraphs, and tables as lists of rows (the first is the header)."""
    segments = _segments(textpage)
    if not segments:
        return []
    gap = _column_gap(segments, width)
    lines: list[_Line] = []
    for column in (0, 1, 2):
        members = [s for s in segments if _column(s, gap) == column]
        lines.extend(_Line(group, column) for group in _group_lines(members))
    parts: list[str | list[list[str]]] = []
    ordered = _reading_order(lines)
    i = 0
    while i < len(ordered):
        rows = _table_at(ordered, i)
        if rows:
            table = ordered[i : i + rows]
            # Column headers only when the first row looks like one (bold over plain cells, as
            # fpdf2, browsers and DocBook print them); otherwise a row's values stand alone.
            header = all(s.bold for s in table[0].segments) and not all(s.bold for s in table[1].segments)
            parts.append([_cells(line) for line in table] if header else [[], *(_cells(line) for line in table)])
            i += rows
            continue
        j = i + 1
        while j < len(ordered) and not _table_at(ordered, j):
            j += 1
        parts.extend(_paragraphs(ordered[i:j]))
        i = j
    return parts


def _segments(textpage: Any) -> list[_Segment]:
    """Runs of characters in content order, cut at line ends and at jumps in position.

    Character by character, with PDFium's own word spaces (browsers place every glyph separately,
    so rectangles alone would lose the spaces or invent them inside words).
    """
    import pypdfium2.raw as raw

    segments: list[_Segment] = []
    current: list[Any] = []  # [left, bottom, right, top, chars, bold]

    def close() -> None:
        if current and "".join(current[4]).strip():
            segments.append(_Segment(current[0], current[1], current[2], current[3], "".join(current[4]), current[5]))
        current.clear()

    for i in range(textpage.count_chars()):
        ch = chr(raw.FPDFText_GetUnicode(textpage.raw, i) or 32)
        if ch in "\r\n":
            close()
            continue
        left, bottom, right, top = textpage.get_charbox(i, loose=True)
        if ch.isspace() or right - left <= 0 or top - bottom <= 0:
            if current and ch.isspace():
                current[4].append(" ")
            continue
        if ord(ch) < 32 or ch in "\ufffe\uffff":
            continue
        if current:
            height = max(current[3] - current[1], 0.1)
            centre = (bottom + top) / 2
            if not current[1] <= centre <= current[3] or left - current[2] > 1.5 * height or left < current[2] - 2 * height:
                close()
        if not current:
            bold = _is_bold(textpage, i)
            current.extend([left, bottom, right, top, [], bold])
        else:
            current[0], current[1] = min(current[0], left), min(current[1], bottom)
            current[2], current[3] = max(current[2], right), max(current[3], top)
        current[4].append(ch)
    close()
    return segments


_BOLD_NAMES = ("bold", "black", "heavy", "semibold", "demi")


def _is_bold(textpage: Any, index: int) -> bool:
    """Bold by weight, by the ForceBold flag, or by the font's name (base-14 fonts report no weight)."""
    import ctypes

    import pypdfium2.raw as raw

    if raw.FPDFText_GetFontWeight(textpage.raw, index) >= 600:
        return True
    name = ctypes.create_string_buffer(128)
    flags = ctypes.c_int()
    raw.FPDFText_GetFontInfo(textpage.raw, index, name, len(name), ctypes.byref(flags))
    return bool(flags.value & (1 << 18)) or any(word in name.value.decode("latin-1").lower() for word in _BOLD_NAMES)


def _cells(line: _Line) -> list[str]:
    return [" ".join(s.text.split()) for s in sorted(line.segments, key=lambda s: s.left)]


def _table_at(lines: list[_Line], i: int) -> int:
    """How many lines from `i` form a table: 3+ lines whose 2+ cells, set apart by wide gaps, start at the same x."""
    def columns(line: _Line) -> list[float] | None:
        segments = sorted(line.segments, key=lambda s: s.left)
        if len(segments) < 2:
            return None
        if any(b.left - a.right < 1.5 * line.height for a, b in zip(segments, segments[1:])):
            return None
        return [s.left for s in segments]

    first = columns(lines[i])
    if first is None:
        return 0
    n = 1
    while i + n < len(lines):
        other = columns(lines[i + n])
        if other is None or len(other) != len(first) or any(abs(a - b) > 4 for a, b in zip(first, other)):
            break
        n += 1
    return n if n >= 3 else 0


def _column(segment: _Segment, gap: float | None) -> int:
    if gap is None:
        return 0
    if segment.right <= gap:
        return 1
    if segment.left >= gap:
        return 2
    return 0


def _column_gap(segments: list[_Segment], width: float) -> float | None:
    """The x of a vertical gutter between two columns of text, or None for a one-column page."""
    if len(segments) < 6:
        return None
    best, best_crossing = None, len(segments)
    x = width * 0.3
    while x <= width * 0.7:
        crossing = sum(1 for s in segments if s.left < x < s.right)
        if crossing < best_crossing:
            best, best_crossing = x, crossing
        x += 2.0
    if best is None or best_crossing > max(2, len(segments) // 10):
        return None
    left = [s for s in segments if s.right <= best]
    right = [s for s in segments if s.left >= best]
    if len(left) < 3 or len(right) < 3:
        return None
    # Columns of prose fill their width with most lines; a table's cells don't (and must stay rows).
    for side in (left, right):
        lines = [(min(s.left for s in g), max(s.right for s in g)) for g in _group_lines(side)]
        if len(lines) < 3:
            return None
        edge_left, edge_right = min(a for a, _ in lines), max(b for _, b in lines)
        if statistics.median((b - a) / max(edge_right - edge_left, 1) for a, b in lines) < 0.6:
            return None
    return best


def _group_lines(segments: list[_Segment]) -> list[list[_Segment]]:
    groups: list[list[_Segment]] = []
    for segment in sorted(segments, key=lambda s: (-s.top, s.left)):
        centre = (segment.top + segment.bottom) / 2
        for group in groups[-3:]:
            g_top = max(s.top for s in group)
            g_bottom = min(s.bottom for s in group)
            if g_bottom <= centre <= g_top:
                group.append(segment)
                break
        else:
            groups.append([segment])
    return groups


def _reading_order(lines: list[_Line]) -> list[_Line]:
    """Full-width lines in place; between two of them, the left column's lines, then the right's."""
    full = sorted((line for line in lines if line.column == 0), key=lambda line: -line.top)
    columns = [line for line in lines if line.column != 0]
    ordered: list[_Line] = []
    upper = float("inf")
    for breaker in [*full, None]:
        lower = breaker.top if breaker is not None else float("-inf")
        band = [line for line in columns if lower < line.top <= upper]
        ordered.extend(sorted(band, key=lambda line: (line.column, -line.top)))
        if breaker is not None:
            ordered.append(breaker)
            upper = breaker.top
    return ordered


def _paragraphs(lines: list[_Line]) -> list[str]:
    if not lines:
        return []
    heights = [line.height for line in lines]
    typical = statistics.median(heights)
    paragraphs: list[list[str]] = [[lines[0].text]]
    for previous, line in zip(lines, lines[1:]):
        gap = previous.bottom - line.top
        # A full-width paragraph's last line can sit left of the gutter: same paragraph if it follows closely.
        moved = line.column != previous.column and not (previous.column == 0 and line.column == 1)
        new_block = moved or gap > 0.8 * typical or gap < -typical or abs(line.height - previous.height) > 0.25 * typical
        if new_block:
            paragraphs.append([line.text])
        else:
            paragraphs[-1].append(line.text)
    return [_join(p) for p in paragraphs]


def _join(lines: list[str]) -> str:
    text = lines[0]
    for line in lines[1:]:
        if text.endswith("-") and line[:1].islower():
            text = text[:-1] + line  # a word hyphenated at the line end
        else:
            text = f"{text} {line}"
    return text
