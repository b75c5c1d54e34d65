"""`qa eval`: run a gold set through the engine, score it (qa/metrics.py), write a report, compare runs, gate CI."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from qa.metrics import LOWER_IS_BETTER, METRICS, NUMERIC, GoldItem, Scored, check_gate, load_gold, score_item, summarize

if TYPE_CHECKING:
    from qa.engine import Engine
    from qa.types import Answer


def baseline_answer(engine: Engine, question: str, *, k: int) -> Answer:
    """The dense-only top-1-sentence baseline: quote the single nearest sentence, never abstain."""
    from qa.types import Answer, Citation

    retriever = engine.retriever
    corpus = retriever.corpus
    retrieval = retriever.retrieve(question, k, mode="dense")
    if not retrieval.sentences:
        return Answer(text="", abstained=True, mode="baseline", question=question)
    (ci, si), score = max(retrieval.sentences.items(), key=lambda kv: kv[1].dense)
    chunk = corpus.chunks[ci]
    sentence = chunk.sentences[si]
    quote = chunk.text[sentence.start - chunk.start : sentence.end - chunk.start]
    citation = Citation(1, chunk.source, chunk.title, chunk.paragraph, sentence.start, sentence.end, quote,
                        round(score.dense, 4), chunk.id, chunk.text)
    answer = Answer(text=f"{quote} [1]", citations=[citation], mode="baseline", question=question)
    answer.retrieved = list(retrieval.chunks)
    return answer


class Judge:
    """LLM-judged metrics through llama-index's CorrectnessEvaluator and FaithfulnessEvaluator."""

    def __init__(self, engine: Engine) -> None:
        from llama_index.core.evaluation import CorrectnessEvaluator, FaithfulnessEvaluator

        from qa.answer.llm import make_llm

        llm = make_llm(engine.settings)
        self.correctness = CorrectnessEvaluator(llm=llm)
        self.faithfulness = FaithfulnessEvaluator(llm=llm)

    def score(self, item: GoldItem, answer: Answer) -> dict[str, Any]:
        from qa.metrics import strip_markers

        if not item.answerable or answer.abstained:
            return {}
        response = strip_markers(answer.text)
        out: dict[str, Any] = {}
        try:
            graded = self.correctness.evaluate(query=item.question, response=response, reference=item.answers[0])
            out["llm_correctness"] = float(bool(graded.passing))
            out["llm_correctness_score"] = graded.score
            contexts = [c.passage for c in answer.citations if c.passage]
            if contexts:
                faithful = self.faithfulness.evaluate(response=response, contexts=contexts)
                out["llm_faithfulness"] = float(bool(faithful.passing))
        except Exception as exc:  # a judge failure must not sink the string metrics
            out["judge_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        return out


def run_items(engine: Engine, items: list[GoldItem], *, k: int, baseline: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Ask every item (replaying its history first) and score it; with an LLM configured, judge it too."""
    from tqdm import tqdm

    judge = Judge(engine) if engine.settings.llm_enabled and not baseline else None

    rows = []
    for item in tqdm(items, desc="Evaluating", unit="q", disable=not progress or len(items) < 20, file=None):
        history: list[dict[str, str]] = []
        if not baseline:
            for earlier in item.history:
                reply = engine.ask(earlier, history=history, k=k)
                history += [{"role": "user", "content": earlier}, {"role": "assistant", "content": reply.text}]
        started = time.perf_counter()
        answer = baseline_answer(engine, item.question, k=k) if baseline else engine.ask(item.question, history=history, k=k)
        latency = (time.perf_counter() - started) * 1000
        scored = Scored(
            text=answer.text,
            abstained=answer.abstained,
            cited=[(c.chunk_id, c.passage) for c in answer.citations],
            retrieved=[c.text for c in answer.retrieved],
            latency_ms=latency,
        )
        rows.append(
            {
                "id": item.id,
                "question": item.question,
                "history": list(item.history),
                "answerable": item.answerable,
                "answers": list(item.answers),
                "evidence": list(item.evidence),
                "answer": answer.text,
                "abstained": answer.abstained,
                "mode": answer.mode,
                "citations": [{k_: v for k_, v in c.to_dict().items() if k_ != "passage"} for c in answer.citations],
                "timings": answer.timings,
                "metrics": {**score_item(item, scored, k=k), **(judge.score(item, answer) if judge else {})},
            }
        )
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return "—" if value is None else str(value)


def write_run(out: Path, rows: list[dict[str, Any]], summary: dict[str, Any], *, settings: dict[str, Any],
              baseline: dict[str, Any] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if baseline is not None:
        (out / "baseline-summary.json").write_text(json.dumps(baseline, indent=2) + "\n", encoding="utf-8")
    _chart(out / "metrics.png", summary, baseline)
    (out / "report.md").write_text(_report(rows, summary, settings, baseline), encoding="utf-8")


def _chart(path: Path, summary: dict[str, Any], baseline: dict[str, Any] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m for m in METRICS if m not in ("n", "mode", "latency_p50_ms", "latency_p95_ms")]
    ours = [summary.get(m) or 0.0 for m in names]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.4 if baseline else 0.7
    xs = range(len(names))
    ax.bar([x - (width / 2 if baseline else 0) for x in xs], ours, width, label=f"qa ({summary.get('mode')})", color="#f97316")
    if baseline:
        ax.bar([x + width / 2 for x in xs], [baseline.get(m) or 0.0 for m in names], width, label="dense top-1 baseline", color="#94a3b8")
    ax.set_xticks(list(xs), names, rotation=35, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"qa eval: n={summary.get('n')}, p50 {summary.get('latency_p50_ms')} ms")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _report(rows: list[dict[str, Any]], summary: dict[str, Any], settings: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    lines = ["# qa eval report", "", f"Run at {settings['time']} on `{settings['gold']}` ({summary['n']} items, mode {summary['mode']}).", ""]
    lines += ["| metric | qa |" + (" baseline |" if baseline else ""), "|---|---|" + ("---|" if baseline else "")]
    for name in (*METRICS, "accuracy"):
        if name in ("n", "mode"):
            continue
        lines.append(f"| {name} | {_fmt(summary.get(name))} |" + (f" {_fmt(baseline.get(name))} |" if baseline else ""))
    lines += ["", "![metrics](metrics.png)", "", "## Worst items", ""]
    wrong = [r for r in rows if not r["metrics"]["correct"]]
    wrong.sort(key=lambda r: (r["answerable"], r["metrics"].get("token_f1") or 0))
    for row in wrong[:15]:
        lines.append(f"- **{row['id']}** {row['question']}")
        lines.append(f"  - answer: {row['answer'][:300]}")
        lines.append(f"  - accepted: {row['answers'] or '(unanswerable)'}; evidence: {[e[:160] for e in row['evidence']]}")
    lines += ["", "## Settings", ""]
    lines += [f"- `{k}`: {v}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def compare(current: dict[str, Any], rows: list[dict[str, Any]], earlier_dir: Path) -> str:
    """Each metric's change against an earlier run, and the items that went from right to wrong."""
    from qa.errors import InputError

    try:
        before = json.loads((earlier_dir / "summary.json").read_text(encoding="utf-8"))
        before_rows = {json.loads(l)["id"]: json.loads(l) for l in (earlier_dir / "results.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()}
    except (OSError, ValueError) as exc:
        raise InputError(f"Cannot read the run in {earlier_dir} ({exc}); pass a folder made by `qa eval`.") from None
    lines = [f"{'metric':<22}{'before':>10}{'now':>10}{'change':>10}"]
    for name in NUMERIC:
        a, b = before.get(name), current.get(name)
        if a is None and b is None:
            continue
        change = "" if a is None or b is None else f"{b - a:+.3f}"
        worse = change and ((b - a) > 0) == (name in LOWER_IS_BETTER) and abs(b - a) > 1e-9
        lines.append(f"{name:<22}{_fmt(a):>10}{_fmt(b):>10}{change:>10}" + ("  worse" if worse else ""))
    flipped = [r for r in rows if not r["metrics"]["correct"] and before_rows.get(r["id"], {}).get("metrics", {}).get("correct")]
    lines.append("")
    lines.append(f"{len(flipped)} item(s) went from right to wrong" + (":" if flipped else "."))
    lines += [f"  {r['id']}: {r['question']}" for r in flipped]
    return "\n".join(lines)


def _bounds(values: tuple[str, ...], flag: str) -> dict[str, float]:
    out = {}
    for value in values:
        name, _, number = value.partition("=")
        if name not in NUMERIC or not number:
            raise click.BadParameter(f"{value!r}: use METRIC=VALUE with a metric among {', '.join(NUMERIC)}", param_hint=flag)
        try:
            out[name] = float(number)
        except ValueError:
            raise click.BadParameter(f"{value!r}: {number!r} is not a number", param_hint=flag) from None
    return out


@click.command("eval")
@click.option("--gold", type=click.Path(path_type=Path), default=Path("eval/gold.jsonl"), show_default=True, help="Gold Q&A set (JSONL).")
@click.option("--corpus", type=click.Path(path_type=Path), default=None, help="Documents of this gold set, indexed into their own collection.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder (default eval/runs/<time>-<mode>).")
@click.option("--k", "k", type=int, default=5, show_default=True, help="Passages retrieved per question.")
@click.option("--limit", type=int, default=None, help="Only the first N items.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json to stdout.")
@click.option("--baseline", is_flag=True, help="Score the dense-only top-1-sentence baseline instead of the engine.")
@click.option("--with-baseline", is_flag=True, help="Also run the baseline and show both side by side.")
@click.option("--compare", "compare_dir", type=click.Path(path_type=Path), default=None, help="An earlier run folder to compare with.")
@click.option("--min", "floors", multiple=True, help="METRIC=VALUE: fail (exit 1) below this floor. Repeatable.")
@click.option("--max", "ceilings", multiple=True, help="METRIC=VALUE: fail (exit 1) above this ceiling. Repeatable.")
def eval_command(gold: Path, corpus: Path | None, out: Path | None, k: int, limit: int | None, as_json: bool,
                 baseline: bool, with_baseline: bool, compare_dir: Path | None, floors: tuple[str, ...], ceilings: tuple[str, ...]) -> None:
    """Score the engine against a gold Q&A set; write results, summary, report and chart."""
    from qa.cli import friendly_errors

    friendly_errors(_eval)(gold, corpus, out, k, limit, as_json, baseline, with_baseline, compare_dir,
                           _bounds(floors, "--min"), _bounds(ceilings, "--max"))


def _eval(gold: Path, corpus: Path | None, out: Path | None, k: int, limit: int | None, as_json: bool, baseline: bool,
          with_baseline: bool, compare_dir: Path | None, floors: dict[str, float], ceilings: dict[str, float]) -> None:
    from qa.engine import Engine
    from qa.settings import Settings

    items = load_gold(gold)[:limit] if limit else load_gold(gold)
    settings = Settings()
    if corpus is not None:
        key = hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:10]
        settings = settings.model_copy(update={"collection": f"eval-{key}"})
    engine = Engine(settings)
    folder = corpus if corpus is not None else settings.seeds_dir
    engine.ingest(folder, progress=False)
    rows = run_items(engine, items, k=k, baseline=baseline)
    mode = "baseline" if baseline else engine.mode
    summary = summarize(rows, mode=mode)
    base_summary = summarize(run_items(engine, items, k=k, baseline=True), mode="baseline") if with_baseline and not baseline else None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = out or Path("eval/runs") / f"{stamp}-{mode.replace(':', '_').replace('/', '_')}"
    used = {
        "time": stamp, "gold": str(gold), "corpus": str(folder), "k": k, "limit": limit, "mode": mode,
        "collection": settings.collection, "store": settings.describe_store(), "embed_model": settings.embed_model,
        "chunk_tokens": settings.chunk_tokens, "answer_sentences": settings.answer_sentences,
    }
    write_run(out, rows, summary, settings=used, baseline=base_summary)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        for name in (*METRICS, "accuracy"):
            extra = f"   (baseline {_fmt(base_summary.get(name))})" if base_summary else ""
            click.echo(f"{name:<22}{_fmt(summary.get(name)):>10}{extra}")
        click.echo(f"\nRun written to {out}/ (report.md, metrics.png, results.jsonl, summary.json)")
    if compare_dir is not None:
        click.echo(compare(summary, rows, compare_dir), err=as_json)
    failures = check_gate(summary, floors=floors, ceilings=ceilings)
    if failures:
        raise click.ClickException("Quality gate failed: " + "; ".join(failures) + ".")
