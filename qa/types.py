"""Plain data that flows from the engine to every front end: Chunk, Citation, Answer."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

# A citation marker in an answer's text: "[1]", "[1, 3]" (and "[ 2 ]", "[1;3]" as people type them);
# group 1 holds the numbers. The one definition every part that finds, strips or renders markers uses.
MARKER = re.compile(r"\[\s*(\d{1,4}(?:\s*[,;]\s*\d{1,4})*)\s*\]")
_SPACED_MARKER = re.compile(r"\s*" + MARKER.pattern)


def marker_numbers(marker: str) -> list[int]:
    """The citation numbers a marker names: `[1, 3]` -> [1, 3]."""
    return [int(n) for n in re.findall(r"\d+", marker)]


def strip_markers(text: str) -> str:
    """`text` without its citation markers (and the space before each), whitespace collapsed."""
    return " ".join(_SPACED_MARKER.sub("", text).split())


@dataclass(frozen=True)
class Sentence:
    """One sentence of a chunk, by absolute character offsets into its source file."""

    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    """A sentence-aligned slice of one paragraph, with where it came from."""

    id: str
    source: str
    title: str
    paragraph: int
    start: int
    end: int
    text: str
    sentences: tuple[Sentence, ...] = ()
    file_hash: str = ""
    # Where the chunk sits (issue 15): PDF page or PPTX slide, heading path "A › B", the ingested
    # folder it came from (identity = root + source), and "markdown" when its text keeps inline Markdown.
    page: int | None = None
    section: str = ""
    root: str = ""
    markup: str = ""

    @property
    def folder(self) -> str:
        """The name of the ingested folder the chunk's file is in (how two same-named files differ)."""
        return folder_name(self.root)

    @property
    def doc_id(self) -> str:
        return doc_id(self.root, self.source)

    def sentence_texts(self) -> list[str]:
        return [self.text[s.start - self.start : s.end - self.start] for s in self.sentences]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        known = _known(cls, data)
        known["sentences"] = tuple(Sentence(int(x["start"]), int(x["end"])) for x in known.get("sentences", ()))
        return cls(**known)

    def cite(self, n: int, index: int, score: float) -> Citation:
        """Citation `[n]` of this chunk's sentence `index`, quoted exactly from its offsets."""
        sentence = self.sentences[index]
        return Citation(
            n=n,
            source=self.source,
            title=self.title,
            paragraph=self.paragraph,
            start=sentence.start,
            end=sentence.end,
            quote=self.text[sentence.start - self.start : sentence.end - self.start],
            score=round(score, 4),
            chunk_id=self.id,
            passage=self.text,
            page=self.page,
            section=self.section,
            folder=self.folder,
            doc_id=self.doc_id,
            markup=self.markup,
        )


@dataclass(frozen=True)
class Citation:
    """Where one `[n]` of an answer comes from: `quote == source_text[start:end]`."""

    n: int
    source: str
    title: str
    paragraph: int
    start: int
    end: int
    quote: str
    score: float
    chunk_id: str = ""
    passage: str = ""
    page: int | None = None  # PDF page or PPTX slide
    section: str = ""  # heading path, "3. Leave entitlements › Sick leave"
    folder: str = ""  # the ingested folder's name: two README.md files are "docs/README.md" and "wiki/README.md"
    doc_id: str = ""  # key of the document's extracted text under QA_DATA_DIR (`Engine.document_text`)
    markup: str = ""  # "markdown" when `quote` keeps inline Markdown; `plain_quote` has it stripped

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["plain_quote"] = self.plain_quote
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Citation:
        """The citation `to_dict()` wrote (`plain_quote` is derived, so it is dropped); a missing `score` is 0."""
        known = _known(cls, data)
        known.setdefault("score", 0.0)
        known.setdefault("title", "")
        known.setdefault("paragraph", 0)
        return cls(**known)

    @property
    def plain_quote(self) -> str:
        """The quote without inline Markdown: what is compared and shown where Markdown isn't rendered."""
        if self.markup != "markdown":
            return self.quote
        from qa.text import strip_markdown

        return strip_markdown(self.quote)

    @property
    def label(self) -> str:
        """The file as cited: `folder/path`, so the same name in two folders stays two documents."""
        return f"{self.folder}/{self.source}" if self.folder else self.source

    @property
    def location(self) -> str:
        """"page 3", "slide 2 · Results" or "Leave › Sick leave, paragraph 4": as precise as the format allows."""
        return describe_location(self.page, self.section, self.paragraph, slide=self.source.lower().endswith(".pptx"))


