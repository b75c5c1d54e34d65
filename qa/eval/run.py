"""Running a gold set: which items are asked (a split, conversations), on which engine, and how each is scored.

Every item goes through `Engine.ask` (or a baseline's `ask`), the call the CLI, chat page and Slack
make; a follow-up first replays its `history` in one conversation. Scoring is `qa/metrics.py`'s.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from qa.engine import Engine
from qa.errors import ConfigError, InputError
from qa.metrics import GoldItem, Scored, score_item, summarize
from qa.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from qa.retrieve import Retrieval, Retriever
    from qa.types import Answer, Citation

Ask = Callable[..., "Answer"]
RETRIEVAL_MODES = ("hybrid", "dense", "bm25")
SPLITS = ("dev", "test")
# Reported beside METRICS: the answerability score's AUROC, and for conversations the follow-up decision.
EXTRA_SUMMARY = ("answerability_auroc", "follow_up_right")


# -- what is asked: a split of a gold set, or the turns of conversations -------------------------


def split_file(gold_path: Path) -> Path:
    """The split beside the gold file (`eval/split.json` for `eval/gold.jsonl`), else the project's."""
    beside = gold_path.parent / "split.json"
    return beside if beside.is_file() else PROJECT_ROOT / "eval" / "split.json"


def select_split(items: Sequence[GoldItem], gold_path: Path, split: str) -> list[GoldItem]:
    """The items of `split` (dev: fitting data; test: reporting only) named in the split file."""
    path = split_file(gold_path)
    try:
        ids = json.loads(path.read_text(encoding="utf-8"))[split]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"Cannot read the {split} ids from {path} ({exc}); it needs a JSON object with `dev` and `test` id lists.") from exc
    wanted = set(ids)
    chosen = [item for item in items if item.id in wanted]
    if not chosen:
        raise InputError(f"None of the {split} ids in {path} are in {gold_path}: --split applies to the gold set that file splits.")
    return chosen


def is_conversations(path: Path) -> bool:
    """Is `path` a conversations file (one conversation a line, with `turns`)?"""
    try:
        with path.open(encoding="utf-8") as fh:
            first = next((line for line in fh if line.strip()), "")
        data = json.loads(first)
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "turns" in data


def load_conversations(path: Path) -> tuple[list[GoldItem], dict[str, bool]]:
    """Each turn as a gold item whose history is the conversation's earlier questions, and each turn's `follow_up`."""
    from qa.metrics import parse_gold_line

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read {path}: {exc}.") from exc
    items: list[GoldItem] = []
    follow_up: dict[str, bool] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            turns = data["turns"]
            if not isinstance(turns, list) or not turns:
                raise ValueError("`turns` must be a non-empty list")
            questions: list[str] = []
            for i, turn in enumerate(turns, start=1):
                if not isinstance(turn, dict):
                    raise ValueError(f"turn {i} must be a JSON object")
                line = {**turn, "id": f"{data.get('id', f'line-{number}')}#{i}", "history": list(questions)}
                line.pop("follow_up", None)
                try:
                    item = parse_gold_line(json.dumps(line), number)
                except ValueError as exc:
                    raise ValueError(f"turn {i}: {exc}") from exc
                flag = turn.get("follow_up", False)
                if not isinstance(flag, bool):
                    raise ValueError(f"turn {i}: `follow_up` must be true or false")
                items.append(item)
                follow_up[item.id] = flag
                questions.append(item.question)
        except (ValueError, KeyError, TypeError) as exc:
            reason = "missing field `turns`" if isinstance(exc, KeyError) else str(exc)
            raise InputError(f"{path} line {number}: {reason}. Fix that line and run again.") from exc
    if not items:
        raise InputError(f"{path} has no conversations: add one JSON object a line.")
    return items, follow_up


def answerability_auroc(records: Sequence[dict[str, Any]]) -> float | None:
    """How well the answerability score ranks answerable above unanswerable items (None without both, or no scores)."""
    scored = [(r["confidence"], r["answerable"]) for r in records if r.get("confidence") is not None]
    pos = [c for c, a in scored if a]
    neg = [c for c, a in scored if not a]
    if not pos or not neg:
        return None
    wins = float(sum((p > n) + 0.5 * (p == n) for p in pos for n in neg))
    return round(wins / (len(pos) * len(neg)), 4)


