"""`qa eval`: run a gold Q&A set through the engine, score it, write a report and chart, compare runs, gate CI.

Every item goes through `Engine.ask`, the call the CLI, chat page and Slack make; a follow-up first
replays its `history` in one conversation. Scoring lives in `qa/metrics.py` (its docstring says how
answerable and unanswerable items enter each metric). A run folder holds results.jsonl,
summary.json, report.md and metrics.png; `--baseline` puts the dense-only top-1-sentence answerer
through the same harness, `--with-baseline` runs both and reports them side by side.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from qa.cli import _check_store_not_locked, _settings, friendly_errors
from qa.errors import IndexMissingError, InputError, QAError
from qa.metrics import (
    LLM_METRICS,
    LOWER_IS_BETTER,
    METRICS,
    NUMERIC,
    RATES,
    GoldItem,
    Scored,
    check_gate,
    load_gold,
    score_item,
    strip_markers,
    summarize,
)
from qa.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from qa.engine import Engine
    from qa.settings import Settings
    from qa.types import Answer, Citation

log = logging.getLogger(__name__)

Ask = Callable[..., "Answer"]
BASELINE_MODE = "baseline"  # dense-only, top-1 sentence
RETRIEVAL_MODES = ("hybrid", "dense", "bm25")
WORST_ITEMS = 10
_DEFAULT_GOLD = Path("eval/gold.jsonl")
_DEFAULT_RUNS = Path("eval/runs")
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
        raise InputError(f"Cannot read {path}: {exc}.") from None
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
                    raise ValueError(f"turn {i}: {exc}") from None
                flag = turn.get("follow_up", False)
                if not isinstance(flag, bool):
                    raise ValueError(f"turn {i}: `follow_up` must be true or false")
                items.append(item)
                follow_up[item.id] = flag
                questions.append(item.question)
        except (ValueError, KeyError, TypeError) as exc:
            reason = "missing field `turns`" if isinstance(exc, KeyError) else str(exc)
            raise InputError(f"{path} line {number}: {reason}. Fix that line and run again.") from None
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
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
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

    def __init__(self, inner: Any, mode: str) -> None:
        self._inner = inner
        self._mode = mode

    def retrieve(self, query: str, k: int, *, mode: str = "hybrid") -> Any:
        return self._inner.retrieve(query, k, mode=self._mode)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def open_engine(settings: Settings, *, retrieval: str = "hybrid") -> Engine:
    """The engine every front end uses; with `retrieval` other than hybrid, its searches use that mode."""
    from qa.engine import Engine

    if retrieval == "hybrid":
        return Engine(settings)

    class _Engine(Engine):
        @property
        def retriever(self) -> Any:
            return _FixedModeRetriever(super().retriever, retrieval)

    return _Engine(settings)


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
    if len(engine.corpus) == 0:
        seeds = engine.settings.seeds_dir
        report = engine.ingest(seeds, progress=progress)
        return f"The index was empty: indexed {seeds} ({report.chunks_embedded} chunks)."
    return ""


class DenseBaseline:
    """The baseline: quotes the single sentence closest to the question by dense similarity; never abstains."""

    mode = BASELINE_MODE

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def ask(self, question: str, history: Sequence[Any] | None = None, *, k: int | None = None) -> Answer:
        from qa.engine import clean_question, follow_up_context
        from qa.types import Answer, Citation

        settings = self.engine.settings
        started = time.perf_counter()
        question = clean_question(question, limit=settings.max_question_chars)
        retriever = self.engine.retriever  # one retriever, one corpus snapshot for the whole question
        corpus = retriever.corpus
        if len(corpus) == 0:
            raise IndexMissingError(f"No index yet in {settings.describe_store()}. Run `qa ingest {settings.seeds_dir}` first.")
        # Follow-ups get the same earlier-question context as the engine, so the comparison is about answering.
        context = follow_up_context(question, history)
        query = f"{context} {question}".strip() if context else question
        retrieval = retriever.retrieve(query, k or settings.top_k, mode="dense")
        # The top-ranked chunk holds the best dense sentence; `sentences` scores every sentence of the top k.
        (ci, si), best = max(retrieval.sentences.items(), key=lambda kv: kv[1].dense)
        chunk = corpus.chunks[ci]
        sentence = chunk.sentences[si]
        quote = chunk.text[sentence.start - chunk.start : sentence.end - chunk.start]
        citation = Citation(
            n=1, source=chunk.source, title=chunk.title, paragraph=chunk.paragraph, start=sentence.start,
            end=sentence.end, quote=quote, score=round(best.dense, 4), chunk_id=chunk.id, passage=chunk.text,
        )
        total = round((time.perf_counter() - started) * 1000, 2)
        return Answer(
            text=f"{quote} [1]", citations=[citation], mode=self.mode, question=question, retrieval_query=query,
            retrieved=list(retrieval.chunks), timings={"total_ms": total},
        )


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
    from tqdm import tqdm  # type: ignore[import-untyped]

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


# -- LLM-judged metrics ------------------------------------------------------------------------


def _parse_score(text: str) -> tuple[float | None, str]:
    """The judge's 1-5 score: the first number of its reply (llama-index's parser needs two lines).

    A number outside 1-5 is no score (a weak judge writes "15" or a year), so it can't skew the mean.
    """
    match = re.search(r"\d+(?:\.\d+)?", text or "")
    score = float(match.group()) if match else None
    return (score if score is not None and 1 <= score <= 5 else None), text.strip()


def judge_run(run: Run, settings: Settings, *, progress: bool) -> None:
    """Add llm_correctness (llama-index CorrectnessEvaluator) and llm_faithfulness (FaithfulnessEvaluator).

    Correctness: answerable items, against the accepted answers; an abstention scores 1 of 5 without a call.
    Faithfulness: answers with citations, against the cited passages. A failed judge call leaves the item out.
    """
    from llama_index.core.evaluation import CorrectnessEvaluator, FaithfulnessEvaluator
    from tqdm import tqdm

    from qa.answer.llm import make_llm

    llm = make_llm(settings)
    correctness = CorrectnessEvaluator(llm=llm, parser_function=_parse_score)
    faithfulness = FaithfulnessEvaluator(llm=llm)
    for record in tqdm(run.records, desc="Judging", unit="q", file=sys.stderr, disable=not progress, mininterval=0.5):
        metrics = record["metrics"]
        text = strip_markers(record["answer"])
        query = record["question"]
        if record["history"]:
            query = "Earlier questions: " + " / ".join(record["history"]) + "\nQuestion: " + query
        try:
            if record["answerable"]:
                if record["abstained"] or not text:
                    score: float | None = 1.0
                else:
                    result = correctness.evaluate(query=query, response=text, reference=" / ".join(record["answers"]))
                    score = result.score
                if score is not None:
                    metrics["llm_correctness_score"] = score
                    metrics["llm_correctness"] = float(score >= 4.0)
            if not record["abstained"] and record["_passages"] and text:
                result = faithfulness.evaluate(query=query, response=text, contexts=record["_passages"])
                metrics["llm_faithfulness"] = float(bool(result.passing))
        except Exception as exc:  # one bad judge reply must not sink a long run
            metrics["judge_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    mode = run.summary["mode"]
    extra: dict[str, Any] = {key: run.summary[key] for key in ("llm_fallbacks", "errors", "ungrounded_share", "flagged_share") if key in run.summary}
    run.summary = {**summarize(run.records, mode=mode), **extra, "judge_model": settings.llm_model}


# -- comparing runs and gating -----------------------------------------------------------------


def read_run(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise InputError(f"No summary.json in {folder}: pass --compare a folder written by `qa eval`.")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        results_path = folder / "results.jsonl"
        records = []
        if results_path.is_file():
            records = [json.loads(line) for line in results_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise InputError(f"Cannot read the run in {folder}: {exc}.") from None
    return summary, records


def compare_runs(old_dir: Path, summary: dict[str, Any], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each metric's change against an earlier run, and the items that went from right to wrong."""
    old_summary, old_records = read_run(old_dir)
    changes: dict[str, dict[str, Any]] = {}
    for name in (*METRICS, "accuracy", *EXTRA_SUMMARY, *LLM_METRICS):
        if name not in summary and name not in old_summary:
            continue
        new, old = summary.get(name), old_summary.get(name)
        delta = round(new - old, 4) if isinstance(new, (int, float)) and isinstance(old, (int, float)) else None
        changes[name] = {"old": old, "new": new, "delta": delta}
    before = {r["id"]: r for r in old_records}
    worse, better = [], []
    for record in records:
        old = before.get(record["id"])
        if old is None:
            continue
        was, now = bool(old["metrics"].get("correct")), bool(record["metrics"].get("correct"))
        if was and not now:
            worse.append({"id": record["id"], "question": record["question"], "old_answer": old["answer"], "new_answer": record["answer"]})
        elif now and not was:
            better.append(record["id"])
    return {
        "against": str(old_dir),
        "metrics": changes,
        "right_to_wrong": worse,
        "wrong_to_right": better,
        "common_items": sum(1 for r in records if r["id"] in before),
    }


