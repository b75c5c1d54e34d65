"""What the answerability model sees of each candidate sentence: retrieval, coverage, answer-type and alignment features.

The same code builds the rows `make train` fits on and the rows the answerer scores, so a feature
means one thing in both. Names are in `FEATURES`; the fitted artifact records them and refuses to
load against a different list.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from qa.answer.lexicon import Lexicon, lexicon, measures, synonyms
from qa.answer.qtype import STRICT_KINDS, has_answer_type, measures_asked, question_type
from qa.terms import TermStats, WordStemmer, idf, stemmer
from qa.text import STOPWORDS

if TYPE_CHECKING:
    from qa.passages import Passages

FEATURES = (
    "dense",  # cosine of question and sentence (MiniLM)
    "dense_gap",  # dense minus the best candidate's
    "dense_rank",  # 1 / (1 + rank by dense)
    "bm25",  # the sentence's BM25 score over the best in the corpus
    "chunk_score",  # the passage's fused retrieval score over the top passage's
    "chunk_rank",  # 1 / (1 + the passage's rank)
    "coverage",  # idf-weighted share of the question's terms in the sentence (and its document title)
    "coverage_window",  # ... in the sentence and its neighbours
    "coverage_chunk",  # ... anywhere in the passage
    "missing_idf",  # the rarest question term the sentence's window lacks (idf over the corpus maximum)
    "unseen_terms",  # idf-weighted share of question terms found in no retrieved passage
    "entity_coverage",  # share of the question's names and numbers in the window (1 when it has none)
    "entity_unseen",  # share of the question's names and numbers in no retrieved passage
    "typed",  # the sentence holds something of the kind asked for that the question doesn't state
    "typed_strict",  # typed, for a question that wants a name, number, date or place
    "strict_kind",  # the question wants a name, number, date or place
    "novelty",  # share of the sentence's terms the question doesn't have
    "numbers_repeated",  # share of the question's numbers the sentence states or holds in a range (1 when it has none)
    "negation_missing",  # the question asks what is not so; the sentence negates nothing
    "negation_both",  # both negate
    "length",  # log word count
    "first_in_passage",
    "best_coverage",  # the best coverage of any candidate
    "best_dense",  # the best dense similarity of any candidate
    "dense_x_coverage",
    "country_conflict",  # the question names a country the window lacks, and the sentence names another ("outside X" names none)
    "count_noun_missing",  # "how many/much NOUN": the window lacks the noun
    "calendar_missing",  # the question asks for a date or year; the sentence has no month or number
    "percent_missing",  # the question asks for a percentage; the sentence gives none
    "coverage_synonym",  # coverage, a question term also counting when the sentence has a WordNet synonym of it
    "coverage_window_synonym",  # ... in the sentence and its neighbours
    "measure_missing",  # the question asks for an amount of money or in a unit ("how many days"); the sentence states none
    "period_conflict",  # the question asks for a rate per day/week/month/year; the sentence gives it per another period only
)

_COUNTED = re.compile(r"\bhow (?:many|much)\s+(?:of\s+the\s+)?((?:[\w’'\-]+\s*){1,3})", re.IGNORECASE)
_CALENDAR_ASKED = re.compile(r"\b(?:date|year)\b", re.IGNORECASE)
_PERCENT_ASKED = re.compile(r"\b(?:percentage|percent|proportion|share|fraction)\b", re.IGNORECASE)
_PERCENT_GIVEN = re.compile(r"%|\bper ?cent\b|\bhalf\b|\bthird\b|\bquarter\b", re.IGNORECASE)

_NEGATORS = frozenset({"not", "never", "no", "none", "nor", "neither", "nothing", "nobody", "nowhere", "without"})
_NEAR = 1  # sentences either side that make a sentence's window
_EXCLUDING = frozenset({"outside", "except", "excluding", "beyond", "than", "non"})  # "outside Canada" names no place
_CONTRACTION = re.compile(r"(?:n?'t|'(?:m|s|re|ve|d|ll))$")
_RANGE = re.compile(r"(?:([^\W\d_]+)\s+)?(\d+)\s*(?:-|–|to)\s*(?:([^\W\d_]+)\s+)?(\d+)\b", re.IGNORECASE)
_NAME_RUN = re.compile(r"\b[A-Z][a-z]+(?:\s+(?:(?:of|and|for|the)\s+)*[A-Z][a-z]+)+")
_LINKS = frozenset({"of", "and", "for", "the"})


def _in_ranges(numbers: frozenset[str], text: str) -> frozenset[str]:
    """The question's numbers that fall in a range the sentence gives ("Years 3 to 6" and "year 3 to year 10" hold 4)."""
    found = set()
    for m in _RANGE.finditer(text):
        before, low, again, high = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
        if again and (not before or again.lower().rstrip("s") != before.lower().rstrip("s")):
            continue  # "year 3 to year 10", not "Year 2 to 15:25"
        if low < high:
            found |= {n for n in numbers if n[4:].isdigit() and low <= int(n[4:]) <= high}
    return frozenset(found)


