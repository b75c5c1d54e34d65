"""What kind of answer a question wants, and whether a sentence holds one that the question doesn't already say.

These are features of the answerability model (`qa/answer/features.py`), not decisions: the kinds
come from the question's wh-word and its head noun, the word lists from `qa/answer/lexicon.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from qa.answer.lexicon import lexicon, measures
from qa.terms import stemmer

_MONTHS = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)"
_DAYS = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_DATE = re.compile(
    rf"\b(?:{_MONTHS}\b|{_DAYS}\b|(?:1[0-9]|20)\d\d(?:s)?\b|\d{{1,2}}(?:st|nd|rd|th)\b|(?:centur|decade)(?:y|ies)\b|"
    r"yesterday|today|tomorrow|tonight|(?:last|next|this) (?:week|month|year|spring|summer|autumn|fall|winter)|"
    r"\d+ (?:BC|AD|BCE|CE)\b|\d{1,2}(?::\d\d)?\s?(?:a\.?m\.?|p\.?m\.?)|o['’]clock|noon|midnight|"
    r"\bat (?:\d{1,2}(?::\d\d)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b)",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"(?:\$|£|€)?\b\d[\d,.]*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|dozen|dozens|"
    r"hundreds|thousands|millions|half|several|unknown number)\b",
    re.IGNORECASE,
)
_CAPITALISED = re.compile(r"\b[A-Z][\w’'\-]*(?:\.\s?[A-Z][\w’'\-]*)*(?:\s+(?:of\s+|de\s+|the\s+)?[A-Z][\w’'\-]*)*")
# Role words name a person's position, not the person.
_TITLES = {
    "president", "minister", "prime", "secretary", "general", "king", "queen", "prince", "princess", "chancellor",
    "senator", "governor", "mayor", "director", "chairman", "chief", "officer", "ambassador", "pope", "emperor",
    "mr", "mrs", "ms", "dr", "sir", "lord", "lady", "the", "a", "an", "however", "but", "and", "in", "on", "at",
}

QUESTION_TYPES = ("number", "date", "name", "person", "place", "entity", "reason", "other")
STRICT_KINDS = frozenset({"name", "number", "date", "place"})
_REASON = re.compile(
    r"\b(because|due to|owing to|as a result|result(ed|s)? (in|from)|caus(e|ed|es|ing)|led to|lead to|so that|"
    r"in order to|since|thanks to|reason|in response|in retaliation|retaliation|to (protect|prevent|avoid|ensure))\b",
    re.IGNORECASE,
)


def question_type(question: str) -> str:
    q = question.lower().strip()
    if re.search(r"\bhow (many|much|long|far|old|large|big|high|often)\b|\bwhat (percentage|percent|number|amount|proportion|share)\b", q):
        return "number"
    if re.search(r"\bwhen\b|\b(what|which)\b(\s+\w+){0,4}\s+(year|date|day|month|century|decade)\b|\bwhat time\b", q):
        return "date"
    if re.search(r"\bwhat\b.*\bname\b|\bwhat (is|was|are|were) (he|she|they) called\b", q):
        return "name"
    if re.search(r"\bwho(m|se)?\b|\bwhich (person|man|woman|leader|official|politician)\b", q):
        return "person"
    if re.search(r"\bwhere\b|\b(which|what)\b(\s+\w+){0,2}\s+(country|countries|city|cities|state|place|region|continent|town|nation|province|village)\b", q):
        return "place"
    if re.search(r"\bwhich\b", q):
        return "entity"
    if re.search(r"^why\b|\bwhy (did|do|does|was|were|is|are|has|have|had)\b|\bwhat (caused|was the reason|is the reason)\b", q):
        return "reason"
    return "other"


def entities(sentence: str) -> list[tuple[int, str]]:
    """Capitalised runs with their offsets; a sentence's first word counts only if the next is capitalised too."""
    found = []
    for m in _CAPITALISED.finditer(sentence):
        text = m.group()
        if m.start() == 0 and " " not in text:
            continue
        found.append((m.start(), text))
    return found


def _new_parts(entity: str, question_words: set[str]) -> list[list[str]]:
    """Segments of `entity` left after removing words the question already has and role words."""
    tokens = entity.replace(".", ". ").split()
    segments: list[list[str]] = [[]]
    flanked: list[bool] = [False]
    for tok in tokens:
        key = tok.lower().strip("’'.,")
        key = re.sub(r"[’']s$", "", key)
        if key in question_words or key in _TITLES:
            if segments[-1]:
                flanked[-1] = flanked[-1] or key in question_words
                segments.append([])
                flanked.append(key in question_words)
            else:
                flanked[-1] = flanked[-1] or key in question_words
            continue
        segments[-1].append(tok)
    # A lone word glued to a word of the question ("Ada" of "Ada Lovelace") is the same entity.
    return [s for s, f in zip(segments, flanked) if s and (len(s) >= 2 or not f)]


def has_answer_type(kind: str, sentence: str, question_words: set[str]) -> bool:
    """Does `sentence` hold something of the wanted kind that the question doesn't already say?"""
    if kind == "number":
        return any(m.group().lower().strip("$£€") not in question_words for m in _NUMBER.finditer(sentence))
    if kind == "reason":
        return _REASON.search(sentence) is not None
    if kind == "date":
        return any(m.group().lower() not in question_words for m in _DATE.finditer(sentence))
    if kind in ("name", "person", "place", "entity"):
        for start, entity in entities(sentence):
            parts = _new_parts(entity, question_words)
            if not parts:
                continue
            if kind in ("name", "person") and all(len(p) == 1 and _not_a_name(p[0]) for p in parts):
                continue  # "Russian" describes someone, "March" is when: neither is who
            return True
        if kind == "entity":
            return any(m.group().lower() not in question_words for m in _NUMBER.finditer(sentence)) or bool(
                _DATE.search(sentence)
            )
        return False
    return True


def _not_a_name(word: str) -> bool:
    lex = lexicon()
    return lex.is_month_or_day(word) or lex.country_word.get(word.lower().strip("’'.,")) is not None


_HOW_MANY = re.compile(r"\bhow (?:many|much)\s+([^\W\d_]+)", re.IGNORECASE)
_HOW_MUCH = re.compile(r"\bhow much\b", re.IGNORECASE)
_WHAT = re.compile(r"\b(?:what|which)(?:['’]s)?\b((?:\W+[^\W\d_]+){1,4})", re.IGNORECASE)


def measures_asked(question: str, stem: Callable[[str], str] | None = None) -> frozenset[str]:
    """The kind of amount a question asks for: "how many days" time, "how much storage" nothing known, "what fee" or
    "how much does it cost" money (`qa/answer/data/measures.tsv`). `stem` is the caller's Snowball stemmer (a
    stemmer is not thread-safe: each featurizer passes its own); without one, a new one is made."""
    known = measures()
    counted = _HOW_MANY.search(question)
    if counted:
        kind = known.unit_kind(counted.group(1))
        if kind:
            return frozenset({kind})
    stem = stem or stemmer().stemWord
    if _HOW_MUCH.search(question) and any(stem(w.lower()) in known.asks_money for w in re.findall(r"[^\W\d_]+", question)):
        return frozenset({"money"})
    head = _WHAT.search(question)  # "what fee ...", "what's the monthly rent ...": the money word soon after
    if head and any(stem(w.lower()) in known.asks_money for w in re.findall(r"[^\W\d_]+", head.group(1))):
        return frozenset({"money"})
    return frozenset()