def parse_bounds(values: Sequence[str], option: str) -> dict[str, float]:
    bounds: dict[str, float] = {}
    for value in values:
        name, sep, number = value.partition("=")
        name = name.strip()
        if not sep or name not in NUMERIC:
            raise click.BadParameter(f"{value!r}: expected METRIC=VALUE with METRIC one of {', '.join(NUMERIC)}.", param_hint=option)
        try:
            bounds[name] = float(number)
        except ValueError:
            raise click.BadParameter(f"{value!r}: {number!r} is not a number.", param_hint=option) from None
    return bounds


# -- writing the run folder --------------------------------------------------------------------


def run_folder(out: Path | None, mode: str) -> Path:
    if out is not None:
        return out
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = _DEFAULT_RUNS / f"{stamp}-{re.sub(r'[^A-Za-z0-9._+-]+', '-', mode)}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


def safe_settings(settings: Settings) -> dict[str, Any]:
    """Settings for the report: secrets show as set/unset, credentials in URLs are dropped."""
    shown: dict[str, Any] = {}
    for name, info in type(settings).model_fields.items():
        value = getattr(settings, name)
        if "SecretStr" in str(info.annotation) or name.endswith(("_key", "_token", "_secret", "_auth")):
            shown[name] = "set" if value else "unset"
        elif isinstance(value, str) and "://" in value:
            shown[name] = re.sub(r"://[^/@]*@", "://", value).split("?")[0]
        elif isinstance(value, Path):
            shown[name] = str(value)
        else:
            shown[name] = value
    return shown


