"""A deterministic fake embedder for tests that don't measure quality (`QA_EMBED_MODEL=fake`).

Each word (lower-cased and stemmed as BM25 stems it, a few English function words left out) and,
weaker, its character trigrams are hashed to one of 383 dimensions with a sign; the sum, L2-normalised, shares each vector with one common
dimension. Texts sharing words have a higher cosine, so lexical overlap still retrieves, and nothing
loads but NumPy, PyStemmer and the bundled tokenizer (whose counts keep the chunks identical to the
real model's). The common dimension's weight puts the mean cosine of a question and any sentence
where MiniLM's is (~0.34 on the dev half of eval/gold.jsonl), since the fitted answerability score
reads dense similarities. It knows no synonyms, so it is never a user's model: only
the exact setting picks it, `qa info` names it, and it is not offered among the choices an error lists.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from qa.embed.tokens import Tokens

DIMENSIONS = 384
# cosine = _COMMON + (1 - _COMMON) * cosine of the hashed words: with 0.27 a question's mean cosine to
# the seed sentences is MiniLM's 0.34 (fitting data: the dev half of eval/gold.jsonl).
_COMMON = 0.27
_GRAM = 0.25
_WORD = re.compile(r"\w+")
# Words that would make every pair of sentences look alike (a fixed list: nothing is fitted here).
_SKIP = frozenset(
    "a an and are as at be by did do does for from had has have he her his how i in is it its of on or she "
    "that the their them they this to was were what when where which who whom why will with you".split()
)


def _slot(word: str) -> tuple[int, float]:
    digest = hashlib.blake2b(word.encode("utf-8"), digest_size=4).digest()
    value = int.from_bytes(digest, "little")
    return 1 + value % (DIMENSIONS - 1), 1.0 if value & (1 << 31) else -1.0


def _features(stem: str) -> list[tuple[int, float]]:
    """The stem, and at a quarter of its weight each of its character trigrams: `Russia4` and `Russia13`
    stay near `Russia` and apart from each other, as word pieces keep them in MiniLM (no exact ties)."""
    marked = f"<{stem}>"
    grams = [marked[i : i + 3] for i in range(len(marked) - 2)]
    return [(slot, sign * weight) for (slot, sign), weight in ((_slot(stem), 1.0), *((_slot("#" + g), _GRAM) for g in grams))]


class FakeEmbedder:
    """Hashed bag of words: the same text always gives the same unit vector, in microseconds."""

    name = "fake (hashed words, tests only)"

    def __init__(self, model_dir: Path) -> None:
        import Stemmer

        self.tokens = Tokens(model_dir)
        self._stem = Stemmer.Stemmer("english").stemWord
        self._slots: dict[str, list[tuple[int, float]]] = {}

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.tokens.count(texts)

    def embed(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [w for w in _WORD.findall(text.lower()) if w not in _SKIP] or _WORD.findall(text.lower())
            for word in words:
                slots = self._slots.get(word)
                if slots is None:
                    slots = self._slots[word] = _features(self._stem(word))
                for slot, weight in slots:
                    vectors[row, slot] += weight
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        vectors *= np.float32((1 - _COMMON) ** 0.5)
        vectors[:, 0] = np.float32(_COMMON**0.5)
        # a text without words (punctuation, emoji) is the common direction alone
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors
