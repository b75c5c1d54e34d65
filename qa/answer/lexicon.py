"""Word knowledge the answerer needs, from data files with a stated source and from the standard library.

- countries, their short forms and adjectives (`data/countries.tsv`): "U.S.", "American" and "US" are one key;
- number names (`data/number_words.tsv`): "sixty" and "60" are one key;
- month and weekday names (Python's `calendar`, English names in the C locale);
- negators and negative verbs (`data/negation.txt`): "denied" says something is not so;
- synonyms (`data/synonyms.tsv`, from Princeton WordNet 3.0 by `make synonyms`): "expel" and "kick out";
- measures (`data/measures.tsv`, from WordNet 3.0 by `make measures`): units of money, time, memory, length,
  mass and power, the words that ask for money ("fee", "cost"), and the periods a rate is given per ("monthly");
  currency symbols are Unicode's (category Sc).
"""

from __future__ import annotations

import calendar
import functools
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from qa.text import _QUOTES, STOPWORDS

DATA = Path(__file__).with_name("data")
_WORD = re.compile(r"\$?\d[\d,]*(?:\.\d+)?%?|[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)


def _rows(name: str) -> list[list[str]]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines if line.strip() and not line.startswith("#")]


@dataclass(frozen=True)
class Lexicon:
    """Lookup tables built once from the data files."""

    phrases: re.Pattern[str]  # multi-word or dotted country names, matched before tokenising
    phrase_key: dict[str, str]
    country_word: dict[str, str]  # lower-case single-word name or adjective -> key
    upper_word: dict[str, str]  # abbreviations that count only in upper case ("US", "UK")
    numbers: dict[str, str]
    weekdays: frozenset[str]
    negators: frozenset[str]

    def tokens(self, text: str) -> list[str]:
        """Word tokens of `text` with countries, number names and months reduced to one key each.

        Keys look like `country:us`, `num:60`, `month:3`; other words are lower case as written.
        """
        return [key for _, key in self.pairs(text)]

    def pairs(self, text: str) -> list[tuple[str, str]]:
        """`(as written, key)` for every word token of `text`."""
        out: list[tuple[str, str]] = []
        at = 0
        text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
        for m in self.phrases.finditer(text):
            out += self._words(text[at : m.start()])
            out.append((m.group(), self.phrase_key[m.group().lower()]))
            at = m.end()
        out += self._words(text[at:])
        return out

    def _words(self, text: str) -> list[tuple[str, str]]:
        out = []
        for raw in _WORD.findall(text):
            low = raw.lower()
            if raw in self.upper_word:
                key = self.upper_word[raw]
            elif low in self.country_word and (raw[:1].isupper() or low not in STOPWORDS):
                key = self.country_word[low]
            elif low in self.numbers:
                key = "num:" + self.numbers[low]
            elif raw[:1].isdigit() or raw[:1] == "$":
                key = "num:" + low.strip("$%").replace(",", "")
            elif raw[:1].isupper() and low.rstrip(".") in _MONTH_FORMS:
                key = "month:" + str(_MONTH_FORMS[low.rstrip(".")])
            else:
                key = low
            out.append((raw, key))
        return out

    def is_month_or_day(self, word: str) -> bool:
        low = word.lower().strip(".")
        return low in _MONTH_FORMS or low in self.weekdays

    def negates(self, tokens: list[str], stems: list[str]) -> bool:
        """Does a sentence with these tokens (and their stems) say something is not so?"""
        return any(t.endswith("n't") or t in self.negators for t in tokens) or any(s in self.negators for s in stems)


_MONTH_FORMS: dict[str, int] = {}
for _i in range(1, 13):
    _MONTH_FORMS[calendar.month_name[_i].lower()] = _i
    _MONTH_FORMS[calendar.month_abbr[_i].lower()] = _i
_MONTH_FORMS["sept"] = 9


@functools.lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    from qa.terms import stemmer as make_stemmer

    stemmer = make_stemmer()
    phrase_key: dict[str, str] = {}
    country_word: dict[str, str] = {}
    upper_word: dict[str, str] = {}
    for key, names, adjectives in _rows("countries.tsv"):
        for form in names.split("|") + adjectives.split("|"):
            value = "country:" + key
            if " " in form or "." in form:
                phrase_key[form.lower()] = value
            elif form.isupper():
                upper_word[form] = value
            else:
                country_word[form.lower()] = value
    ordered = sorted(phrase_key, key=len, reverse=True)
    phrases = re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(p) for p in ordered) + r")(?![\w])", re.IGNORECASE)
    numbers = {word: value for word, value in _rows("number_words.tsv")}
    negators = frozenset(w for (w,) in _rows("negation.txt")) | frozenset(stemmer.stemWord(w) for (w,) in _rows("negation.txt"))
    return Lexicon(
        phrases=phrases,
        phrase_key=phrase_key,
        country_word=country_word,
        upper_word=upper_word,
        numbers=numbers,
        weekdays=frozenset(calendar.day_name[i].lower() for i in range(7)) | frozenset(calendar.day_abbr[i].lower() for i in range(7)),
        negators=negators,
    )


