"""qa: grounded question answering over your documents, with checkable citations.

    from qa import Engine
    engine = Engine.open()
    engine.ingest("seeds/")
    answer = engine.ask("Who is the UN Secretary General mentioned?")
"""

from __future__ import annotations

from qa.engine import Engine
from qa.errors import (
    ConfigError,
    EmbeddingMismatchError,
    EmptyQuestionError,
    IndexMissingError,
    InputError,
    LLMAuthError,
    LLMError,
    LLMUnavailableError,
    PromptError,
    QAError,
    QuestionTooLongError,
    StoreBusyError,
    StoreError,
)
from qa.settings import Settings
from qa.types import Answer, Chunk, Citation, IngestReport

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "Chunk",
    "Citation",
    "ConfigError",
    "EmbeddingMismatchError",
    "EmptyQuestionError",
    "Engine",
    "IndexMissingError",
    "IngestReport",
    "InputError",
    "LLMAuthError",
    "LLMError",
    "LLMUnavailableError",
    "PromptError",
    "QAError",
    "QuestionTooLongError",
    "Settings",
    "StoreBusyError",
    "StoreError",
    "__version__",
]