def _initials(text: str) -> frozenset[str]:
    """Acronyms of the sentence's multi-word names: "Members of the Northern Freight Association" also says "nfa"
    (and "mnfa"): the initials of every run of two or more capitalised words, linking words left out."""
    found = set()
    for m in _NAME_RUN.finditer(text):
        heads = [w[0].lower() for w in m.group().split() if w.lower() not in _LINKS]
        found |= {"".join(heads[i:j]) for i in range(len(heads)) for j in range(i + 2, len(heads) + 1)}
    return frozenset(found)


def _function_word(original: str, key: str) -> bool:
    """A stop word as the question writes it, though the lexicon gave it a key of its own: "one" and "once" (read as
    numbers: "that one", "once I join") and contractions of stop words ("I'm", "there's", "don't", "can't")."""
    if key.startswith("country:"):
        return False  # "US" is a country, "us" a pronoun
    low = original.lower()
    if low in STOPWORDS:
        return True
    return _CONTRACTION.search(low) is not None and (_CONTRACTION.sub("", low) in STOPWORDS or low.rsplit("'", 1)[0] in STOPWORDS)


def _key(token: str, stem: dict[str, str], stemmer: WordStemmer) -> str:
    if ":" in token:
        return token
    got = stem.get(token)
    if got is None:
        got = stem[token] = stemmer.stemWord(token)
        if len(stem) > 200_000:
            stem.clear()
    return got


@dataclass
class QuestionView:
    """A question as the features see it: weighted term keys, names and numbers, what it asks for."""

    text: str
    kind: str
    weights: dict[str, float]
    entities: frozenset[str]
    numbers: frozenset[str]
    negated: bool
    words: frozenset[str]
    max_idf: float
    countries: frozenset[str] = frozenset()
    counted: str | None = None
    calendar: bool = False
    percent: bool = False
    alternatives: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)  # term key -> its synonyms' stems
    measures: frozenset[str] = frozenset()  # the kinds of amount asked for (qa.answer.qtype.measures_asked)
    periods: frozenset[str] = frozenset()  # the periods a rate is asked per


@dataclass
class Candidate:
    """One sentence of a retrieved passage, its features and (once scored) its probability of answering."""

    chunk: int  # the passage's rank among the retrieved ones
    index: int
    text: str
    features: np.ndarray
    dense: float
    score: float = 0.0