class Synonyms(Mapping[str, tuple[tuple[str, ...], ...]]):
    """A term's Snowball stem (or two, space-separated) -> its synonyms, each as its content stems.

    `data/synonyms.tsv` holds each pair once; this reads it both ways. Stop words are dropped from a
    synonym ("kick out" -> ("kick",)); a synonym left with no word is dropped. Only the raw rows are
    indexed up front: a term's entry is worked out the first time it is looked up (a question needs a
    handful, and every `qa` process would otherwise pay for all 47,000 at start-up).
    """

    def __init__(self, rows: list[list[str]]) -> None:
        self._pairs: dict[str, list[str]] = {}
        for key, others in rows:
            for other in others.split("|"):
                self._pairs.setdefault(key, []).append(other)
                self._pairs.setdefault(other, []).append(key)
        self._done: dict[str, tuple[tuple[str, ...], ...]] = {}

    def __getitem__(self, term: str) -> tuple[tuple[str, ...], ...]:
        done = self._done.get(term)
        if done is None:
            contents = {tuple(w for w in other.split(" ") if w not in STOPWORDS) for other in self._pairs[term]}
            done = self._done[term] = tuple(sorted(c for c in contents if c))
        if not done:
            raise KeyError(term)
        return done

    def __iter__(self) -> Iterator[str]:
        return (term for term in self._pairs if term in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@functools.lru_cache(maxsize=1)
def synonyms() -> Synonyms:
    """The synonym table of `data/synonyms.tsv`, read both ways (see `Synonyms`)."""
    return Synonyms(_rows("synonyms.tsv"))


@dataclass(frozen=True)
class Measures:
    """Amounts: for each kind, a pattern for a number with one of its units; the stems of words asking for money;
    for each period, a pattern for a rate given per it ("per month", "a month", "monthly")."""

    amount: dict[str, tuple[re.Pattern[str], ...]]
    asks_money: frozenset[str]
    periods: dict[str, re.Pattern[str]]

    def states(self, kind: str, text: str) -> bool:
        """Does `text` state an amount of this kind ("100 GB", "£45", "free")?"""
        return any(p.search(text) for p in self.amount.get(kind, ()))

    def unit_kind(self, word: str) -> str | None:
        """The kind of measure `word` is a unit of ("days": time), if any."""
        return next((kind for kind in self.amount if kind != "money" and self.states(kind, "1 " + word)), None)

    def periods_in(self, text: str) -> frozenset[str]:
        """The periods `text` gives a rate per."""
        return frozenset(period for period, pattern in self.periods.items() if pattern.search(text))


@functools.lru_cache(maxsize=1)
def measures() -> Measures:
    from qa.terms import stemmer as make_stemmer

    stem = make_stemmer().stemWord
    numbers = "|".join(sorted((re.escape(w) for w, _ in _rows("number_words.tsv")), key=len, reverse=True))
    quantity = rf"(?<![\w.])(?:\d[\d,]*(?:\.\d+)?|{numbers}|a|an|half)[\s-]?"
    symbols = "".join(chr(i) for i in range(0x10000) if unicodedata.category(chr(i)) == "Sc")
    amount: dict[str, tuple[re.Pattern[str], ...]] = {}
    asks: frozenset[str] = frozenset()
    gives: list[str] = []
    periods: dict[str, re.Pattern[str]] = {}
    for section, kind, words in _rows("measures.tsv"):
        listed = words.split("|")
        if section == "unit":
            # abbreviations as written ("GB", "W", "kg"); words in any case, plural too ("Days", "minutes")
            short = [w for w in sorted(listed, key=len, reverse=True) if len(w) <= 2 or not w.isalpha() or w != w.lower()]
            exact = "|".join(re.escape(w) for w in short)
            words_ = "|".join(re.escape(w) for w in sorted(listed, key=len, reverse=True) if w not in short)
            patterns = [re.compile(rf"{quantity}(?:{exact})(?![\w])", re.UNICODE)] if exact else []
            # one word may stand between ("10 working days")
            patterns += [re.compile(rf"(?i:{quantity}(?:[a-z]+[\s-])?(?:{words_})(?:s|es)?)(?![\w])")] if words_ else []
            amount[kind] = tuple(patterns)
        elif section == "asks" and kind == "money":
            asks = frozenset(stem(w) for w in listed)
        elif section == "gives" and kind == "money":
            gives = listed
        elif section == "period":
            adjectives = "".join("|" + re.escape(w) for w in listed if w != kind)  # "monthly"; the noun only after "per"
            # "per month", "every other week", "£9 a month", "3 days a week", "twice a year"; not "for a month" (how long)
            rate = rf"(?:\b(?:per|each|every)|(?:\d|\b(?:once|twice|times)\b)\S*(?:\s+[^\W\d_]+){{0,2}}\s+an?)\s+(?:\w+\s+)?{re.escape(kind)}"
            periods[kind] = re.compile(rf"(?:{rate}|\b(?:{adjectives.lstrip('|') or '(?!)'}))\b", re.IGNORECASE)
    # a sum by a currency symbol, or a share of one ("4% above base rate", "up 3.5%")
    money = [rf"[{re.escape(symbols)}]\s?\d|\d\s?[{re.escape(symbols)}]|\d\s?%|\d\s?per ?cent\b"] + ([rf"(?i:\b(?:{'|'.join(map(re.escape, gives))})\b)"] if gives else [])
    amount["money"] = amount.get("money", ()) + tuple(re.compile(p) for p in money)
    return Measures(amount=amount, asks_money=asks, periods=periods)