def add_extra_summary(run: Run, follow_up: dict[str, bool] | None) -> None:
    """The answerability AUROC and, for conversations, the share of later turns whose follow-up decision was right."""
    run.summary["answerability_auroc"] = answerability_auroc(run.records)
    if follow_up:
        decided = [r for r in run.records if r["history"]]
        for r in decided:
            r["follow_up"] = {"expected": follow_up.get(r["id"], False), "decided": r["retrieval_query"] != r["question"]}
        right = [r["follow_up"]["expected"] == r["follow_up"]["decided"] for r in decided]
        run.summary["follow_up_right"] = round(sum(right) / len(right), 4) if right else None
        run.summary["n_follow_up_decisions"] = len(right)


# -- what runs: the engine, or the baseline ----------------------------------------------------


class _FixedModeRetriever:
    """Wraps the engine's retriever so every search uses one mode (`qa eval --retrieval dense`)."""

    def __init__(self, inner: Retriever, mode: str) -> None:
        self._inner = inner
        self._mode = mode

    def retrieve(self, query: str, k: int, *, mode: str = "hybrid") -> Retrieval:
        return self._inner.retrieve(query, k, mode=self._mode)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class RetrievalModeEngine(Engine):
    """The engine every front end uses, with every search in one retrieval mode (`qa eval --retrieval`)."""

    def __init__(self, settings: Settings, *, retrieval: str = "hybrid") -> None:
        if retrieval not in RETRIEVAL_MODES:
            raise ConfigError(f"Unknown retrieval mode {retrieval!r}: use one of {', '.join(RETRIEVAL_MODES)}.")
        super().__init__(settings)
        self.retrieval = retrieval

    @property
    def retriever(self) -> Retriever:
        inner = super().retriever
        # duck-typed: every attribute but `retrieve` is the inner retriever's
        return inner if self.retrieval == "hybrid" else cast("Retriever", _FixedModeRetriever(inner, self.retrieval))


def open_engine(settings: Settings, *, retrieval: str = "hybrid") -> Engine:
    """The engine, opened as every front end opens it (`Engine.open`); its searches use `retrieval`."""
    if retrieval == "hybrid":
        return Engine.open(settings)
    return RetrievalModeEngine.open(settings, retrieval=retrieval)


def corpus_collection(corpus: Path) -> str:
    """The collection a benchmark corpus is indexed into: its own, named from a hash of its path."""
    digest = hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:12]
    return f"eval-{digest}"


def prepare_index(engine: Engine, corpus: Path | None, *, progress: bool | None) -> str:
    """Ingest `corpus` (incrementally), or the seeds when the store is empty; says what it did."""
    if corpus is not None:
        if not corpus.is_dir():
            raise InputError(f"No corpus folder at {corpus}: pass --corpus DIR, a folder of documents (PDF, DOCX, HTML, Markdown, text, ...).")
        report = engine.ingest(corpus, progress=progress)
        return f"Indexed {corpus} into collection {engine.settings.collection}: {report.chunks_embedded} chunks embedded, {len(report.unchanged)} files unchanged."
    if engine.is_empty():
        seeds = engine.settings.seeds_dir
        report = engine.ingest(seeds, progress=progress)
        return f"The index was empty: indexed {seeds} ({report.chunks_embedded} chunks)."
    return ""


# -- running a gold set ------------------------------------------------------------------------


@dataclass
class Run:
    """One system over one gold set: per-item records and their summary."""

    mode: str
    records: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


_RECORD_TEXT_CHARS = 2_000  # a gold text longer than this is cut in results.jsonl and the report
_RECORD_LIST_ITEMS = 50


def _clipped(data: dict[str, Any]) -> dict[str, Any]:
    """A gold item for the results: huge texts and lists cut, so one bad line can't bloat every output."""

    def clip(text: str) -> str:
        return text if len(text) <= _RECORD_TEXT_CHARS else text[:_RECORD_TEXT_CHARS] + f"… [{len(text):,} characters]"

    out = dict(data)
    for key, value in data.items():
        if isinstance(value, str):
            out[key] = clip(value)
        elif isinstance(value, list):
            out[key] = [clip(v) if isinstance(v, str) else v for v in value[:_RECORD_LIST_ITEMS]]
    return out


