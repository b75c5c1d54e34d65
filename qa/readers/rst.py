"""reStructuredText (docutils): sections become the heading path; tables become "Header: value" rows.

File inclusion and raw passthrough are switched off: a document must not pull in other files.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from qa.readers import CODE, HEADING, TEXT, Document, TextBuilder
from qa.readers.text import decode

_SETTINGS = {
    "report_level": 5,  # no system messages in the text
    "halt_level": 5,
    "warning_stream": None,  # replaced per call
    "file_insertion_enabled": False,
    "raw_enabled": False,
    "input_encoding": "unicode",
    "syntax_highlight": "none",
}


class RstReader:
    def read(self, path: Path) -> Document:
        return parse_rst(decode(path.read_bytes()))


def parse_rst(source: str) -> Document:
    from docutils import nodes
    from docutils.core import publish_doctree

    doctree = publish_doctree(source, settings_overrides={**_SETTINGS, "warning_stream": io.StringIO()})
    out = TextBuilder()
    title = ""
    for child in doctree.children:
        if isinstance(child, nodes.Element) and child.tagname == "title":
            title = child.astext()
    _walk(doctree, out, level=1 if title else 0)
    return out.document(title=title)


_SKIP = {"system_message", "comment", "substitution_definition", "target", "raw", "problematic", "pending",
         "decoration", "docinfo", "meta", "footnote_reference", "citation_reference"}
_TEXT = {"paragraph", "line_block", "attribution", "rubric", "caption", "term", "field_name"}
_CODE = {"literal_block", "doctest_block", "math_block"}


def _walk(node: Any, out: TextBuilder, *, level: int) -> None:
    for child in node.children:
        name = child.tagname
        if name in _SKIP:
            continue
        if name in ("title", "subtitle"):
            out.add(child.astext(), HEADING, level=max(level, 1) + (name == "subtitle"))
        elif name == "section":
            _walk(child, out, level=level + 1)
        elif name in _TEXT:
            out.add(child.astext(), TEXT)
        elif name in _CODE:
            out.add(child.astext(), CODE)
        elif name == "table":
            _table(child, out)
        elif name == "#text":
            out.add(child.astext(), TEXT)
        else:
            _walk(child, out, level=level)


def _table(table: Any, out: TextBuilder) -> None:
    header: list[str] = []
    rows: list[list[str]] = []
    for group in table.findall(lambda n: n.tagname in ("thead", "tbody")):
        for row in group.children:
            cells = [" ".join(entry.astext().split()) for entry in row.children]
            if group.tagname == "thead" and not header:
                header = cells
            else:
                rows.append(cells)
    if not header and rows:
        header, rows = rows[0], rows[1:]
    out.add_table(header, rows)
