"""The per-question log: one JSON line per question in `QA_DATA_DIR/logs/questions.jsonl`, rotated.

Each line holds the question's id, time, answering mode, latency, whether it abstained or fell back,
and for a failure the error's class and its cause. The question's text is written only with
`QA_LOG_QUESTIONS=1`; setting values that are secrets (keys, tokens, passwords) never are.
`Engine.ask` and `Engine.stream` are wrapped by `logged`, so every front end's questions land here.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.handlers
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

if TYPE_CHECKING:
    from qa.settings import Settings
    from qa.types import Answer

log = logging.getLogger(__name__)

LOG_NAME = "questions.jsonl"
_MESSAGE_CHARS = 300  # an error message is cut to this; the class names say the rest
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s@'\"]+@")
_TOKEN_LIKE = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{8,}|xox[a-z]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,})")
_opened: dict[Path, QuestionLog] = {}
_opened_lock = threading.Lock()

T = TypeVar("T")
P = ParamSpec("P")


class QuestionLog:
    """Appends question records to a size-rotated JSON-lines file; never fails the question it logs."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.data_dir / "logs" / LOG_NAME
        self.with_questions = settings.log_questions
        self._secrets = [s for s in _secret_values(settings) if len(s) >= 4]
        self._logger = logging.Logger(f"qa.questions:{self.path}")
        self._logger.propagate = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                self.path,
                maxBytes=max(settings.log_max_mb, 1) * 1_000_000,
                backupCount=max(settings.log_backups, 1),
                encoding="utf-8",
                delay=True,
            )
        except OSError as exc:
            log.warning("not logging questions: can't write %s (%s)", self.path, exc.strerror or exc)
            return
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger.addHandler(handler)

    def write(self, record: dict[str, Any]) -> None:
        self._logger.info(json.dumps(record, ensure_ascii=False))

    def entry(self, question: object) -> Entry:
        return Entry(self, question)

    def scrub(self, text: str) -> str:
        """`text` without credentials in URLs, key-shaped strings, or any configured secret value."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = _URL_CREDENTIALS.sub("***@", text)
        return _TOKEN_LIKE.sub("***", text)

    def close(self) -> None:
        for handler in list(self._logger.handlers):
            handler.close()
            self._logger.removeHandler(handler)


class Entry:
    """One question being answered: filled in by `answered` or `failed`, then written once."""

    def __init__(self, log_: QuestionLog, question: object) -> None:
        self._log = log_
        self._question = question if isinstance(question, str) else repr(type(question))
        self._started = time.perf_counter()
        self._written = False
        self.id = uuid.uuid4().hex[:16]
        self.time = datetime.now(timezone.utc).isoformat(timespec="milliseconds")

    def answered(self, answer: Answer) -> None:
        self._write(
            mode=answer.mode,
            abstained=answer.abstained,
            grounded=answer.grounded,
            fallback=bool(answer.notice),
            error=None,
        )

    def failed(self, exc: BaseException) -> None:
        # `raise X(...) from None` hides the context from tracebacks shown to users; the log keeps it
        cause = exc.__cause__ or exc.__context__
        self._write(
            mode=None,
            abstained=None,
            error=type(exc).__name__,
            message=self._message(exc),
            cause=f"{type(cause).__name__}: {self._message(cause)}" if cause is not None else None,
        )

    def _message(self, exc: BaseException) -> str:
        return self._log.scrub(" ".join(str(exc).split()))[:_MESSAGE_CHARS]

    def _write(self, **fields: Any) -> None:
        if self._written:
            return
        self._written = True
        record: dict[str, Any] = {
            "id": self.id,
            "time": self.time,
            "latency_ms": round((time.perf_counter() - self._started) * 1000, 2),
            **fields,
        }
        if self._log.with_questions:
            record["question"] = self._log.scrub(self._question[:10_000])
        self._log.write(record)


def question_log(settings: Settings) -> QuestionLog:
    """The log of `settings.data_dir`, opened once per process (threads share it)."""
    path = (settings.data_dir / "logs" / LOG_NAME).resolve()
    with _opened_lock:
        found = _opened.get(path)
        if found is None or found.with_questions != settings.log_questions:
            if found is not None:
                found.close()
            found = _opened[path] = QuestionLog(settings)
        return found


def logged(method: Callable[P, T]) -> Callable[P, T]:
    """Log each call of `Engine.ask` (returns an Answer) or `Engine.stream` (yields one last)."""
    from qa.types import Answer

    if _is_generator(method):

        @functools.wraps(method)
        def streamed(engine: Any, question: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            entry = question_log(engine.settings).entry(question)
            try:
                for item in method(engine, question, *args, **kwargs):  # type: ignore[attr-defined]
                    if isinstance(item, Answer):
                        entry.answered(item)
                    yield item
            except GeneratorExit:
                entry.failed(_Cancelled("the client stopped reading before the answer was complete"))
                raise
            except Exception as exc:
                entry.failed(exc)
                raise

        return cast("Callable[P, T]", streamed)  # the wrapper takes the method's arguments

    @functools.wraps(method)
    def asked(engine: Any, question: Any, *args: Any, **kwargs: Any) -> T:
        entry = question_log(engine.settings).entry(question)
        try:
            answer = method(engine, question, *args, **kwargs)
        except Exception as exc:
            entry.failed(exc)
            raise
        if isinstance(answer, Answer):
            entry.answered(answer)
        return answer

    return cast("Callable[P, T]", asked)


class _Cancelled(Exception):
    """A streamed answer its reader abandoned (a closed browser tab)."""


def _is_generator(func: Callable[..., Any]) -> bool:
    import inspect

    return inspect.isgeneratorfunction(func)


def _secret_values(settings: Settings) -> list[str]:
    from pydantic import SecretStr

    values: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr) and value.get_secret_value():
            secret = value.get_secret_value()
            values.append(secret)
            values.extend(part for part in secret.split(":") if part)  # user:password
    url = settings.llm_base_url or ""
    match = re.search(r"://([^/\s@]+)@", url)
    if match:
        values.extend(part for part in match.group(1).split(":") if part)
    return values
