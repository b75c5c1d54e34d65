"""A run folder: results.jsonl, summary.json, the Markdown report and the metrics chart."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.eval.run import EXTRA_SUMMARY, Run
from qa.metrics import LLM_METRICS, LOWER_IS_BETTER, METRICS, RATES
from qa.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from qa.settings import Settings

log = logging.getLogger(__name__)

WORST_ITEMS = 10
_DEFAULT_RUNS = Path("eval/runs")


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