@dataclass
class Featurizer:
    """Builds feature rows; holds the stemmer and a stem cache."""

    lex: Lexicon = field(default_factory=lexicon)
    _stems: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stemmer = stemmer()

    def keys(self, text: str) -> list[str]:
        """Content term keys of `text`: stems, or a shared key for a country, number or month."""
        return [_key(t, self._stems, self._stemmer) for t in self.lex.tokens(text) if t not in STOPWORDS]

    def question(self, question: str, context: str, stats: TermStats) -> QuestionView:
        n = max(stats.n, 1)
        max_idf = stats.max_idf
        weights: dict[str, float] = {}
        for text, factor in ((question, 1.0), (context, 0.5)):
            for original, token in self.lex.pairs(text):
                if token in STOPWORDS or _function_word(original, token):
                    continue
                key = _key(token, self._stems, self._stemmer)
                df = stats.df(key) if ":" not in key else max(stats.df(token.split(":")[1]), n // 100)
                weights[key] = max(weights.get(key, 0.0), factor * idf(n, df))
        pairs = self.lex.pairs(question)
        raw = [key for _, key in pairs]
        entities = set()
        for i, (original, token) in enumerate(pairs):
            if token in STOPWORDS or _function_word(original, token):
                continue
            if ":" in token or (original[:1].isupper() and i > 0):
                entities.add(_key(token, self._stems, self._stemmer))
        numbers = frozenset(t for o, t in pairs if t.startswith("num:") and not _function_word(o, t))
        negated = any(t in _NEGATORS or t.endswith("n't") for t in raw)
        alternatives = self._alternatives(raw, weights)
        counted = _COUNTED.search(question)
        counted_key = None
        if counted:  # the counted noun: the first lower-case word that is neither a stop word nor a country or number
            noun = next((k for w, k in self.lex.pairs(counted.group(1)) if w.islower() and ":" not in k and k not in STOPWORDS), None)
            counted_key = _key(noun, self._stems, self._stemmer) if noun else None
        return QuestionView(
            countries=frozenset(t for t in raw if t.startswith("country:")),
            counted=counted_key,
            calendar=_CALENDAR_ASKED.search(question) is not None and question_type(question) == "date",
            percent=_PERCENT_ASKED.search(question) is not None and question_type(question) == "number",
            text=question,
            kind=question_type(question),
            weights=weights,
            entities=frozenset(entities),
            numbers=numbers,
            negated=negated,
            words=frozenset(w.lower() for w in raw),
            max_idf=max_idf,
            alternatives=alternatives,
            measures=measures_asked(question, lambda word: _key(word, self._stems, self._stemmer)),
            periods=measures().periods_in(question),
        )

    def _countries_named(self, text: str) -> frozenset[str]:
        """Country keys a sentence names as where something is so: "outside Canada" or "except France" name none."""
        pairs = self.lex.pairs(text)
        return frozenset(
            k for i, (_, k) in enumerate(pairs)
            if k.startswith("country:") and not any(w.lower() in _EXCLUDING for w, _ in pairs[max(0, i - 2) : i])
        )

    def _alternatives(self, tokens: list[str], weights: dict[str, float]) -> dict[str, tuple[tuple[str, ...], ...]]:
        """Each question term's synonyms (as stems), from the word itself and from two-word terms it starts or ends
        ("kicking out" -> "expel", credited to "kick")."""
        table = synonyms()
        keys = [_key(t, self._stems, self._stemmer) for t in tokens]
        found: dict[str, set[tuple[str, ...]]] = {}
        for i, key in enumerate(keys):
            if key in weights:
                found.setdefault(key, set()).update(table.get(key, ()))
            if i + 1 < len(keys) and ":" not in key and ":" not in keys[i + 1]:
                pair = table.get(key + " " + keys[i + 1])
                if pair:
                    for word, k in ((tokens[i], key), (tokens[i + 1], keys[i + 1])):
                        if word not in STOPWORDS and k in weights:
                            found.setdefault(k, set()).update(pair)
        return {k: tuple(sorted(v)) for k, v in found.items() if v}

    def candidates(self, question: str, passages: Passages, *, context: str = "") -> list[Candidate]:
        """Every sentence of the retrieved passages, with its feature row."""
        scores = {(ci, s.index): s for ci, p in enumerate(passages) for s in p.sentences}
        if not scores:
            return []
        q = self.question(question, context, passages.stats)
        total = sum(q.weights.values()) or 1.0
        chunk_pos = {ci: ci for ci in range(len(passages))}
        chunk_score = {ci: p.score for ci, p in enumerate(passages)}
        top_chunk = max(chunk_score.values(), default=1.0) or 1.0
        bm25_max = passages.bm25_max or 1.0
        sentence_keys: dict[tuple[int, int], frozenset[str]] = {}
        sentence_tokens: dict[tuple[int, int], list[str]] = {}
        texts: dict[tuple[int, int], str] = {}
        title_keys: dict[int, frozenset[str]] = {}
        for ci, passage in enumerate(passages):
            title_keys[ci] = frozenset(self.keys(passage.chunk.title))
            for si, text in ((s.index, s.text) for s in passage.sentences):
                tokens = self.lex.tokens(text)
                texts[(ci, si)] = text
                sentence_tokens[(ci, si)] = tokens
                sentence_keys[(ci, si)] = frozenset(_key(t, self._stems, self._stemmer) for t in tokens if t not in STOPWORDS) | _initials(text)
        chunk_keys = {ci: frozenset().union(*(v for (c, _), v in sentence_keys.items() if c == ci)) | title_keys[ci] for ci in chunk_pos}
        everywhere = frozenset().union(*chunk_keys.values())
        unseen = sum(w for t, w in q.weights.items() if t not in everywhere) / total
        entity_unseen = len(q.entities - everywhere) / len(q.entities) if q.entities else 0.0

        def cover(keys: frozenset[str]) -> float:
            return sum(w for t, w in q.weights.items() if t in keys) / total

        def cover_synonym(keys: frozenset[str]) -> float:
            return (
                sum(
                    w
                    for t, w in q.weights.items()
                    if t in keys or any(all(p in keys for p in alt) for alt in q.alternatives.get(t, ()))
                )
                / total
            )

        dense_order = sorted(scores, key=lambda k: -scores[k].dense)
        dense_rank = {k: r for r, k in enumerate(dense_order)}
        best_dense = scores[dense_order[0]].dense
        rows: list[tuple[tuple[int, int], list[float]]] = []
        for (ci, si), s in scores.items():
            if (ci, si) not in sentence_keys:
                continue
            keys = sentence_keys[(ci, si)] | title_keys[ci]
            window = keys.union(*(sentence_keys.get((ci, j), frozenset()) for j in range(si - _NEAR, si + _NEAR + 1)))
            missing = [w for t, w in q.weights.items() if t not in window]
            tokens = sentence_tokens[(ci, si)]
            text = texts[(ci, si)]
            typed = float(has_answer_type(q.kind, text, set(q.words)))
            strict = float(q.kind in STRICT_KINDS)
            numbers = len(q.numbers & (keys | _in_ranges(q.numbers, text))) / len(q.numbers) if q.numbers else 1.0
            negates = self.lex.negates(tokens, [_key(t, self._stems, self._stemmer) for t in tokens])
            novelty = len(keys - q.weights.keys()) / max(len(keys), 1)
            coverage = cover(keys)
            rows.append(
                (
                    (ci, si),
                    [
                        s.dense,
                        s.dense - best_dense,
                        1.0 / (1 + dense_rank[(ci, si)]),
                        s.bm25 / bm25_max,
                        chunk_score.get(ci, 0.0) / top_chunk,
                        1.0 / (1 + chunk_pos[ci]),
                        coverage,
                        cover(window),
                        cover(chunk_keys[ci]),
                        max(missing, default=0.0) / q.max_idf,
                        unseen,
                        len(q.entities & window) / len(q.entities) if q.entities else 1.0,
                        entity_unseen,
                        typed,
                        typed * strict,
                        strict,
                        novelty,
                        numbers,
                        float(q.negated and not negates),
                        float(q.negated and negates),
                        math.log1p(len(tokens)),
                        float(si == 0),
                        0.0,
                        best_dense,
                        s.dense * coverage,
                        float(bool(q.countries - window) and bool(self._countries_named(text) - q.countries)),
                        float(q.counted is not None and q.counted not in window),
                        float(q.calendar and not any(k.startswith(("month:", "num:")) for k in keys)),
                        float(q.percent and _PERCENT_GIVEN.search(text) is None),
                        cover_synonym(keys),
                        cover_synonym(window),
                        float(bool(q.measures) and not any(measures().states(kind, text) for kind in q.measures)),
                        float(bool(q.periods) and bool(given := measures().periods_in(text)) and not q.periods & given),
                    ],
                )
            )
        if not rows:
            return []
        matrix = np.array([r for _, r in rows], dtype=np.float64)
        matrix[:, FEATURES.index("best_coverage")] = matrix[:, FEATURES.index("coverage")].max()
        return [
            Candidate(ci, si, texts[(ci, si)], matrix[i], scores[(ci, si)].dense) for i, ((ci, si), _) in enumerate(rows)
        ]
