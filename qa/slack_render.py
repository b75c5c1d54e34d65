"""Answers as Slack Block Kit: pure functions from `Answer` to blocks, no Slack client involved."""

from __future__ import annotations

import json
import re
from typing import Any

from qa.types import Answer, Citation

LOOKING_TEXT = ":mag: Looking through the documents…"
EMPTY_QUESTION_TEXT = "Ask me a question about the documents and I'll answer here, with the sources I used."
FAILURE_TEXT = (
    "Sorry, something went wrong while answering. Please try again in a moment; "
    "if it keeps happening, tell whoever runs this bot."
)
FEEDBACK_BLOCK_ID = "qa_feedback"
HELPFUL_ACTION = "qa_feedback_helpful"
UNHELPFUL_ACTION = "qa_feedback_unhelpful"

_SECTION_CHARS = 2900  # Block Kit caps a section's text at 3,000 characters
_MAX_SECTIONS = 20  # and a message at 50 blocks
_BUTTON_VALUE_CHARS = 2000  # Block Kit's cap on a button value
_QUOTE_CHARS = 160
_MAX_FLAGS = 5  # flagged sentences listed; a context block holds at most 10 elements
_MARKDOWN_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_MARKDOWN_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_MARKDOWN_EMPHASIS = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=\S)\*(?![\w*])")
_MARKDOWN_LINK = re.compile(r"\[([^\]\n|]+)\]\((https?://[^\s()<>|]+)\)")


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control sequences."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape_mrkdwn(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def too_long_text(length: int, limit: int) -> str:
    return (
        f"Sorry, that question is too long for me ({length:,} characters; I can take up to {limit:,}). "
        "Could you shorten it?"
    )


def error_text(error: Exception) -> str:
    """A polite reply for a failed question. Only problems with the question itself are spelled out:
    the rest name server paths, hosts or settings, which belong in the operator's log, not the channel."""
    from qa.errors import IndexMissingError, InputError, LLMError, StoreError

    if isinstance(error, InputError):
        return f"Sorry, I couldn't answer that. {escape_mrkdwn(str(error))}"
    if isinstance(error, IndexMissingError):
        reason = "no documents have been indexed yet (whoever runs this bot can fix that with `qa ingest`)"
    elif isinstance(error, StoreError):
        reason = "the document store isn't reachable right now; please try again later"
    elif isinstance(error, LLMError):
        reason = "the language model isn't available right now; please try again later"
    else:
        return FAILURE_TEXT
    return f"Sorry, I can't answer yet: {reason}."


def answer_text(answer: Answer) -> str:
    """The answer as mrkdwn: document text escaped, `[n]` markers kept, LLM `**bold**` as Slack `*bold*`.

    Quotes from Markdown documents keep their emphasis, code and http(s) links, in Slack's spelling."""
    if answer.mode == "extractive" and any(c.markup == "markdown" for c in answer.citations):
        return markdown_to_mrkdwn(answer.text.strip())
    return _mrkdwn(answer.text.strip(), answer.mode)


def markdown_to_mrkdwn(text: str) -> str:
    """Inline Markdown as Slack mrkdwn: `**b**` → `*b*`, `*i*` → `_i_`, `[t](https://…)` → `<https://…|t>`."""
    text = escape_mrkdwn(text)
    links: list[str] = []

    def keep(match: re.Match[str]) -> str:
        links.append(f"<{match.group(2)}|{match.group(1)}>")
        return f"\x00{len(links) - 1}\x00"

    text = _MARKDOWN_LINK.sub(keep, text)
    text = _MARKDOWN_EMPHASIS.sub(r"_\1_", text)
    text = _MARKDOWN_STRONG.sub(r"*\2*", text)
    return re.sub("\x00(\\d+)\x00", lambda m: links[int(m.group(1))], text)


def fallback_text(answer: Answer) -> str:
    """The message's plain `text`: shown in notifications, read back as thread history."""
    return _mrkdwn(_shorten(answer.text.strip(), 2900), answer.mode) or "(empty answer)"


def _mrkdwn(text: str, mode: str) -> str:
    text = escape_mrkdwn(text)
    if mode != "extractive":
        text = _MARKDOWN_BOLD.sub(r"*\1*", text)
    return text


