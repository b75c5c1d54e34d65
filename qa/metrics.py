"""The gold format and how `qa eval` scores it: per-item metrics and their summary, over plain data.

How items enter each summary metric (answerable = `"answerable": true` in the gold file):

| metric | items | per item |
|---|---|---|
| retrieval_hit_at_k | answerable | 1 if a top-k retrieved chunk contains a gold evidence quote |
| mrr | answerable | 1 / rank of the first such chunk, 0 if none in the top k |
| answer_contains | answerable | 1 if the answer (markers stripped) contains an accepted answer; an abstention scores 0 |
| exact_match, token_f1 | answerable | SQuAD-normalised, best over accepted answers; an abstention scores 0 |
| citation_precision | answerable | cited chunks containing gold evidence / cited chunks, pooled over all items |
| citation_recall | answerable | 1 if some cited chunk contains gold evidence; an abstention scores 0 |
| abstain_precision | abstained | share of abstentions on unanswerable items (null when nothing abstained) |
| abstain_recall | unanswerable | share abstained (null when the set has no unanswerable item) |
| false_abstain_rate | answerable | share abstained |
| accuracy | all | answerable: answer_contains; unanswerable: abstained |
| latency_p50_ms, latency_p95_ms | all | wall time of the item's own question (history replay excluded) |

Matching ignores case, whitespace and typographic quotes (`qa.text.normalize`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qa.errors import InputError
from qa.text import normalize, squad_normalize, strip_markdown
from qa.types import strip_markers as strip_markers  # re-exported (qa.eval imports it from here): a marker `[1]` must not match an answer "1"

# Names scripts read from summary.json; fixed.
METRICS = (
    "retrieval_hit_at_k",
    "mrr",
    "answer_contains",
    "exact_match",
    "token_f1",
    "citation_precision",
    "citation_recall",
    "abstain_precision",
    "abstain_recall",
    "false_abstain_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "n",
    "mode",
)
EXTRA_METRICS = ("accuracy",)
LLM_METRICS = ("llm_correctness", "llm_correctness_score", "llm_faithfulness")
LOWER_IS_BETTER = frozenset({"false_abstain_rate", "latency_p50_ms", "latency_p95_ms"})
# Shares in [0, 1] where higher is better: what the chart plots.
RATES = tuple(
    m for m in METRICS + EXTRA_METRICS + LLM_METRICS
    if m not in LOWER_IS_BETTER and m not in ("n", "mode", "llm_correctness_score")
)
NUMERIC = tuple(m for m in (*METRICS, *EXTRA_METRICS, *LLM_METRICS) if m != "mode")



# -- the gold format --------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldItem:
    """One question of a gold set; `history` holds the earlier user questions of its conversation."""

    id: str
    question: str
    answers: tuple[str, ...]
    answerable: bool
    evidence: tuple[str, ...] = ()
    history: tuple[str, ...] = ()
    line: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["answers"], data["evidence"], data["history"] = list(self.answers), list(self.evidence), list(self.history)
        return data


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def parse_gold_line(raw: str, line: int) -> GoldItem:
    """One gold line as a `GoldItem`; the error message says what is wrong, without the file and line."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    except RecursionError as exc:
        raise ValueError("nested too deeply to read (a gold item is one flat JSON object)") from exc
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    missing = [name for name in ("question", "answers", "answerable") if name not in data]
    if data.get("answerable") is True and "evidence" not in data:
        missing.append("evidence")
    if missing:
        raise ValueError("missing field" + ("s " if len(missing) > 1 else " ") + ", ".join(f"`{m}`" for m in missing))
    question, answerable = data["question"], data["answerable"]
    answers, evidence, history = data["answers"], data.get("evidence", []), data.get("history", [])
    if not isinstance(question, str) or not question.strip():
        raise ValueError("`question` must be non-empty text")
    if not isinstance(answerable, bool):
        raise ValueError("`answerable` must be true or false")
    for name, value in (("answers", answers), ("evidence", evidence), ("history", history)):
        if not _strings(value):
            raise ValueError(f"`{name}` must be a list of strings")
    if answerable and not [a for a in answers if a.strip()]:
        raise ValueError("an answerable item needs at least one accepted answer in `answers`")
    if answerable and not [e for e in evidence if e.strip()]:
        raise ValueError("an answerable item needs at least one quote in `evidence`")
    item_id = data.get("id", f"line-{line}")
    if not isinstance(item_id, (str, int)):
        raise ValueError("`id` must be text")
    return GoldItem(
        id=str(item_id),
        question=question,
        answers=tuple(a for a in answers if a.strip()),
        answerable=answerable,
        evidence=tuple(e for e in evidence if e.strip()),
        history=tuple(h for h in history if h.strip()),
        line=line,
    )


