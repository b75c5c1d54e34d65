"""Errors a user can act on. Each message says what to do next.

    QAError
    ├── ConfigError           a setting or an optional extra is missing or wrong
    ├── InputError            a question or file we refuse (empty, too long, unreadable)
    │   ├── EmptyQuestionError      nothing left of the question once cleaned
    │   └── QuestionTooLongError    over QA_MAX_QUESTION_CHARS (`length`, `limit`)
    ├── IndexMissingError     nothing ingested yet
    ├── StoreError            the Chroma store can't be reached or opened
    │   ├── StoreBusyError        another writer held the store past QA_WRITE_LOCK_TIMEOUT
    │   └── EmbeddingMismatchError  the index was built with another embedding model than QA_EMBED_MODEL's
    ├── PromptError           a prompt template is missing or lacks a variable
    └── LLMError              the language model failed
        ├── LLMAuthError          the key was refused
        └── LLMUnavailableError   unreachable, timing out, or answering garbage
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar


class QAError(Exception):
    """Base of every error `qa` raises on purpose; its message is meant for the user."""


class ConfigError(QAError):
    pass


class InputError(QAError):
    pass


class EmptyQuestionError(InputError):
    pass


class QuestionTooLongError(InputError):
    def __init__(self, message: str, *, length: int, limit: int) -> None:
        super().__init__(message)
        self.length, self.limit = length, limit


class IndexMissingError(QAError):
    pass


class StoreError(QAError):
    pass


class StoreBusyError(StoreError):
    pass


class EmbeddingMismatchError(StoreError):
    pass


class PromptError(QAError):
    pass


class LLMError(QAError):
    pass


class LLMAuthError(LLMError):
    pass


class LLMUnavailableError(LLMError):
    pass


F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """For click commands: QAError → `Error: message`, exit 1; anything else → one line too, unless QA_DEBUG=1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import click

        try:
            return func(*args, **kwargs)
        except QAError as exc:
            if os.environ.get("QA_DEBUG") == "1" and exc.__cause__ is not None:
                import traceback

                traceback.print_exception(exc)  # with its cause: what Chroma, the network or the OS said
            raise click.ClickException(str(exc)) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("QA_DEBUG") == "1":
                raise
            raise click.ClickException(
                f"Unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} (set QA_DEBUG=1 for a traceback)"
            ) from exc

    return wrapper  # type: ignore[return-value]