def _git_revision() -> str | None:
    try:
        head = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def write_results(folder: Path, run: Run) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "results.jsonl").open("w", encoding="utf-8") as fh:
        for record in run.records:
            fh.write(json.dumps(_public(record), ensure_ascii=False) + "\n")
    (folder / "summary.json").write_text(json.dumps(run.summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _fmt(value: Any, name: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if name.endswith("_ms"):
            return f"{value:,.1f}"
        if name == "llm_correctness_score":
            return f"{value:.2f} / 5"
        return f"{value:.3f}"
    return str(value)


def _delta(change: dict[str, Any], name: str) -> str:
    delta = change.get("delta")
    if delta is None:
        return "" if change.get("old") == change.get("new") else f"was {_fmt(change.get('old'), name)}"
    if delta == 0:
        return "±0"
    worse = (delta > 0) if name in LOWER_IS_BETTER else (delta < 0)
    text = f"{delta:+,.1f}" if name.endswith("_ms") else f"{delta:+.3f}"
    return text + (" (worse)" if worse and name not in ("n",) else "")


_DEFINITIONS = """\
- **retrieval_hit_at_k**: answerable items whose top-k retrieved chunks include one containing a gold evidence quote.
- **mrr**: mean of 1/rank of that first chunk (0 when none is in the top k), answerable items.
- **answer_contains**: answerable items whose answer (citation markers stripped) contains an accepted answer; abstaining scores 0.
- **exact_match**, **token_f1**: SQuAD normalisation (lower case, no punctuation or articles), best over accepted answers, answerable items, abstaining scores 0. Extractive answers quote whole sentences, so exact match is near 0 by design.
- **citation_precision**: cited chunks that contain gold evidence / all cited chunks, pooled over answerable items.
- **citation_recall**: answerable items with a cited chunk containing gold evidence (abstaining scores 0).
- **abstain_precision**: abstentions that were on unanswerable items (n/a when nothing abstained).
- **abstain_recall**: unanswerable items abstained on. **false_abstain_rate**: answerable items abstained on.
- **accuracy**: answerable items with answer_contains, plus unanswerable items abstained on, over all items.
- **latency_p50_ms**, **latency_p95_ms**: wall time of each item's own question (a follow-up's history replay excluded).
- **llm_correctness** (when an LLM is configured): answerable items the judge scores ≥ 4 of 5 against the accepted answers (llama-index `CorrectnessEvaluator`; abstaining scores 1); **llm_correctness_score** is the mean score. **llm_faithfulness**: answers with citations the judge finds supported by the cited passages (`FaithfulnessEvaluator`).
- **ungrounded_share**: answers (abstentions excluded) flagged `grounded=False`; **flagged_share**: those with any sentence in `unsupported_sentences` or ungrounded (LLM mode; extractive answers only quote).
- Matching ignores case, whitespace and typographic quotes."""


def render_report(
    run: Run,
    *,
    baseline: Run | None,
    comparison: dict[str, Any] | None,
    context: dict[str, Any],
    settings_shown: dict[str, Any],
    chart: str | None,
) -> str:
    s = run.summary
    lines = [
        f"# qa eval: {s['mode']} on {Path(context['gold']).name}",
        "",
        f"{s['n']} questions ({s['n_answerable']} answerable, {s['n_unanswerable']} unanswerable), top-k {context['k']}, "
        f"retrieval {context['retrieval']}, run {context['started']} in {context['seconds']:.1f} s.",
        "",
        "## Summary",
        "",
    ]
    header = ["metric", s["mode"]]
    if baseline is not None:
        header.append(baseline.summary["mode"])
    if comparison is not None:
        header.append(f"change vs {Path(comparison['against']).name}")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    names = [m for m in (*METRICS, "accuracy", *EXTRA_SUMMARY, *LLM_METRICS) if m in s or (baseline is not None and m in baseline.summary)]
    for name in names:
        row = [name, _fmt(s.get(name), name)]
        if baseline is not None:
            row.append(_fmt(baseline.summary.get(name), name))
        if comparison is not None:
            row.append(_delta(comparison["metrics"].get(name, {}), name))
        lines.append("| " + " | ".join(row) + " |")
    notes = []
    if s.get("llm_fallbacks"):
        notes.append(f"{s['llm_fallbacks']} answers fell back to extractive because the LLM failed (see `notice` in results.jsonl).")
    if s.get("errors"):
        notes.append(f"{s['errors']} questions were refused by the engine (see `error` in results.jsonl); they count as wrong.")
    if s.get("judge_errors"):
        notes.append(f"{s['judge_errors']} judge calls failed; those items are left out of the LLM-judged metrics.")
    if context.get("unreachable"):
        notes.append(
            f"{context['unreachable']} answerable items have evidence that no indexed chunk contains (it spans a chunk boundary "
            "or differs from the corpus): retrieval and citation metrics cannot credit them."
        )
    if notes:
        lines += [""] + [f"Note: {n}" for n in notes]
    if chart:
        lines += ["", f"![metrics]({chart})"]
    lines += ["", "## How each metric counts", "", _DEFINITIONS]
    if comparison is not None:
        flips = comparison["right_to_wrong"]
        lines += [
            "",
            f"## Against {comparison['against']}",
            "",
            f"{comparison['common_items']} items in both runs: {len(flips)} went from right to wrong, "
            f"{len(comparison['wrong_to_right'])} from wrong to right.",
        ]
        for flip in flips:
            lines += ["", f"- **{flip['id']}** {flip['question']}", f"  - before: {_quote(flip['old_answer'])}", f"  - now: {_quote(flip['new_answer'])}"]
    lines += ["", "## Worst items", ""]
    worst = sorted(run.records, key=_badness)[:WORST_ITEMS]
    worst = [r for r in worst if not r["metrics"]["correct"] or (r["answerable"] and not r["metrics"]["retrieval_hit_at_k"])]
    if not worst:
        lines.append("Every item was answered right.")
    for r in worst:
        m = r["metrics"]
        kind = "answerable" if r["answerable"] else "unanswerable"
        lines += ["", f"### {r['id']} ({kind}, line {r['line']})", "", f"**Q:** {r['question']}"]
        if r["history"]:
            lines.append(f"**Earlier questions:** {' / '.join(r['history'])}")
        lines.append(f"**Answer{' (abstained)' if r['abstained'] else ''}:** {_quote(r['answer'] or r.get('error') or '')}")
        if r["answerable"]:
            lines.append(f"**Accepted:** {' | '.join(r['answers'])}")
            lines.append(f"**Evidence:** {' | '.join(_quote(e) for e in r['evidence'])}")
            rank = m.get("hit_rank")
            lines.append(
                f"**Scores:** evidence {'at rank ' + str(rank) if rank else 'not in the top ' + str(context['k'])}, "
                f"contains {_fmt(m['answer_contains'])}, token F1 {_fmt(m['token_f1'])}, citation recall {_fmt(m['citation_recall'])}"
            )
        for c in r["citations"]:
            from qa.types import describe_location

            where = describe_location(c.get("page"), c.get("section", ""), c["paragraph"], slide=c["source"].lower().endswith(".pptx"))
            label = f"{c['folder']}/{c['source']}" if c.get("folder") else c["source"]
            lines.append(f"- [{c['n']}] {label}, {where} (chars {c['start']}-{c['end']})")
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    for key, value in {**{k: v for k, v in context.items() if k not in ("unreachable",)}, **settings_shown}.items():
        lines.append(f"| {key} | {_cell(value)} |")
    return "\n".join(lines) + "\n"


def _badness(record: dict[str, Any]) -> tuple[Any, ...]:
    m = record["metrics"]
    return (m["correct"], m.get("retrieval_hit_at_k") or 0, m.get("token_f1") or 0, record["line"])


def _quote(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return "“" + (text if len(text) <= limit else text[: limit - 1] + "…") + "”"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def draw_chart(path: Path, runs: Sequence[tuple[str, dict[str, Any]]]) -> bool:
    """A horizontal bar chart of the [0, 1] metrics, one bar per run; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("no chart: matplotlib is missing (install the `eval` extra)")
        return False
    names = [m for m in (*RATES[:10], "false_abstain_rate", *RATES[10:]) if any(s.get(m) is not None for _, s in runs)]
    height = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) * max(len(runs), 1) ** 0.5 + 1.5))
    for i, (label, summary) in enumerate(runs):
        ys = [j + (i - (len(runs) - 1) / 2) * height for j in range(len(names))]
        values = [summary.get(m) or 0.0 for m in names]
        bars = ax.barh(ys, values, height=height, label=label)
        for bar, m in zip(bars, names):
            shown = summary.get(m)
            ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, "n/a" if shown is None else f"{shown:.2f}", va="center", fontsize=7)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([f"{m} (lower is better)" if m in LOWER_IS_BETTER else m for m in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("share of items")
    first = runs[0][1]
    ax.set_title(f"qa eval: {first.get('n')} questions; p50 {first.get('latency_p50_ms')} ms", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def unreachable_evidence(engine: Engine, items: Sequence[GoldItem]) -> int:
    """Answerable items whose evidence no indexed chunk contains: retrieval metrics can't credit them."""
    from qa.metrics import contains_any
    from qa.text import normalize

    chunks = [c.text for c in engine.corpus.chunks]
    texts = [normalize(t) for t in chunks]

    def found(item: GoldItem) -> bool:
        if any(normalize(e) in t for e in item.evidence for t in texts):
            return True
        # the slower matching the metrics also use: Markdown stripped, table rows as readers quote them
        return any(contains_any(t, item.evidence) for t in chunks)

    return sum(1 for item in items if item.answerable and not found(item))


# -- the command -------------------------------------------------------------------------------


def _default_gold() -> Path:
    if _DEFAULT_GOLD.is_file() or not (PROJECT_ROOT / _DEFAULT_GOLD).is_file():
        return _DEFAULT_GOLD
    return PROJECT_ROOT / _DEFAULT_GOLD


def _print_summary(run: Run, baseline: Run | None, comparison: dict[str, Any] | None) -> None:
    names = [m for m in (*METRICS, "accuracy", *EXTRA_SUMMARY, *LLM_METRICS) if m in run.summary]
    width = max(len(n) for n in names)
    head = f"{'metric':<{width}}  {run.summary['mode']:>14}"
    if baseline is not None:
        head += f"  {baseline.summary['mode']:>19}"
    if comparison is not None:
        head += "  change"
    click.echo(head)
    for name in names:
        line = f"{name:<{width}}  {_fmt(run.summary.get(name), name):>14}"
        if baseline is not None:
            line += f"  {_fmt(baseline.summary.get(name), name):>19}"
        if comparison is not None:
            line += f"  {_delta(comparison['metrics'].get(name, {}), name)}"
        click.echo(line)
    if comparison is not None:
        flips = comparison["right_to_wrong"]
        click.echo(
            f"\nAgainst {comparison['against']} ({comparison['common_items']} items in both, {len(comparison['wrong_to_right'])} "
            f"went from wrong to right): {len(flips)} item(s) went from right to wrong{':' if flips else '.'}"
        )
        for flip in flips:
            click.echo(f"  {flip['id']}: {flip['question']}")


@click.command("eval")
@click.option("--gold", type=click.Path(path_type=Path), default=None, help="Gold set, one JSON object a line [default: eval/gold.jsonl].")
@click.option("--corpus", type=click.Path(path_type=Path), default=None, help="Index this folder into its own collection and evaluate on it.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder [default: eval/runs/<timestamp>-<mode>].")
@click.option("-k", "--k", "k", type=click.IntRange(min=1), default=None, help="Chunks retrieved per question [default: QA_TOP_K].")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N items.")
@click.option("--split", type=click.Choice(SPLITS), default=None, help="Only the dev (fitting) or test (reporting) half named in split.json beside the gold file.")
@click.option("--retrieval", type=click.Choice(RETRIEVAL_MODES), default="hybrid", show_default=True, help="Retrieval mode the engine uses.")
@click.option("--baseline", is_flag=True, help="Evaluate the dense-only top-1-sentence baseline instead of the engine.")
@click.option("--with-baseline", is_flag=True, help="Evaluate the engine and the baseline; report both side by side.")
@click.option("--offline", is_flag=True, help="Ignore a configured LLM: extractive answers, no judge.")
@click.option("--judge/--no-judge", default=None, help="LLM-judged correctness and faithfulness [default: on when an LLM is configured].")
@click.option("--compare", "compare_dir", type=click.Path(path_type=Path), default=None, help="Show each metric's change against this earlier run folder.")
@click.option("--min", "floors", multiple=True, metavar="METRIC=VALUE", help="Fail (exit 1) when METRIC is below VALUE; repeatable.")
@click.option("--max", "ceilings", multiple=True, metavar="METRIC=VALUE", help="Fail (exit 1) when METRIC is above VALUE (rates where lower is better); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json to stdout.")
@click.option("--progress/--no-progress", default=None, help="Force the progress bar on or off [default: on a terminal, for 20+ items].")
@friendly_errors
def eval_command(
    gold: Path | None,
    corpus: Path | None,
    out: Path | None,
    k: int | None,
    limit: int | None,
    split: str | None,
    retrieval: str,
    baseline: bool,
    with_baseline: bool,
    offline: bool,
    judge: bool | None,
    compare_dir: Path | None,
    floors: tuple[str, ...],
    ceilings: tuple[str, ...],
    as_json: bool,
    progress: bool | None,
) -> None:
    """Score the engine against a gold Q&A set; write results, report and chart; compare runs; gate CI.

    \b
    qa eval                                   # eval/gold.jsonl against the seed index
    qa eval --gold G.jsonl --corpus DOCS/     # a benchmark with its own documents
    qa eval --with-baseline --compare eval/runs/OLD --min answer_contains=0.9 --max false_abstain_rate=0.1
    """
    mins, maxes = parse_bounds(floors, "--min"), parse_bounds(ceilings, "--max")
    if baseline and with_baseline:
        raise click.UsageError("Use --baseline or --with-baseline, not both.")
    gold_path = gold if gold is not None else _default_gold()
    follow_up: dict[str, bool] | None = None
    if is_conversations(gold_path):
        items, follow_up = load_conversations(gold_path)
    else:
        items = load_gold(gold_path)
    if split is not None:
        items = select_split(items, gold_path, split)
    if limit:
        items = items[:limit]
    settings = _settings()
    if offline:
        settings = settings.model_copy(update={"llm_base_url": None, "openai_api_key": None})
    if corpus is not None:
        settings = settings.model_copy(update={"collection": corpus_collection(corpus)})
    k = k or settings.top_k
    show = progress if progress is not None else (len(items) >= 20 and sys.stderr.isatty())

    _check_store_not_locked(settings)
    engine = open_engine(settings, retrieval=retrieval)
    started = datetime.now().isoformat(timespec="seconds")
    t0 = time.perf_counter()
    note = prepare_index(engine, corpus, progress=progress)
    if note:
        click.echo(note, err=True)
    systems: list[tuple[Ask, str]] = []
    base = DenseBaseline(engine)
    if not baseline:
        systems.append((engine.ask, engine.mode))
    if baseline or with_baseline:
        systems.append((base.ask, base.mode))
    runs = [run_items(ask, items, k=k, mode=mode, progress=show) for ask, mode in systems]
    use_judge = settings.llm_enabled if judge is None else judge
    if use_judge:
        if not settings.llm_enabled:
            raise InputError("--judge needs an LLM: set QA_LLM_BASE_URL (or OPENAI_API_KEY), or drop --judge.")
        for one in runs:
            judge_run(one, settings, progress=show)
    for one in runs:
        add_extra_summary(one, follow_up)
    main_run = runs[0]
    other = runs[1] if len(runs) > 1 else None
    seconds = time.perf_counter() - t0

    folder = run_folder(out, main_run.summary["mode"] + ("+baseline" if other else ""))
    comparison, old_summary = None, None
    if compare_dir is not None:
        old_summary = read_run(compare_dir)[0]
        comparison = compare_runs(compare_dir, main_run.summary, main_run.records)
    context: dict[str, Any] = {
        "gold": str(gold_path),
        "corpus": str(corpus) if corpus is not None else str(settings.seeds_dir) + " (seed index)",
        "k": k,
        "retrieval": retrieval,
        "split": split,
        "limit": limit,
        "started": started,
        "seconds": round(seconds, 1),
        "qa_version": _version(),
        "git": _git_revision(),
        "judge": settings.llm_model if use_judge else "off",
        "unreachable": unreachable_evidence(engine, items),
    }
    main_run.summary["run"] = {**{k2: v for k2, v in context.items()}, "folder": str(folder)}
    if other is not None:
        write_results(folder / "baseline", other)
        main_run.summary["baseline"] = {key: v for key, v in other.summary.items()}
    if comparison is not None:
        main_run.summary["compare"] = comparison
    failures = check_gate(main_run.summary, floors=mins, ceilings=maxes)
    if mins or maxes:
        main_run.summary["gate"] = {"min": mins, "max": maxes, "failed": failures}
    write_results(folder, main_run)
    chart_runs = [(main_run.summary["mode"], main_run.summary)]
    if other is not None:
        chart_runs.append((other.summary["mode"], other.summary))
    if comparison is not None and old_summary is not None:
        chart_runs.append((f"before ({Path(comparison['against']).name})", old_summary))
    chart = "metrics.png" if draw_chart(folder / "metrics.png", chart_runs) else None
    report = render_report(main_run, baseline=other, comparison=comparison, context=context, settings_shown=safe_settings(settings), chart=chart)
    (folder / "report.md").write_text(report, encoding="utf-8")

    if as_json:
        click.echo(json.dumps(main_run.summary, indent=2, ensure_ascii=False))
    else:
        _print_summary(main_run, other, comparison)
        click.echo(f"\nWrote {folder}/ (results.jsonl, summary.json, report.md{', metrics.png' if chart else ''}).")
    if failures:
        raise QAError("Quality gate failed: " + "; ".join(failures) + f". See {folder / 'report.md'}.")
    if mins or maxes:
        click.echo(f"Quality gate passed ({len(mins) + len(maxes)} bounds).", err=True)



def _version() -> str:
    from qa import __version__

    return __version__
