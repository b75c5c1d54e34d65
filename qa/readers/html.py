"""HTML (beautifulsoup4): the page's main content, its headings as the heading path.

Navigation, scripts, styles, forms, headers and footers, hidden elements and cookie/consent banners
are dropped before any text is taken; when the page marks its content with `<main>` or `<article>`,
only that is read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qa.readers import CODE, HEADING, TEXT, Document, TextBuilder
from qa.readers.text import decode

_DROP_TAGS = ["script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "embed", "nav",
              "header", "footer", "aside", "form", "button", "select", "input", "textarea", "dialog", "head"]
_DROP_ROLES = {"navigation", "banner", "contentinfo", "dialog", "alertdialog", "search", "complementary", "menu", "menubar"}
_BOILERPLATE = re.compile(r"cookie|consent|gdpr|banner|newsletter|popup|modal|breadcrumb|sidebar|skip-link|share|social",
                          re.IGNORECASE)
_BLOCKS = {"p", "li", "dt", "dd", "blockquote", "figcaption", "caption", "summary", "address"}
_CONTAINERS = {"div", "section", "article", "main", "body", "ul", "ol", "dl", "details", "figure", "center", "html",
               "table", "tbody", "thead", "tfoot", "tr"}
_HEADING = re.compile(r"^h([1-6])$")


class HtmlReader:
    def read(self, path: Path) -> Document:
        return parse_html(_html_text(path.read_bytes()))


def _html_text(raw: bytes) -> str:
    """UTF-8 if it is; else the charset the page declares; else the one `decode` detects."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from bs4.dammit import EncodingDetector

    declared = EncodingDetector.find_declared_encoding(raw, is_html=True)
    if declared:
        try:
            return raw.decode(declared, errors="replace")
        except LookupError:
            pass
    return decode(raw)


def parse_html(markup: bytes | str) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(_is_boilerplate):
        tag.decompose()
    root: Any = soup.find("main") or soup.find("article") or soup.body or soup
    out = TextBuilder()
    _walk(root, out)
    if not title and (h1 := soup.find("h1")):
        title = h1.get_text(" ", strip=True)
    return out.document(title=title)


def _is_boilerplate(tag: Any) -> bool:
    if tag.attrs is None or tag.name in ("html", "body", "main", "article"):
        return False
    if tag.has_attr("hidden") or tag.get("aria-hidden") == "true" or tag.get("role") in _DROP_ROLES:
        return True
    style = str(tag.get("style", "")).replace(" ", "").lower()
    if "display:none" in style or "visibility:hidden" in style:
        return True
    names = " ".join([str(tag.get("id", "")), *tag.get("class", []), str(tag.get("aria-label", ""))])
    return bool(names.strip()) and bool(_BOILERPLATE.search(names))


def _walk(node: Any, out: TextBuilder) -> None:
    """Headings, paragraphs and tables in document order; loose inline text becomes its own paragraph."""
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.add(" ".join(" ".join(pending).split()), TEXT)
            pending.clear()

    for child in node.children:
        name = getattr(child, "name", None)
        if name is None:
            if type(child).__name__ == "NavigableString":
                pending.append(str(child))
            continue
        if heading := _HEADING.match(name):
            flush()
            out.add(child.get_text(" ", strip=True), HEADING, level=int(heading.group(1)))
        elif name == "table":
            flush()
            _table(child, out)
        elif name == "pre":
            flush()
            out.add(child.get_text(), CODE)
        elif name in _BLOCKS and not child.find(list(_BLOCKS | {"table", "pre", "h1", "h2", "h3", "h4", "h5", "h6"})):
            flush()
            out.add(" ".join(child.get_text(" ", strip=True).split()), TEXT)
        elif name in _CONTAINERS or name in _BLOCKS:
            flush()
            _walk(child, out)
        elif name == "br":
            flush()
        else:
            pending.append(child.get_text(" "))
    flush()


def _table(table: Any, out: TextBuilder) -> None:
    rows = []
    header: list[str] = []
    for tr in table.find_all("tr"):
        cells = tr.find_all(["th", "td"])
        texts = [c.get_text(" ", strip=True) for c in cells]
        if not header and cells and all(c.name == "th" for c in cells):
            header = texts
        else:
            rows.append(texts)
    if not header and len(rows) > 1:
        header, rows = rows[0], rows[1:]
    out.add_table(header, rows)