def describe_location(page: int | None, section: str, paragraph: int, *, slide: bool = False) -> str:
    parts = []
    if page is not None:
        parts.append(f"{'slide' if slide else 'page'} {page}")
    if section:
        parts.append(f"§ {section}")
    if page is None:
        parts.append(f"paragraph {paragraph}")
    return ", ".join(parts)


def _known(cls: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of `data` that are fields of dataclass `cls` (derived keys such as `plain_quote` dropped)."""
    if not isinstance(data, dict):
        raise ValueError(f"a {cls.__name__} needs a JSON object, not {type(data).__name__}")
    return {k: v for k, v in data.items() if k in cls.__dataclass_fields__}


def folder_name(root: str) -> str:
    return root.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] if root else ""


def doc_id(root: str, source: str) -> str:
    """A document's identity: which ingested folder, and its path inside it."""
    import hashlib

    return hashlib.sha256(f"{root}\x00{source}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class UnsupportedSentence:
    """A sentence of an LLM answer that no valid citation backs: `answer.text[start:end] == text`.

    `reason` is `uncited` (no marker), `invalid_citation` (its only markers named no passage and were
    removed) or `not_in_source` (cited, but a number or name in it is absent from the cited passages,
    listed in `missing`).
    """

    start: int
    end: int
    text: str
    reason: str
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "missing": list(self.missing)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnsupportedSentence:
        known = _known(cls, data)
        known["missing"] = tuple(known.get("missing", ()))
        return cls(**known)

    def describe(self) -> str:
        """Why the sentence is flagged, in a few words a reader understands."""
        if self.reason == "invalid_citation":
            return "its citation named no passage"
        if self.reason == "not_in_source":
            return "not in the cited source: " + ", ".join(self.missing)
        return "no citation"


@dataclass(frozen=True)
class Answer:
    """What every front end renders: the text with inline `[n]` markers and their citations.

    Frozen: an answer is final once returned; a changed copy is `dataclasses.replace(answer, ...)`.
    """

    text: str
    citations: list[Citation] = field(default_factory=list)
    abstained: bool = False
    mode: str = "extractive"
    timings: dict[str, float] = field(default_factory=dict)
    grounded: bool = True
    notice: str | None = None
    question: str = ""
    retrieval_query: str = ""
    retrieved: list[Chunk] = field(default_factory=list)
    # LLM mode: the messages sent, by purpose ("condense", "answer"); empty in extractive mode
    prompts: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    # Extractive mode: the answerability model's probability that the best sentence answers (None otherwise)
    confidence: float | None = None
    # LLM mode: sentences no valid citation backs (empty for extractive answers, which only quote)
    unsupported_sentences: list[UnsupportedSentence] = field(default_factory=list)

    def to_dict(self, *, with_retrieved: bool = False, with_prompts: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "question": self.question,
            "text": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "abstained": self.abstained,
            "grounded": self.grounded,
            "mode": self.mode,
            "notice": self.notice,
            "retrieval_query": self.retrieval_query,
            "timings": dict(self.timings),
            "unsupported_sentences": [u.to_dict() for u in self.unsupported_sentences],
        }
        if with_retrieved:
            data["retrieved"] = [c.to_dict() for c in self.retrieved]
        if with_prompts:
            data["prompts"] = {purpose: [dict(m) for m in messages] for purpose, messages in self.prompts.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        """The Answer `to_dict()` describes (with `retrieved` and `prompts` when it carried them).

        What a front end gets back as JSON (a Slack button, the API, a results file) becomes an Answer
        again; keys `to_dict` never writes are ignored, missing ones take their defaults.
        """
        if not isinstance(data, dict) or not isinstance(data.get("text", ""), str):
            raise ValueError("an Answer needs a JSON object with a `text` string")
        return cls(
            text=str(data.get("text", "")),
            citations=[Citation.from_dict(c) for c in data.get("citations") or []],
            abstained=bool(data.get("abstained", False)),
            mode=str(data.get("mode", "extractive")),
            timings={str(k): float(v) for k, v in (data.get("timings") or {}).items()},
            grounded=bool(data.get("grounded", True)),
            notice=data.get("notice"),
            question=str(data.get("question", "")),
            retrieval_query=str(data.get("retrieval_query", "")),
            retrieved=[Chunk.from_dict(c) for c in data.get("retrieved") or []],
            prompts={str(p): [dict(m) for m in ms] for p, ms in (data.get("prompts") or {}).items()},
            confidence=data.get("confidence"),
            unsupported_sentences=[UnsupportedSentence.from_dict(u) for u in data.get("unsupported_sentences") or []],
        )


@dataclass
class IngestReport:
    """What `Engine.ingest` did, file by file."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    chunks_embedded: int = 0
    chunks_deleted: int = 0
    chunks_repaired: int = 0  # of chunks_embedded: kept chunks whose stored vectors were missing or unreadable
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