def _citation_record(c: Citation) -> dict[str, Any]:
    data = c.to_dict()
    data.pop("passage", None)  # the chunk text; results.jsonl keeps the quote and offsets
    return data


def run_items(ask: Ask, items: Sequence[GoldItem], *, k: int, mode: str, progress: bool) -> Run:
    """Ask every item (replaying its history first) and score it."""
    from tqdm import tqdm

    run = Run(mode=mode)
    for item in tqdm(items, desc=f"Evaluating {mode}", unit="q", file=sys.stderr, disable=not progress, mininterval=0.5):
        messages: list[dict[str, str]] = []
        replayed: list[str] = []
        error = None
        answer = None
        latency = 0.0
        try:
            for earlier in item.history:
                previous = ask(earlier, history=list(messages), k=k)
                messages += [{"role": "user", "content": earlier}, {"role": "assistant", "content": previous.text}]
                replayed.append(previous.text)
            started = time.perf_counter()
            answer = ask(item.question, history=list(messages), k=k)
            latency = (time.perf_counter() - started) * 1000
        except InputError as exc:  # a question the engine refuses counts as wrong; the run goes on
            error = str(exc)
        if answer is not None:
            scored = Scored(
                text=answer.text,
                abstained=answer.abstained,
                cited=[(c.chunk_id, c.passage) for c in answer.citations],
                retrieved=[c.text for c in answer.retrieved],
                latency_ms=latency,
            )
        else:
            scored = Scored(text="", abstained=False)
        metrics = score_item(item, scored, k=k)
        record: dict[str, Any] = {
            **_clipped(item.to_dict()),
            "answer": answer.text if answer else "",
            "abstained": scored.abstained,
            "citations": [_citation_record(c) for c in answer.citations] if answer else [],
            "retrieved": [c.id for c in answer.retrieved[:k]] if answer else [],
            "retrieval_query": answer.retrieval_query if answer else "",
            "history_answers": replayed,
            "mode": answer.mode if answer else mode,
            "notice": answer.notice if answer else None,
            "confidence": getattr(answer, "confidence", None) if answer else None,
            "grounded": answer.grounded if answer else None,
            "unsupported_sentences": [u.to_dict() for u in answer.unsupported_sentences] if answer else [],
            "error": error,
            "metrics": metrics,
            "timings": {**(answer.timings if answer else {}), "latency_ms": round(latency, 2)},
        }
        # Kept in memory for the judge; not written to results.jsonl.
        record["_passages"] = [c.passage for c in answer.citations] if answer else []
        run.records.append(record)
    run.summary = summarize(run.records, mode=mode)
    run.summary["llm_fallbacks"] = sum(1 for r in run.records if r["notice"])
    run.summary["errors"] = sum(1 for r in run.records if r["error"])
    run.summary.update(grounding_summary(run.records))
    return run


def grounding_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Of the answers that are not abstentions: the share flagged ungrounded, and the share with any sentence flagged."""
    answers = [r for r in records if r.get("grounded") is not None and not r["abstained"]]
    if not answers:
        return {"ungrounded_share": None, "flagged_share": None}
    return {
        "ungrounded_share": round(sum(1 for r in answers if not r["grounded"]) / len(answers), 4),
        "flagged_share": round(sum(1 for r in answers if not r["grounded"] or r["unsupported_sentences"]) / len(answers), 4),
    }


def unreachable_evidence(engine: Engine, items: Sequence[GoldItem]) -> int:
    """Answerable items whose evidence no indexed chunk contains: retrieval metrics can't credit them."""
    from qa.metrics import contains_any
    from qa.text import normalize

    chunks = [c.text for c in engine.chunks()]
    texts = [normalize(t) for t in chunks]

    def found(item: GoldItem) -> bool:
        if any(normalize(e) in t for e in item.evidence for t in texts):
            return True
        # the slower matching the metrics also use: Markdown stripped, table rows as readers quote them
        return any(contains_any(t, item.evidence) for t in chunks)

    return sum(1 for item in items if item.answerable and not found(item))
