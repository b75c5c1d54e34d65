"""HTML for the chat page: answers with `[n]` markers, their sources, badges, the corpus table.

Every piece of document or user text goes through `html.escape`; nothing from a document or a
question is ever rendered as HTML. Inline Markdown (emphasis, code, http(s) links) is rendered only
for text from Markdown documents, by `markdown_inline` on the already escaped text. Each fragment is a single `<div>` with no blank line
inside, so the Chatbot's Markdown pass treats it as one raw HTML block and leaves its text alone
(a `*`, `[x](y)` or `$$` in a document stays literal: no injected links, images or formulas).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from qa.types import MARKER, Answer, Chunk, Citation

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

CSS = """
.qa-answer, .qa-question, .qa-error { line-height: 1.55; }
.qa-ref { color: var(--color-accent); font-weight: 600; font-size: 0.85em; vertical-align: super; }
.qa-badges { margin-top: 0.6em; display: flex; flex-wrap: wrap; gap: 0.4em; }
.qa-badge { display: inline-block; font-size: 0.75em; padding: 0.1em 0.6em; border-radius: 999px;
            border: 1px solid var(--border-color-accent); color: var(--body-text-color); }
.qa-badge-warn { border-color: #d97706; color: #b45309; background: #fffbeb; }
.qa-badge-abstain { border-color: #64748b; }
.qa-unsupported { text-decoration: underline wavy #d97706; text-underline-offset: 0.2em; }
.qa-unsupported-list ul { margin: 0.2em 0 0 1.2em; padding: 0; }
.qa-notice { margin-top: 0.5em; font-size: 0.85em; color: var(--body-text-color-subdued); }
.qa-sources { margin-top: 0.7em; border-top: 1px solid var(--border-color-primary); padding-top: 0.4em; }
.qa-sources-title { font-size: 0.8em; font-weight: 600; text-transform: uppercase; letter-spacing: 0.04em;
                    color: var(--body-text-color-subdued); }
.qa-source { margin: 0.3em 0; }
.qa-source summary { cursor: pointer; }
.qa-source-n { font-weight: 600; color: var(--color-accent); }
.qa-source-where { color: var(--body-text-color-subdued); font-size: 0.85em; }
.qa-passage { margin: 0.4em 0 0.2em 1.2em; padding: 0.5em 0.7em; border-left: 3px solid var(--color-accent);
              background: var(--background-fill-secondary); font-size: 0.9em; }
.qa-passage mark { background: #fde68a; color: inherit; padding: 0 0.1em; }
.qa-error { color: #b45309; }
.qa-pending { color: var(--body-text-color-subdued); }
.qa-source-title { font-weight: 600; }
.qa-docs { width: 100%; font-size: 0.85em; border-collapse: collapse; border: none !important; }
.qa-docs tr, .qa-docs td, .qa-docs th { border: none !important; }
.qa-docs td, .qa-docs th { padding: 0.25em 0.4em; text-align: left;
                           border-bottom: 1px solid var(--border-color-primary) !important; }
.qa-docs .qa-num { text-align: right; }
.qa-corpus-summary { margin: 0 0 0.4em 0; }
.qa-document { position: relative; max-height: 22em; overflow-y: auto; white-space: normal; }
.qa-document-note { font-size: 0.8em; color: var(--body-text-color-subdued); margin: 0.2em 0 0 1.2em; }
.qa-passage code { font-size: 0.95em; }
"""

# Opening a source scrolls its document box to the highlighted quote. `toggle` doesn't bubble, so
# one listener on the page catches it during capture; the chat HTML itself carries no script.
HEAD = """<script>
document.addEventListener('toggle', (event) => {
  const source = event.target;
  if (!source.open || !source.classList || !source.classList.contains('qa-source')) return;
  const box = source.querySelector('.qa-document');
  const mark = box && box.querySelector('mark');
  if (mark) box.scrollTop = Math.max(0, mark.offsetTop - box.clientHeight / 3);
}, true);
</script>"""

_DOCUMENT_WINDOW = 60_000  # characters shown either side of the quote when a document is longer than twice this


def _text(value: str) -> str:
    """Escaped text with line breaks kept and no blank line (which would end the HTML block)."""
    value = _CONTROL.sub("", value)  # NULs and terminal escapes typed or pasted in show as nothing
    return html.escape(value.strip(), quote=True).replace("\r\n", "\n").replace("\n", "<br>")


def render_question(question: str) -> str:
    return f'<div class="qa-question">{_text(question)}</div>'


def render_pending(partial: str = "") -> str:
    """The answer while it streams in: the text so far, or a placeholder before the first token."""
    if not partial.strip():
        return '<div class="qa-answer qa-pending">Searching the documents…</div>'
    return f'<div class="qa-answer">{_with_markers(partial)}<span class="qa-pending"> ▍</span></div>'


def render_error(message: str) -> str:
    return f'<div class="qa-error">{_text(message)}</div>'


def render_answer(answer: Answer, documents: Mapping[str, str] | None = None) -> str:
    """The answer text with `[n]` markers, a mode badge, any notice, then its numbered sources.

    `documents` maps `Citation.doc_id` to the document's extracted text: a source then opens to the
    whole document, scrolled to the highlighted quote, instead of just its passage.
    """
    quoted_markdown = answer.mode == "extractive" and any(c.markup == "markdown" for c in answer.citations)
    if answer.unsupported_sentences:  # LLM answers only: extractive ones quote
        text = _with_flags(answer)
    else:
        text = _with_markers(answer.text, markdown=quoted_markdown)
    parts = [f'<div class="qa-answer"><div class="qa-text">{text}</div>', render_badges(answer)]
    if answer.notice:
        parts.append(f'<div class="qa-notice">{_text(answer.notice)}</div>')
    if answer.unsupported_sentences:
        parts.append(render_unsupported(answer))
    if not answer.abstained and answer.citations:
        parts.append(render_sources(answer.citations, answer.retrieved, documents=documents))
    parts.append("</div>")
    return "".join(parts)


def render_badges(answer: Answer) -> str:
    if answer.mode == "extractive":
        mode = '<span class="qa-badge qa-badge-mode" title="Answered offline by quoting the documents">extractive · quotes</span>'
    else:
        model = answer.mode.removeprefix("llm:")
        mode = f'<span class="qa-badge qa-badge-mode" title="Written by a language model">LLM · {html.escape(model)}</span>'
    badges = [mode]
    if answer.abstained:
        badges.append('<span class="qa-badge qa-badge-abstain">no answer in the documents</span>')
    elif not answer.grounded:
        badges.append(
            '<span class="qa-badge qa-badge-warn" title="Most of this answer could not be matched to a source">'
            "⚠ ungrounded: not backed by the documents, check before relying on it</span>"
        )
    elif answer.unsupported_sentences:
        n = len(answer.unsupported_sentences)
        badges.append(
            f'<span class="qa-badge qa-badge-warn" title="Underlined sentences are not backed by a cited source">'
            f"⚠ {n} sentence{'' if n == 1 else 's'} not backed by a source</span>"
        )
    return f'<div class="qa-badges">{"".join(badges)}</div>'


def render_unsupported(answer: Answer) -> str:
    """One line per flagged sentence of an LLM answer, saying why it is not backed by a source."""
    items = "".join(
        f'<li>“{_inline(_CONTROL.sub("", " ".join(u.text.split())))}” <span class="qa-source-where">({html.escape(u.describe())})</span></li>'
        for u in answer.unsupported_sentences
    )
    return f'<div class="qa-notice qa-unsupported-list">⚠ Not backed by a source:<ul>{items}</ul></div>'


def _with_flags(answer: Answer) -> str:
    """The answer text with `[n]` markers, each flagged sentence underlined with its reason on hover."""
    text, out, at = answer.text, [], 0
    for u in sorted(answer.unsupported_sentences, key=lambda u: u.start):
        if u.start < at or text[u.start : u.end] != u.text:
            continue
        out.append(_markers_inline(text[at : u.start]))
        out.append(f'<span class="qa-unsupported" title="{html.escape(u.describe())}">{_markers_inline(u.text)}</span>')
        at = u.end
    out.append(_markers_inline(text[at:]))
    return "".join(out)


def _markers_inline(value: str) -> str:
    return MARKER.sub(r'<span class="qa-ref">\g<0></span>', _inline(_CONTROL.sub("", value)))


def render_sources(
    citations: Sequence[Citation], retrieved: Iterable[Chunk] = (), *, documents: Mapping[str, str] | None = None
) -> str:
    """Numbered sources (file, title, page or section), each expandable to its document with the quote marked."""
    starts = {c.id: c.start for c in retrieved}
    items = []
    for c in citations:
        title = "" if _title_from_name(c.title, c.source) else f'<span class="qa-source-title">{html.escape(c.title)}</span> · '
        document = (documents or {}).get(c.doc_id)
        if document is not None and document[c.start : c.end] == c.quote:
            body = render_document(c, document)
        else:
            body = f'<div class="qa-passage">{highlight(c, starts.get(c.chunk_id))}</div>'
        items.append(
            f'<details class="qa-source"><summary><span class="qa-source-n">[{c.n}]</span> {title}'
            f'<span class="qa-source-file" title="{html.escape(c.title)}">{html.escape(c.label)}</span> · '
            f'<span class="qa-source-location">{html.escape(c.location)}</span> '
            f'<span class="qa-source-where">(chars {c.start}–{c.end})</span></summary>{body}</details>'
        )
    return f'<div class="qa-sources"><div class="qa-sources-title">Sources</div>{"".join(items)}</div>'


def _title_from_name(title: str, source: str) -> bool:
    """True when the title is only the file name respelled (no heading), so showing it adds nothing."""
    stem = source.replace("\\", "/").rsplit("/", 1)[-1].split(".")[0]
    return not title or re.sub(r"[_\s]+", " ", stem).strip() == title


def highlight(citation: Citation, chunk_start: int | None = None) -> str:
    """The citation's passage, escaped, with the quoted sentence in `<mark>`.

    The quote sits at `citation.start - chunk_start` in the passage; without the chunk's start (or if
    the passage there differs) the first occurrence of the quote is marked instead.
    """
    passage, quote = citation.passage, citation.quote
    if not passage:
        return f"<mark>{_text(quote)}</mark>"
    at = -1
    if chunk_start is not None:
        offset = citation.start - chunk_start
        if 0 <= offset and passage[offset : offset + len(quote)] == quote:
            at = offset
    if at < 0 and quote:
        at = passage.find(quote)
    if at < 0:
        return f"{_text(passage)}<br><mark>{_text(quote)}</mark>"
    before, after = passage[:at], passage[at + len(quote) :]
    md = citation.markup == "markdown"
    return f"{_inline(before, md)}<mark>{_inline(quote, md)}</mark>{_inline(after, md)}"


def render_document(citation: Citation, document: str) -> str:
    """The whole document (or a wide window of a very long one) with the quote marked; the page scrolls to it."""
    start, end = citation.start, citation.end
    lo, hi = 0, len(document)
    if len(document) > 2 * _DOCUMENT_WINDOW:
        lo, hi = max(0, start - _DOCUMENT_WINDOW), min(len(document), end + _DOCUMENT_WINDOW)
    md = citation.markup == "markdown"
    body = f"{_inline(document[lo:start], md)}<mark>{_inline(document[start:end], md)}</mark>{_inline(document[end:hi], md)}"
    note = ""
    if (lo, hi) != (0, len(document)):
        note = f'<div class="qa-document-note">characters {lo:,}–{hi:,} of {len(document):,}</div>'
    return f'<div class="qa-passage qa-document">{body}</div>{note}'


def _inline(value: str, markdown: bool = False) -> str:
    escaped = html.escape(_CONTROL.sub("", value), quote=True)
    if markdown:
        escaped = markdown_inline(escaped)
    # No blank line may survive: it would end the raw HTML block the Chatbot leaves alone.
    return escaped.replace("\r\n", "\n").replace("\n", "<br>")


_MD_CODE = re.compile(r"`([^`\n]+)`")
_MD_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_MD_EMPHASIS = re.compile(r"(?<![\w*])([*_])(?=\S)([^*_\n]+?)(?<=\S)\1(?![\w*])")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s()<>\"]+)\)")


def markdown_inline(escaped: str) -> str:
    """Inline Markdown on HTML-escaped text: code, strong, emphasis, and links to http(s) only.

    The input is already escaped, so the only tags in the result are the ones made here; a link
    to any other scheme (javascript:, data:) stays text.
    """
    kept: list[str] = []  # code spans and links, set aside so emphasis rules can't reach inside them

    def keep(html_piece: str) -> str:
        kept.append(html_piece)
        return f"\x00{len(kept) - 1}\x00"

    out = _MD_CODE.sub(lambda m: keep(f"<code>{m.group(1)}</code>"), escaped)
    out = _MD_LINK.sub(
        lambda m: keep(f'<a href="{m.group(2)}" target="_blank" rel="noopener noreferrer nofollow">{m.group(1)}</a>'), out
    )
    out = _MD_STRONG.sub(r"<strong>\2</strong>", out)
    out = _MD_EMPHASIS.sub(r"<em>\2</em>", out)
    return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], out)


def _with_markers(text: str, *, markdown: bool = False) -> str:
    rendered = _text(text)
    if markdown:
        rendered = markdown_inline(rendered)
    return MARKER.sub(r'<span class="qa-ref">\g<0></span>', rendered)


def _doc_label(document: Mapping[str, Any]) -> str:
    folder = str(document.get("folder") or "")
    return f"{folder}/{document['source']}" if folder else str(document["source"])


def render_skipped(skipped: Mapping[str, str]) -> str:
    """Files an ingest left out, each with its reason (unsupported type, no text layer, too large, unreadable)."""
    if not skipped:
        return ""
    items = "".join(f"<li>{html.escape(source)}: {html.escape(reason)}</li>" for source, reason in skipped.items())
    return f'<div class="qa-skipped"><p>{len(skipped)} file(s) not indexed:</p><ul>{items}</ul></div>'


def render_documents(documents: Sequence[Mapping[str, Any]]) -> str:
    """The corpus panel: how many documents and chunks, then one row per document."""
    if not documents:
        return '<div class="qa-corpus"><p>No documents indexed yet. Add files or press <b>Re-index</b>.</p></div>'
    total = sum(int(d.get("chunks", 0)) for d in documents)
    noun = "document" if len(documents) == 1 else "documents"
    rows = "".join(
        f'<tr><td title="{html.escape(str(d.get("title", "")))}">{html.escape(_doc_label(d))}</td>'
        f'<td class="qa-num">{int(d.get("chunks", 0))}</td></tr>'
        for d in documents
    )
    return (
        f'<div class="qa-corpus"><p class="qa-corpus-summary">{len(documents)} {noun}, {total} chunks indexed</p>'
        f'<table class="qa-docs"><thead><tr><th>file</th><th class="qa-num">chunks</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )
