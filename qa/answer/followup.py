"""Does a question lean on the previous one ("What did he say?"), or stand alone ("Where is the head office?")?

A logistic regression over the features below, fitted by `make train` on `eval/fit/follow_ups.jsonl`
(question pairs written for fitting). The pronoun and connective lists are English closed classes
(personal, possessive and demonstrative pronouns; coordinating openers).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from qa.text import STOPWORDS

FOLLOW_UP_FEATURES = (
    "pronoun",  # a third-person or demonstrative pronoun anywhere
    "pronoun_early",  # ... among the first four words
    "opener",  # starts with "and", "also", "what about", "how about", "but", "so", "then"
    "elliptic",  # "else", "the same", "too", "as well", "other", "another", "instead"
    "content_words",  # log(1 + content words)
    "short",  # two content words or fewer
    "names",  # names or numbers of its own (capitalised past the first word, digits)
    "overlap",  # share of its content words the previous question has
    "previous_names",  # names of the previous question it repeats
)

_PRONOUNS = frozenset("he she him her his hers they them their theirs it its this that these those there".split())
_OPENER = re.compile(r"^\s*(?:and|also|but|so|then|what about|how about|and what about|or)\b", re.IGNORECASE)
_ELLIPTIC = re.compile(r"\b(?:else|the same|too|as well|other|another|instead|either)\b", re.IGNORECASE)
_TOKEN = re.compile(r"[\w’'\-]+")


def _names(question: str) -> set[str]:
    tokens = _TOKEN.findall(question)
    return {t.lower() for i, t in enumerate(tokens) if (i > 0 and t[:1].isupper() and t.lower() not in STOPWORDS) or t[:1].isdigit()}


def follow_up_features(question: str, previous: str) -> np.ndarray:
    """The feature row of `question` asked right after `previous`."""
    tokens = [t.lower() for t in _TOKEN.findall(question)]
    content = [t for t in tokens if t not in STOPWORDS]
    previous_content = {t.lower() for t in _TOKEN.findall(previous)} - STOPWORDS
    names = _names(question)
    return np.array(
        [
            float(any(t in _PRONOUNS for t in tokens)),
            float(any(t in _PRONOUNS for t in tokens[:4])),
            float(_OPENER.search(question) is not None),
            float(_ELLIPTIC.search(question) is not None),
            math.log1p(len(content)),
            float(len(content) <= 2),
            float(min(len(names), 3)),
            len([t for t in content if t in previous_content]) / max(len(content), 1),
            float(len(names & _names(previous))),
        ],
        dtype=np.float64,
    )


def leans_on_previous(question: str, previous: str) -> bool:
    """The fitted decision: True when `question` can't stand alone after `previous`."""
    from qa.answer.model import load_artifact, require_features

    artifact = load_artifact()
    require_features(artifact.follow_up, FOLLOW_UP_FEATURES)
    p = float(artifact.follow_up.predict(follow_up_features(question, previous)[None, :])[0])
    return p >= artifact.follow_up_threshold


_CHAIN = 3  # earlier questions a chain of follow-ups may bring in


def user_turns(history: Sequence[Mapping[str, str] | str] | None) -> list[str]:
    """Earlier user questions, from OpenAI/Gradio-style messages or plain strings."""
    turns: list[str] = []
    for message in history or []:
        if isinstance(message, str):
            turns.append(message)
        elif isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str) and content.strip():
                turns.append(content)
    return turns


def follow_up_context(question: str, history: Sequence[Mapping[str, str] | str] | None) -> str:
    """The earlier questions a follow-up leans on ("What did he say…?"), or "" for a standalone question.

    The decision is fitted (`leans_on_previous`); a follow-up of a follow-up brings the chain back
    to the last question that stood alone (at most `_CHAIN` turns).
    """
    turns = user_turns(history)
    if not turns:
        return ""
    if not leans_on_previous(question, turns[-1]):
        return ""
    at = len(turns) - 1
    while at > 0 and len(turns) - at < _CHAIN and leans_on_previous(turns[at], turns[at - 1]):
        at -= 1
    return " ".join(turns[at:])


def with_context(question: str, history: Sequence[Mapping[str, str] | str] | None) -> tuple[str, str]:
    """`(query, context)`: what to retrieve with (the earlier questions a follow-up leans on, then it), and that context."""
    context = follow_up_context(question, history)
    return (f"{context} {question}".strip() if context else question), context
