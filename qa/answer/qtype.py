"""What kind of answer a question wants, and whether a sentence holds one that the question doesn't already say."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

from qa.retrieve import _stemmer

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
_LOCATIVE = re.compile(r"\b(?:in|at|from|to|into|near|across|throughout|toward|towards)\s+(?:the\s+)?$", re.IGNORECASE)
_DEMONYM = re.compile(r"^[A-Z][a-z]+(?:ian|ean|ese|ish|ic|an|i)$")

QUESTION_TYPES = ("number", "date", "name", "person", "place", "entity", "reason", "other")
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
    # A lone word glued to a word of the question ("Vladimir" of "Vladimir Dzhabarov") is the same entity.
    return [s for s, f in zip(segments, flanked) if s and (len(s) >= 2 or not f)]


_TOKEN = re.compile(r"[\w’'\-]+")
_SLOT_END = frozenset(
    """did do does were was are is have has had will would can could should must may might of in on at for to by from
    per during with that who whom which whose""".split()
)
# Counting words whose noun answers often leave out ("how many people" → "a population of 3 million").
_GENERIC_COUNTS = frozenset({"people", "persons", "times"})
# Units of time and measure: "how many days" is answered in days. Other counted nouns are often
# paraphrased ("how many nations" → "27 countries"), so only these must appear in the sentence.
_UNITS = frozenset(
    """seconds minutes hours days weeks months years decades centuries miles kilometers kilometres meters metres
    feet inches yards acres hectares pounds kilograms tons tonnes gallons litres liters barrels dollars euros percent
    degrees""".split()
)
_CALENDAR = re.compile(rf"\b{_MONTHS}\b|\b\d{{1,2}}(?:st|nd|rd|th)\b|\b\d{{1,2}}[/.-]\d{{1,2}}\b|\b\d{{3,4}}s?\b", re.IGNORECASE)
_YEAR = re.compile(r"\b\d{3,4}s?\b|\b(?:centur|decade)(?:y|ies)\b", re.IGNORECASE)
# A question about what is *not* so ("Where wasn't war fought?") is answered by a sentence that
# says something is not so; quoting one that states the plain fact answers another question.
_NEGATED_QUESTION = re.compile(r"\b(?:not|never|no|none|nor|neither)\b|n['’]t\b", re.IGNORECASE)
_NOT_NEGATION = re.compile(r"\bwhether or not\b|\bnot only\b|\bno longer\b", re.IGNORECASE)
_NEGATION = re.compile(
    r"\b(?:not|never|no|none|nor|neither|nothing|cannot|without|lack(?:s|ed|ing)?|absent|except|unable|fail(?:s|ed)?)\b|n['’]t\b",
    re.IGNORECASE,
)


_PERCENT = re.compile(r"%|\bper ?cent\b|\bpercentage\b|\b(?:half|third|quarter|fifth|tenth)s?\b|\b(?:one|two|three|four|\d+) (?:in|out of) (?:\w+|\d+)\b", re.IGNORECASE)
_ASKS_PERCENT = re.compile(r"\bwhat (?:percentage|percent|proportion|share|fraction)\b", re.IGNORECASE)
# Numbers a question states ("in 1979", "$5.11"): an answer about them repeats them.
_STATED_NUMBER = re.compile(r"\b\d[\d,.]*\d\b|\b\d\b")


def negates(text: str) -> bool:
    """Does `text` say that something is not so?"""
    return _NEGATION.search(text) is not None


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _english_stemmer().stemWord(word.lower().strip("’'"))


_english_stemmer = functools.lru_cache(maxsize=1)(_stemmer)  # the one BM25 stems with


def _same(a: str, b: str) -> bool:
    """One word, give or take inflection ("Russia"/"Russian", "diplomat"/"diplomats")."""
    a, b = _stem(a), _stem(b)
    return a == b or (min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a)))


def _slot_words(question: str, start: int) -> list[str]:
    """The noun phrase from `start`: words up to a verb, a preposition or a relative pronoun."""
    out: list[str] = []
    for tok in _TOKEN.findall(question[start:])[:6]:
        if tok.lower() in _SLOT_END:
            break
        out.append(tok)
    return out


@dataclass(frozen=True)
class Wanted:
    """What a question asks for: its kind, plus what the answer must be about when the question says.

    "How many British diplomats …" counts diplomats, British ones; "what date …" wants a calendar
    date, not "Thursday"; "the name of the news agency …" wants a name given next to "agency".
    """

    kind: str
    counted: str | None = None
    qualifiers: tuple[str, ...] = ()
    calendar: str | None = None
    named: tuple[str, ...] = ()
    negated: bool = False
    numbers: tuple[str, ...] = ()
    percent: bool = False

    def repeats_numbers(self, sentence: str) -> bool:
        """Does `sentence` state every number the question does? ("in 1979" is not answered about 1973)"""
        # "1755, 56, 57": a two-digit number may be the tail of the sentence's "1756"
        return all(re.search((r"(?<![.,])" if len(n) <= 2 else r"(?<![\d.,])") + re.escape(n) + r"(?!\d)", sentence) for n in self.numbers)

    def found_in(self, sentence: str, question_words: set[str]) -> bool:
        if not has_answer_type(self.kind, sentence, question_words):
            return False
        tokens = _TOKEN.findall(sentence)
        if self.counted is not None and not self._counts(tokens):
            return False
        if self.percent and not _PERCENT.search(sentence):
            return False  # "what percentage …" is not answered by a year or a count
        if self.calendar == "date" and not _CALENDAR.search(sentence):
            return False
        if self.calendar == "year" and not _YEAR.search(sentence):
            return False
        if self.named and not self._names(tokens, question_words):
            return False
        return True

    def _counts(self, tokens: list[str]) -> bool:
        assert self.counted is not None
        at = [i for i, t in enumerate(tokens) if _same(t, self.counted)]
        if not at:
            return self.counted.lower() not in _UNITS
        if not self.qualifiers:
            return True

        def qualified_otherwise(i: int) -> bool:  # "60 US diplomats" when British ones were asked about
            caps = [t for t in tokens[max(0, i - 2) : i] if t[:1].isupper()]
            return bool(caps) and not any(_same(c, q) for c in caps for q in self.qualifiers)

        return not all(qualified_otherwise(i) for i in at)

    def _names(self, tokens: list[str], question_words: set[str]) -> bool:
        # The phrase's last word the sentence has: "news agency Dzhabarov spoke" → agency
        at = next(([i for i, t in enumerate(tokens) if _same(t, w)] for w in reversed(self.named) if any(_same(t, w) for t in tokens)), [])
        if not at:
            return True  # the sentence names it some other way; the kind check above stands
        for i in at:
            for j in range(max(0, i - 3), min(len(tokens), i + 3)):
                tok = tokens[j]
                if j == i or not tok[:1].isupper() or tok.lower() in question_words or tok.lower() in _TITLES:
                    continue
                if _DEMONYM.match(tok):
                    continue  # "Russian" describes it; it isn't what it is called
                if j > 0 and tokens[j - 1].lower() in ("in", "at", "from", "near"):
                    continue  # "a news agency in Moscow" says where, not what it is called
                return True
        return False


def wanted(question: str) -> Wanted:
    return replace(
        _wanted(question),
        negated=_NEGATED_QUESTION.search(_NOT_NEGATION.sub("", question)) is not None,
        numbers=tuple(dict.fromkeys(n.rstrip(".,") for n in _STATED_NUMBER.findall(question))),
        percent=_ASKS_PERCENT.search(question) is not None,
    )


def _wanted(question: str) -> Wanted:
    kind = question_type(question)
    if kind == "number" and (m := re.search(r"\bhow many\s+", question, re.IGNORECASE)):
        phrase = _slot_words(question, m.end())
        nouns = [i for i, w in enumerate(phrase) if w.islower()]
        if nouns:
            # the counted noun: the first plural ("former members"), else the first lower-case word ("children")
            head = next((i for i in nouns if phrase[i].endswith("s") or phrase[i] in _GENERIC_COUNTS), nouns[0])
            capitals = tuple(w for w in phrase[:head] if w[:1].isupper())
            return Wanted(kind, counted=phrase[head], qualifiers=capitals)
    if kind == "date" and (m := re.search(r"\b(?:what|which)\b(?:\s+[\w’'\-]+){0,4}?\s+(date|year)\b", question, re.IGNORECASE)):
        return Wanted(kind, calendar=m.group(1).lower())
    if kind == "name" and (m := re.search(r"\bname of (?:the |a |an |this |that )?", question, re.IGNORECASE)):
        phrase = tuple(w for w in _slot_words(question, m.end()) if not w[:1].isupper())
        if phrase:
            return Wanted(kind, named=phrase)
    return Wanted(kind)


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
            if kind in ("name", "person"):
                locative = _LOCATIVE.search(sentence[:start]) is not None
                if locative or all(len(p) == 1 and _DEMONYM.match(p[0]) for p in parts):
                    continue
            return True
        if kind == "entity":
            return any(m.group().lower() not in question_words for m in _NUMBER.finditer(sentence)) or bool(
                _DATE.search(sentence)
            )
        return False
    return True
