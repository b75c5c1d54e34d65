"""`Fallback(primary, secondary)`: answer with `primary`; when it fails, with `secondary` and a notice saying why.

The engine's LLM mode is `Fallback(LLMAnswerer, ExtractiveAnswerer)`: an unreachable, failing or
slow model still gets the user a quoted answer, with the reason in `Answer.notice`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace

from qa.answer import Answerer, Question, Search, attempt_of
from qa.errors import LLMError, QAError
from qa.types import Answer

log = logging.getLogger(__name__)


class Fallback:
    """Answers with `primary`, and with `secondary` when `primary` raises an LLMError (or, unless `debug`, a bug of its own).

    Other `QAError`s (no index, a store that fails) are the question's, not the answerer's: they pass through.
    The fallback answer keeps what the primary tried (`prompts`, its timings) and says in `notice`
    that the language model was unavailable or stopped mid-answer. A streamed fallback whose primary
    already sent text ends with the secondary's answer as the final item, and front ends show it in
    place of the partial text.
    """

    def __init__(self, primary: Answerer, secondary: Answerer, *, debug: bool = False) -> None:
        self.primary = primary
        self.secondary = secondary
        self.debug = debug
        self.mode = primary.mode  # the mode it answers in when nothing fails; a fallback answer says its own

    def answer(self, question: Question, search: Search) -> Answer:
        try:
            return self.primary.answer(question, search)
        except Exception as exc:
            self._check(exc)
            return self._fall_back(question, search, exc, emitted=False)

    def stream(self, question: Question, search: Search) -> Iterator[str | Answer]:
        emitted = False
        try:
            for item in self.primary.stream(question, search):
                emitted = emitted or isinstance(item, str)
                yield item
        except Exception as exc:
            self._check(exc)
            answer = self._fall_back(question, search, exc, emitted=emitted)
            if not emitted:
                yield answer.text
            yield answer

    def _check(self, exc: Exception) -> None:
        """Re-raise what the secondary can't help with."""
        if isinstance(exc, LLMError):
            return
        if isinstance(exc, QAError) or self.debug:
            raise exc
        log.warning(
            "%s answer failed unexpectedly (%s: %s); falling back to %s", self.primary.mode, type(exc).__name__, exc,
            self.secondary.mode, exc_info=log.isEnabledFor(logging.DEBUG),
        )

    def _fall_back(self, question: Question, search: Search, exc: Exception, *, emitted: bool) -> Answer:
        reason = str(exc) if isinstance(exc, LLMError) else f"unexpected {type(exc).__name__}"
        log.debug("language model unavailable: %s", reason)
        tried = attempt_of(exc)
        answer = self.secondary.answer(question, search)
        what = "stopped mid-answer" if emitted else "is unavailable"
        reason = " ".join(reason.split())[:200]
        return replace(
            answer,
            notice=f"The language model {what} ({reason}); showing the {self.secondary.mode} answer.",
            prompts={**tried.prompts, **answer.prompts},
            timings={**tried.timings, **answer.timings},
        )