def answer_blocks(answer: Answer) -> list[dict[str, Any]]:
    """The answer, any warning, the numbered sources, then helpful / not helpful buttons."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": part}}
        for part in _split(answer_text(answer) or "_(empty answer)_")
    ]
    notes = []
    if not answer.grounded and not answer.abstained:
        notes.append(
            ":warning: *Not grounded:* no passage of the documents supports this answer; check it before relying on it."
        )
    flags = answer.unsupported_sentences
    for flag in flags[:_MAX_FLAGS]:
        sentence = escape_mrkdwn(_shorten(" ".join(flag.text.split()), _QUOTE_CHARS))
        notes.append(f":warning: *Not backed by a source* ({escape_mrkdwn(flag.describe())}): “{sentence}”")
    if len(flags) > _MAX_FLAGS:
        notes.append(f":warning: …and {len(flags) - _MAX_FLAGS} more sentences not backed by a source.")
    if answer.notice:
        notes.append(f":information_source: {escape_mrkdwn(answer.notice)}")
    if notes:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": n} for n in notes]})
    if answer.citations:
        lines = ["*Sources*"]
        for c in answer.citations:
            quote = escape_mrkdwn(_shorten(" ".join(c.plain_quote.split()), _QUOTE_CHARS))
            lines.append(f"*[{c.n}]* {escape_mrkdwn(c.label)}, {escape_mrkdwn(c.location)}: “{quote}”")
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _shorten("\n".join(lines), 3000)}]})
    value = feedback_value(answer)
    blocks.append(
        {
            "type": "actions",
            "block_id": FEEDBACK_BLOCK_ID,
            "elements": [
                _button(":thumbsup: Helpful", HELPFUL_ACTION, value),
                _button(":thumbsdown: Not helpful", UNHELPFUL_ACTION, value),
            ],
        }
    )
    return blocks


def feedback_value(answer: Answer) -> str:
    """What a button click needs to log the rating without the bot's memory: question, mode, citations.

    The answer text itself comes back with the click (the message's `text`). Quotes are shortened, then
    dropped, then the question is cut, until the value fits Block Kit's 2,000 characters."""
    citations = [
        {k: v for k, v in c.to_dict().items()
         if k in ("n", "source", "title", "paragraph", "start", "end", "quote", "score")
         or (k in ("page", "section", "folder") and v not in (None, ""))}
        for c in answer.citations
    ]
    question = answer.question
    for quote_chars in (None, 300, 80, 0):
        for c, original in zip(citations, answer.citations):
            c["quote"] = original.quote if quote_chars is None else _shorten(original.quote, quote_chars)
        value = _encode(question, answer, citations)
        if len(value) <= _BUTTON_VALUE_CHARS:
            return value
    for c in citations:
        c.pop("title", None)
    overflow = len(_encode("", answer, citations)) + 50
    return _encode(_shorten(question, max(_BUTTON_VALUE_CHARS - overflow, 0)), answer, citations)[:_BUTTON_VALUE_CHARS]


def answer_from_feedback_value(value: str, *, text: str) -> Answer:
    """The answer a button value describes, with `text` from the message (citations that don't parse are left out)."""
    try:
        data = json.loads(value)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    citations = []
    for c in data.get("c", []):
        try:
            citations.append(Citation.from_dict(c).to_dict())
        except (TypeError, ValueError):
            continue
    return Answer.from_dict({
        "question": str(data.get("q", "")),
        "text": unescape_mrkdwn(text),
        "mode": str(data.get("m", "")),
        "abstained": bool(data.get("a", False)),
        "citations": citations,
    })


def _encode(question: str, answer: Answer, citations: list[dict[str, Any]]) -> str:
    data = {"q": question, "m": answer.mode, "a": answer.abstained, "c": citations}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _button(label: str, action_id: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label, "emoji": True},
        "action_id": action_id,
        "value": value,
    }


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ""
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _split(text: str) -> list[str]:
    """Section-sized pieces, broken at paragraph, line or sentence ends where possible."""
    parts: list[str] = []
    while len(text) > _SECTION_CHARS and len(parts) < _MAX_SECTIONS - 1:
        window = text[:_SECTION_CHARS]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(". "))
        if cut < _SECTION_CHARS // 2:
            cut = window.rfind(" ")
        if cut < _SECTION_CHARS // 2:
            cut = _SECTION_CHARS - 1
        parts.append(text[: cut + 1].rstrip())
        text = text[cut + 1 :].lstrip()
    parts.append(_shorten(text, _SECTION_CHARS))
    return [p for p in parts if p]
