"""Text utilities shared by chunking, retrieval, answering and scoring: sentences, words, normalisation."""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterator

_QUOTES = str.maketrans({"’": "'", "‘": "'", "‚": "'", "′": "'", "“": '"', "”": '"', "„": '"', "″": '"', "\u00a0": " "})

# Words that end in a period without ending a sentence.
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "gen", "gov", "sen", "rep", "col", "lt",
    "capt", "sgt", "rev", "hon", "vs", "etc", "e.g", "i.e", "cf", "al", "approx", "no", "nos", "vol", "fig",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "inc", "ltd", "co",
    "corp", "u.s", "u.k", "u.n", "e.u", "d.c", "a.m", "p.m", "ca", "c", "op", "pp", "ed", "eds", "est",
}
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+)|\n\s*\n|(?<=:)\n|\n(?=\s*(?:[-*+•]|\d+[.)]|#+)\s)")
_NEXT_START = re.compile(r"\s+[\"'“‘(\[]*[A-Z0-9À-ÖØ-Þ#*\-+•]")


def normalize(text: str) -> str:
    """Fold case, typographic quotes and runs of whitespace, for lenient matching."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    return " ".join(text.split())


def sentence_spans(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """Split `text` into sentences; spans are `(start, end)` offsets (plus `offset`) with no outer whitespace."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if match.group().strip() and not _is_boundary(text, match.start(), end):
            continue
        _append_trimmed(spans, text, start, end, offset)
        start = end
    _append_trimmed(spans, text, start, len(text), offset)
    return spans


def _is_boundary(text: str, dot: int, end: int) -> bool:
    if not _NEXT_START.match(text, end):
        return False
    if text[dot] != ".":
        return True
    word = re.search(r"([\w.]+)$", text[:dot])
    if word is None:
        return True
    token = word.group(1).lower()
    if token in _ABBREVIATIONS:
        return False
    # Initials such as "J. R. R." or "A." inside names.
    return not (len(token) == 1 and token.isalpha() and text[dot - 1].isupper())


def _append_trimmed(spans: list[tuple[int, int]], text: str, start: int, end: int, offset: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return
    lead = len(piece) - len(piece.lstrip())
    s = start + lead
    spans.append((offset + s, offset + s + len(stripped)))


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """Paragraphs: blank-line separated blocks when the file has blank lines, else one per line."""
    separator = re.compile(r"\n[ \t]*\n\s*") if re.search(r"\n[ \t]*\n", text) else re.compile(r"\n\s*")
    spans: list[tuple[int, int]] = []
    start = 0
    for match in separator.finditer(text):
        _append_trimmed(spans, text, start, match.start(), 0)
        start = match.end()
    _append_trimmed(spans, text, start, len(text), 0)
    return spans


_WORD = re.compile(r"[\w'’\-]+|\d+(?:[.,]\d+)*")


def words(text: str) -> list[str]:
    """Lower-cased word tokens with typographic apostrophes folded."""
    return [w.strip("'-") for w in _WORD.findall(normalize(text)) if w.strip("'-")]


STOPWORDS = frozenset(
    """a an the and or but if then of to in on at by for with from as into onto about over under than that this these
    those is are was were be been being am do does did doing have has had having it its it's he she they them their his
    her him we us our you your i me my mine who whom whose what which when where why how there here not no nor so too
    very can could should would will shall may might must also just only any some such each all both either neither
    other others own same than up down out off again further once s t what's who's whats said say says according did
    named name called mentioned kind type much many one""".split()
)


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS]


def squad_normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = normalize(text)
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def iter_windows(items: list[int], limit: int) -> Iterator[tuple[int, int]]:
    """Greedy windows `[i, j)` over item sizes whose sum stays within `limit` (a lone oversize item is its own window)."""
    i = 0
    while i < len(items):
        total, j = items[i], i + 1
        while j < len(items) and total + items[j] <= limit:
            total += items[j]
            j += 1
        yield i, j
        i = j


_MD_LINK = re.compile(r"!?\[([^\]\n]*)\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+\"[^\"\n]*\")?\)")
_MD_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_MD_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", re.DOTALL)
_MD_EMPHASIS = re.compile(r"(?<![\w*])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*])", re.DOTALL)
_MD_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~", re.DOTALL)


def strip_markdown(text: str) -> str:
    """Inline Markdown (emphasis, links, images, code, strike-through) reduced to its plain text."""
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_CODE.sub(lambda m: m.group(2).strip(), text)
    text = _MD_STRONG.sub(r"\2", text)
    text = _MD_EMPHASIS.sub(r"\2", text)
    return _MD_STRIKE.sub(r"\1", text)
