"""Errors a user can act on. Each message says what to do next.

    QAError
    ├── ConfigError           a setting or an optional extra is missing or wrong
    ├── InputError            a question or file we refuse (empty, too long, unreadable)
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


class QAError(Exception):
    """Base of every error `qa` raises on purpose; its message is meant for the user."""


class ConfigError(QAError):
    pass


class InputError(QAError):
    pass


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