def load_gold(path: Path) -> list[GoldItem]:
    """Read a gold JSONL file; the first bad line raises InputError naming the file and line number."""
    if not path.is_file():
        raise InputError(f"No gold file at {path}: pass --gold PATH to a JSONL file of questions.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read {path}: {exc}.") from exc
    items: list[GoldItem] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = parse_gold_line(raw, number)
        except ValueError as exc:
            raise InputError(f"{path} line {number}: {exc}. Fix that line and run again.") from exc
        if item.id in seen:
            raise InputError(f"{path} line {number}: id {item.id!r} repeats line {seen[item.id]}; ids must be unique.")
        seen[item.id] = number
        items.append(item)
    if not items:
        raise InputError(f"{path} has no questions: add one JSON object a line.")
    return items


# -- string matching --------------------------------------------------------------------------


def contains_any(text: str, needles: Iterable[str]) -> bool:
    """Whether `text` contains a needle, as written or with inline Markdown stripped (`**48 hours**` has "48 hours").

    A needle that is a Markdown table row (`| Oslo | 17 |`) matches text holding its cells in order:
    readers quote a row as "Office: Oslo; Head count: 17", never with its pipes.
    """
    haystack = normalize(text)
    plain = normalize(strip_markdown(text))
    return any(n and (normalize(n) in haystack or normalize(strip_markdown(n)) in plain or _row_in(n, plain)) for n in needles)


