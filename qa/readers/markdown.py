"""Markdown (markdown-it-py, CommonMark + tables): headings become the heading path, not text.

Paragraphs keep their inline Markdown (emphasis, links, code) so the chat page and Slack can render
it; `qa.text.strip_markdown` gives the plain text where quotes are compared. A table row becomes
"Header: value; Header: value", never raw pipes; setext underlines and `#` markers are dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qa.readers import CODE, HEADING, TEXT, Document, TextBuilder
from qa.readers.text import decode


class MarkdownReader:
    def read(self, path: Path) -> Document:
        return parse_markdown(decode(path.read_bytes()))


def parse_markdown(source: str) -> Document:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    out = TextBuilder()
    title = ""
    table: list[list[str]] | None = None
    row: list[str] = []
    i = 0
    while i < len(tokens):
        token: Any = tokens[i]
        kind = token.type
        if kind == "heading_open":
            text = tokens[i + 1].content
            level = int(token.tag[1:])
            if level == 1 and not title:
                title = text
            out.add(text, HEADING, level=level)
            i += 3
            continue
        if kind == "table_open":
            table = []
        elif kind == "tr_open":
            row = []
        elif kind in ("th_open", "td_open"):
            row.append(tokens[i + 1].content)
        elif kind == "tr_close" and table is not None:
            table.append(row)
        elif kind == "table_close" and table:
            out.add_table(table[0], table[1:])
            table = None
        elif kind == "paragraph_open":
            out.add(tokens[i + 1].content, TEXT)
        elif kind in ("fence", "code_block"):
            out.add(token.content, CODE)
        i += 1
    return out.document(title=title, markup="markdown")
