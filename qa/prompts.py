"""Prompt templates: read `prompts/*.md`, fill them, and fence retrieved passages off as data.

Templates use `{name}` placeholders, filled in one pass, so a value that happens to contain
`{question}` is never expanded again; `{{` and `}}` are literal braces. Passages go inside a
`<documents>` block and every delimiter-like tag inside their text is escaped, so a document
can't end the block and talk to the model as if it were the prompt.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from qa.errors import PromptError
from qa.types import Chunk, strip_markers

Message = dict[str, str]

NO_ANSWER = "The documents don't cover this."
# file name -> variables the template must use (others it may use are in _OPTIONAL)
TEMPLATES: dict[str, tuple[str, ...]] = {
    "system.md": (),
    "answer.md": ("passages", "question"),
    "condense.md": ("history", "question"),
}
_OPTIONAL = ("no_answer",)
HISTORY_TURNS = 6  # messages of history shown to the condensing prompt
HISTORY_CHARS = 600  # per message: long answers add little to resolving "he" or "that"

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DELIMITERS = ("documents", "passage", "question", "conversation", "follow_up")
# "<", full-width "＜" and small "﹤" followed by an optional "/" and one of our tag names; also "<|" chat-template tokens.
_DELIMITER_LIKE = re.compile(r"[<\uff1c\ufe64](?=\s*/?\s*(?:" + "|".join(_DELIMITERS) + r")\b)|<(?=\|)", re.IGNORECASE)


def fill(template: str, values: Mapping[str, str], *, name: str = "template") -> str:
    """Replace every `{key}` in `template` by `values[key]`; a placeholder without a value is a PromptError."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        key = match.group(1)
        if key not in values:
            known = ", ".join(f"{{{k}}}" for k in sorted(values)) or "none"
            raise PromptError(f"{name} uses {{{key}}}, which qa doesn't fill (variables: {known}). Fix the template or use {{{{ for a literal brace.")
        return values[key]

    return _PLACEHOLDER.sub(substitute, template)


def placeholders(template: str) -> set[str]:
    return {m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)}


@dataclass(frozen=True)
class PromptSet:
    """The three templates of one prompts folder, read and checked once."""

    folder: Path
    system: str
    answer: str
    condense: str

    @classmethod
    def load(cls, folder: str | Path) -> PromptSet:
        root = Path(folder)
        texts: dict[str, str] = {}
        for file_name, required in TEMPLATES.items():
            path = root / file_name
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError as exc:
                raise PromptError(
                    f"Prompt file {path} is missing. Restore it, or point QA_PROMPTS_DIR at a folder with "
                    f"{', '.join(TEMPLATES)}."
                ) from exc
            except (OSError, UnicodeDecodeError) as exc:
                raise PromptError(f"Can't read prompt file {path}: {exc}. Fix it or point QA_PROMPTS_DIR elsewhere.") from exc
            used = placeholders(text)
            missing = [v for v in required if v not in used]
            if missing:
                raise PromptError(f"Prompt file {path} lacks {', '.join('{' + v + '}' for v in missing)}. Add it to the template.")
            unknown = sorted(used - set(required) - set(_OPTIONAL))
            if unknown:
                raise PromptError(
                    f"Prompt file {path} uses {', '.join('{' + v + '}' for v in unknown)}, which qa doesn't fill. "
                    "Remove it, or write {{ and }} for literal braces."
                )
            texts[file_name.removesuffix(".md")] = text.strip()
        return cls(root, texts["system"], texts["answer"], texts["condense"])

    def answer_messages(self, question: str, chunks: Sequence[Chunk]) -> list[Message]:
        """The system and user messages that ask for a cited answer from `chunks`."""
        system = fill(self.system, {"no_answer": NO_ANSWER}, name=str(self.folder / "system.md"))
        user = fill(
            self.answer,
            {"passages": format_passages(chunks), "question": neutralize(question), "no_answer": NO_ANSWER},
            name=str(self.folder / "answer.md"),
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def condense_messages(self, question: str, history: Iterable[Mapping[str, str] | str]) -> list[Message]:
        """The one message that asks for a follow-up rewritten as a standalone question."""
        content = fill(
            self.condense,
            {"history": format_history(history), "question": neutralize(question), "no_answer": NO_ANSWER},
            name=str(self.folder / "condense.md"),
        )
        return [{"role": "user", "content": content}]


def neutralize(text: str) -> str:
    """Escape anything in `text` that could pass for one of our delimiters (`</passage>`, `<documents>`, `<|…`)."""
    return _DELIMITER_LIKE.sub("&lt;", text)


def _attribute(value: object) -> str:
    return html.escape(" ".join(str(value).split()), quote=True)


def format_passages(chunks: Sequence[Chunk]) -> str:
    """Number the passages from 1, each in its own `<passage>` element, text escaped."""
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        parts.append(
            f'<passage n="{n}" source="{_attribute(chunk.source)}" title="{_attribute(chunk.title)}" '
            f'paragraph="{chunk.paragraph}">\n{neutralize(chunk.text)}\n</passage>'
        )
    return "\n".join(parts)


def format_history(history: Iterable[Mapping[str, str] | str]) -> str:
    """The last turns as `User: …` / `Assistant: …` lines, citation markers dropped, delimiters escaped."""
    lines: list[str] = []
    for message in history:
        if isinstance(message, str):
            role, content = "user", message
        elif isinstance(message, Mapping) and isinstance(message.get("content"), str):
            role, content = str(message.get("role", "user")), str(message["content"])
        else:
            continue
        if role not in ("user", "assistant"):
            continue
        text = strip_markers(content)
        if not text:
            continue
        if len(text) > HISTORY_CHARS:
            text = text[:HISTORY_CHARS].rstrip() + " …"
        lines.append(f"{role.capitalize()}: {neutralize(text)}")
    return "\n".join(lines[-HISTORY_TURNS:])


def load_prompts(folder: str | Path) -> PromptSet:
    return PromptSet.load(folder)
