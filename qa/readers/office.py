"""Word (.docx, python-docx) and PowerPoint (.pptx, python-pptx).

DOCX: heading styles ("Heading 1", "Title") become the heading path; tables become "Header: value"
rows. A .docx has no pages until a word processor lays it out, so its citations carry sections only.
PPTX: each slide is a page whose title heads its section; text boxes, tables and speaker notes are read
top to bottom, left to right.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qa.readers import HEADING, TEXT, Document, TextBuilder

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


class DocxReader:
    def read(self, path: Path) -> Document:
        import docx
        from docx.table import Table

        document = docx.Document(str(path))
        out = TextBuilder()
        title = str(document.core_properties.title or "")
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                rows = [[cell.text for cell in row.cells] for row in item.rows]
                if rows:
                    out.add_table(rows[0], _unmerged(rows[1:]))
                continue
            style = (item.style.name if item.style is not None else "") or ""
            if style.lower() == "title":
                title = title or item.text
                out.add(item.text, HEADING, level=1)
            elif match := _HEADING_STYLE.match(style):
                out.add(item.text, HEADING, level=int(match.group(1)))
            else:
                out.add(item.text, TEXT)
        return out.document(title=title)


def _unmerged(rows: list[list[str]]) -> list[list[str]]:
    # python-docx repeats a merged cell's text in each grid column it spans; say it once.
    return [[cell if i == 0 or cell != row[i - 1] else "" for i, cell in enumerate(row)] for row in rows]


class PptxReader:
    def read(self, path: Path) -> Document:
        from pptx import Presentation

        presentation = Presentation(str(path))
        out = TextBuilder()
        title = str(presentation.core_properties.title or "")
        for number, slide in enumerate(presentation.slides, start=1):
            heading = slide.shapes.title
            heading_text = heading.text_frame.text if heading is not None and heading.has_text_frame else ""
            title = title or heading_text
            out.add(heading_text.strip() or f"Slide {number}", HEADING, level=1, page=number)
            for shape in _in_reading_order(slide.shapes):
                if heading is not None and shape.shape_id == heading.shape_id:
                    continue
                _shape(shape, out, number)
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                out.add(slide.notes_slide.notes_text_frame.text, TEXT, page=number)
        return out.document(title=title)


def _in_reading_order(shapes: Any) -> list[Any]:
    return sorted(shapes, key=lambda s: (int(s.top or 0) // 100_000, int(s.left or 0)))


def _shape(shape: Any, out: TextBuilder, page: int) -> None:
    if shape.shape_type is not None and int(shape.shape_type) == 6:  # a group: read its members
        for member in _in_reading_order(shape.shapes):
            _shape(member, out, page)
    elif getattr(shape, "has_table", False) and shape.has_table:
        rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
        if rows:
            out.add_table(rows[0], rows[1:], page=page)
    elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        for paragraph in shape.text_frame.paragraphs:
            out.add(paragraph.text, TEXT, page=page)