def _row_in(needle: str, plain: str) -> bool:
    if needle.count("|") < 2:
        return False
    cells = [normalize(strip_markdown(c)) for c in needle.strip().strip("|").split("|")]
    cells = [c for c in cells if c and not set(c) <= set("-: ")]
    if len(cells) < 2:
        return False
    at = 0
    for cell in cells:
        found = plain.find(cell, at)
        if found < 0:
            return False
        at = found + len(cell)
    return True


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    pred = squad_normalize(prediction)
    return float(any(pred == squad_normalize(a) for a in answers)) if answers else 0.0


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD token F1, best over the accepted answers."""
    return max((_f1(prediction, a) for a in answers), default=0.0)


def _f1(prediction: str, gold: str) -> float:
    pred, ref = squad_normalize(prediction).split(), squad_normalize(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


# -- scoring ----------------------------------------------------------------------------------


@dataclass
class Scored:
    """An answer reduced to what scoring needs (built from an `Answer` or a results.jsonl line)."""

    text: str
    abstained: bool
    cited: list[tuple[str, str]] = field(default_factory=list)  # (chunk_id, passage) per citation
    retrieved: list[str] = field(default_factory=list)  # chunk texts, best first
    latency_ms: float = 0.0


def score_item(item: GoldItem, answer: Scored, *, k: int) -> dict[str, Any]:
    """Per-item metrics; a metric that does not apply to the item is None (see the module docstring)."""
    prediction = "" if answer.abstained else strip_markers(answer.text)
    out: dict[str, Any] = {"abstained": answer.abstained, "latency_ms": round(answer.latency_ms, 2)}
    passages: dict[str, str] = {}
    for chunk_id, passage in answer.cited:
        passages.setdefault(chunk_id or passage, passage)
    if item.answerable:
        rank = next((r for r, text in enumerate(answer.retrieved[:k], start=1) if contains_any(text, item.evidence)), None)
        supported = sum(contains_any(p, item.evidence) for p in passages.values())
        out.update(
            hit_rank=rank,
            retrieval_hit_at_k=float(rank is not None),
            mrr=1.0 / rank if rank else 0.0,
            answer_contains=float(bool(prediction) and contains_any(prediction, item.answers)),
            exact_match=exact_match(prediction, item.answers) if prediction else 0.0,
            token_f1=round(token_f1(prediction, item.answers), 4) if prediction else 0.0,
            cited_chunks=len(passages),
            cited_with_evidence=supported,
            citation_precision=round(supported / len(passages), 4) if passages else None,
            citation_recall=float(supported > 0),
        )
        out["correct"] = bool(out["answer_contains"])
    else:
        out.update(
            hit_rank=None, retrieval_hit_at_k=None, mrr=None, answer_contains=None, exact_match=None, token_f1=None,
            cited_chunks=len(passages), cited_with_evidence=0, citation_precision=None, citation_recall=None,
        )
        out["correct"] = answer.abstained
    return out


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(sum(kept) / len(kept), 4) if kept else None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (NumPy's default), without NumPy."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo), 2)


def summarize(rows: Sequence[Mapping[str, Any]], *, mode: str) -> dict[str, Any]:
    """Summary metrics from per-item rows (`{"answerable": bool, "metrics": {...}}`)."""
    answerable = [r["metrics"] for r in rows if r["answerable"]]
    unanswerable = [r["metrics"] for r in rows if not r["answerable"]]
    every = [r["metrics"] for r in rows]
    abstained = [m for m in every if m["abstained"]]
    true_abstentions = sum(1 for m in unanswerable if m["abstained"])
    cited = sum(m["cited_chunks"] for m in answerable)
    latencies = [m["latency_ms"] for m in every]
    summary: dict[str, Any] = {
        "retrieval_hit_at_k": _mean(m["retrieval_hit_at_k"] for m in answerable),
        "mrr": _mean(m["mrr"] for m in answerable),
        "answer_contains": _mean(m["answer_contains"] for m in answerable),
        "exact_match": _mean(m["exact_match"] for m in answerable),
        "token_f1": _mean(m["token_f1"] for m in answerable),
        "citation_precision": _share(sum(m["cited_with_evidence"] for m in answerable), cited),
        "citation_recall": _mean(m["citation_recall"] for m in answerable),
        "abstain_precision": _share(true_abstentions, len(abstained)),
        "abstain_recall": _share(true_abstentions, len(unanswerable)),
        "false_abstain_rate": _share(sum(1 for m in answerable if m["abstained"]), len(answerable)),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "n": len(rows),
        "mode": mode,
        "accuracy": _share(sum(1 for m in every if m["correct"]), len(every)),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
    }
    judged = [m for m in every if m.get("llm_correctness") is not None]
    faithful = [m for m in every if m.get("llm_faithfulness") is not None]
    if judged or faithful or any("judge_error" in m for m in every):
        summary["llm_correctness"] = _mean(m["llm_correctness"] for m in judged)
        summary["llm_correctness_score"] = _mean(m.get("llm_correctness_score") for m in judged)
        summary["llm_faithfulness"] = _mean(m["llm_faithfulness"] for m in faithful)
        summary["judge_errors"] = sum(1 for m in every if "judge_error" in m)
    return summary


def check_gate(summary: Mapping[str, Any], *, floors: Mapping[str, float], ceilings: Mapping[str, float]) -> list[str]:
    """What fell outside its bound, one phrase each (`answer_contains 0.81 < 0.9`); empty when all hold."""
    failures: list[str] = []
    for name, bound in floors.items():
        value = summary.get(name)
        if value is None:
            failures.append(f"{name} not measured (floor {bound:g})")
        elif value < bound:
            failures.append(f"{name} {value:g} < {bound:g}")
    for name, bound in ceilings.items():
        value = summary.get(name)
        if value is None:
            failures.append(f"{name} not measured (ceiling {bound:g})")
        elif value > bound:
            failures.append(f"{name} {value:g} > {bound:g}")
    return failures
