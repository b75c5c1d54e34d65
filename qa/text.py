"""Text utilities shared by chunking, retrieval, answering and scoring: sentences, words, normalisation."""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable, Iterator

_QUOTES = str.maketrans({"’": "'", "‘": "'", "‚": "'", "′": "'", "“": '"', "”": '"', "„": '"', "″": '"', "\u00a0": " "})

# Words that end in a period without ending a sentence.
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "gen", "gov", "sen", "rep", "col", "lt",
    "capt", "sgt", "rev", "hon", "vs", "etc", "e.g", "i.e", "cf", "al", "approx", "no", "nos", "vol", "fig",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "inc", "ltd", "co",
    "corp", "u.s", "u.k", "u.n", "e.u", "d.c", "a.m", "p.m", "ca", "c", "op", "pp", "ed", "eds", "est",
}
# A run of terminators is matched once from its first character, possessively: a long run of
# "....." not followed by a space is scanned once, not once per character.
_SENTENCE_END = re.compile(
    r"(?<![.!?…])[.!?…]++[\"'”’)\]]*+(?=\s)|\n\s*\n|(?<=:)\n|\n(?=\s*(?:[-*+•]|\d+[.)]|#+)\s)"
)
_WORD_BEFORE = re.compile(r"([\w.]+)$")
_LOOKBACK = 2 + max(len(a) for a in _ABBREVIATIONS)  # a longer word is no abbreviation and no initial
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
    # Only the last few characters before the dot matter (abbreviations are short): looking at all
    # of text[:dot] at every full stop made splitting quadratic in the paragraph's length.
    word = _WORD_BEFORE.search(text, max(0, dot - _LOOKBACK), dot)
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


# Cutting an over-long sentence. A piece longer than this many characters a word piece is cut however
# few pieces it counts: its words are [UNK]s or URLs, and one vector would stand for a whole book.
_CHARS_PER_TOKEN_CAP = 16
_BLOCK_CHARS = 65_536  # an over-long sentence is cut a block at a time, so memory stays bounded
_COUNT_BATCH = 1024  # texts per call to the tokenizer
_CLAUSE_OR_SPACE = re.compile(r"[;,:]?\s+")


def count_spans(
    text: str, spans: list[tuple[int, int]], *, count_tokens: Callable[[list[str]], list[int]], max_tokens: int
) -> list[int]:
    """Word pieces of each span; a span too long to fit by its length alone counts `max_tokens + 1` untokenized."""
    cap = max_tokens * _CHARS_PER_TOKEN_CAP
    sizes = [max_tokens + 1 if e - s > cap else 0 for s, e in spans]
    todo = [i for i, n in enumerate(sizes) if not n]
    counted = _count(count_tokens, [text[spans[i][0] : spans[i][1]] for i in todo])
    for i, n in zip(todo, counted):
        sizes[i] = n
    return sizes


def split_long(
    text: str, start: int, end: int, *, count_tokens: Callable[[list[str]], list[int]], max_tokens: int
) -> list[tuple[int, int]]:
    """Cut `text[start:end]` into pieces of at most `max_tokens` word pieces (and 16 characters a word piece).

    Cuts fall after a clause mark or at whitespace; a run with no whitespace is cut into windows, so
    all of it gets embedded rather than its first 256 word pieces. Spans have no outer whitespace.
    """
    cap = max_tokens * _CHARS_PER_TOKEN_CAP
    pieces: list[tuple[int, int]] = []
    for a, b in _blocks(text, start, end):
        bounds = [a, *(m.end() for m in _CLAUSE_OR_SPACE.finditer(text, a, b)), b]
        segments: list[tuple[int, int]] = []
        for s, e in zip(bounds, bounds[1:]):
            segments.extend((i, min(i + cap, e)) for i in range(s, e, cap))
        sizes = _count(count_tokens, [text[s:e] for s, e in segments])
        fitting: list[tuple[int, int]] = []
        fitting_sizes: list[int] = []
        for (s, e), n in zip(segments, sizes):
            cut = [(s, e)] if n <= max_tokens else _windows(text, s, e, n, count_tokens, max_tokens)
            fitting.extend(cut)
            fitting_sizes.extend([n] if n <= max_tokens else _count(count_tokens, [text[x:y] for x, y in cut]))
        for i, j in iter_windows(fitting_sizes, max_tokens):
            _append_trimmed(pieces, text, fitting[i][0], fitting[j - 1][1], 0)
    return pieces


def _blocks(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """`[start, end)` in blocks of at most _BLOCK_CHARS, each ending after whitespace when there is some."""
    a = start
    while end - a > _BLOCK_CHARS:
        limit = a + _BLOCK_CHARS
        cut = max(text.rfind(ch, a + _BLOCK_CHARS // 2, limit) for ch in " \n\t")
        b = cut + 1 if cut >= 0 else limit
        yield a, b
        a = b
    if end > a:
        yield a, end


def _windows(
    text: str, start: int, end: int, size: int, count_tokens: Callable[[list[str]], list[int]], max_tokens: int
) -> list[tuple[int, int]]:
    """Cut a span of `size` word pieces with no place to break into windows that fit."""
    width = max(1, min(end - start - 1, (end - start) * max_tokens * 9 // (10 * size)))
    cuts = [(i, min(i + width, end)) for i in range(start, end, width)]
    out: list[tuple[int, int]] = []
    for (s, e), n in zip(cuts, _count(count_tokens, [text[s:e] for s, e in cuts])):
        out.extend([(s, e)] if n <= max_tokens or e - s <= 1 else _windows(text, s, e, n, count_tokens, max_tokens))
    return out


def _count(count_tokens: Callable[[list[str]], list[int]], texts: list[str]) -> list[int]:
    sizes: list[int] = []
    for i in range(0, len(texts), _COUNT_BATCH):
        sizes.extend(count_tokens(texts[i : i + _COUNT_BATCH]))
    return sizes


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
