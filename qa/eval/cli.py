"""`qa eval`: the command. Run a gold set through the engine, score it, write the run folder, compare, gate CI."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from qa.errors import InputError, QAError, friendly_errors
from qa.answer.baseline import DenseBaseline
from qa.eval.compare import compare_runs, read_run
from qa.eval.judge import judge_run
from qa.eval.report import (
    _delta,
    _fmt,
    _git_revision,
    draw_chart,
    render_report,
    run_folder,
    safe_settings,
    write_results,
)
from qa.eval.run import (
    EXTRA_SUMMARY,
    RETRIEVAL_MODES,
    SPLITS,
    Ask,
    Run,
    add_extra_summary,
    corpus_collection,
    is_conversations,
    load_conversations,
    open_engine,
    prepare_index,
    run_items,
    select_split,
    unreachable_evidence,
)
from qa.metrics import LLM_METRICS, METRICS, NUMERIC, check_gate, load_gold
from qa.settings import PROJECT_ROOT, load_settings

_DEFAULT_GOLD = Path("eval/gold.jsonl")


def parse_bounds(values: Sequence[str], option: str) -> dict[str, float]:
    bounds: dict[str, float] = {}
    for value in values:
        name, sep, number = value.partition("=")
        name = name.strip()
        if not sep or name not in NUMERIC:
            raise click.BadParameter(f"{value!r}: expected METRIC=VALUE with METRIC one of {', '.join(NUMERIC)}.", param_hint=option)
        try:
            bounds[name] = float(number)
        except ValueError as exc:
            raise click.BadParameter(f"{value!r}: {number!r} is not a number.", param_hint=option) from exc
    return bounds


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
@click.option("--gate", "gate_name", default=None, metavar="NAME", help="The floors of gate NAME in eval/floors.json (what `make test` gates on); sets --gold and --split unless given.")
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
    gate_name: str | None,
    as_json: bool,
    progress: bool | None,
) -> None:
    """Score the engine against a gold Q&A set; write results, report and chart; compare runs; gate CI.

    \b
    qa eval                                   # eval/gold.jsonl against the seed index
    qa eval --gold G.jsonl --corpus DOCS/     # a benchmark with its own documents
    qa eval --with-baseline --compare eval/runs/OLD --min answer_contains=0.9 --max false_abstain_rate=0.1
    qa eval --offline --gate gold-test        # the floors `make test` gates on (eval/floors.json)
    """
    mins, maxes = parse_bounds(floors, "--min"), parse_bounds(ceilings, "--max")
    if baseline and with_baseline:
        raise click.UsageError("Use --baseline or --with-baseline, not both.")
    if gate_name is not None:
        from qa.eval.floors import load_gate

        gate = load_gate(gate_name)
        gold = gold if gold is not None else gate.gold
        split = split if split is not None else gate.split
        mins, maxes = {**gate.floors, **mins}, {**gate.ceilings, **maxes}  # an explicit --min/--max wins
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
    settings = load_settings()
    if offline:
        settings = settings.model_copy(update={"llm_base_url": None, "openai_api_key": None})
    if corpus is not None:
        settings = settings.model_copy(update={"collection": corpus_collection(corpus)})
    k = k or settings.top_k
    show = progress if progress is not None else (len(items) >= 20 and sys.stderr.isatty())

    engine = open_engine(settings, retrieval=retrieval)
    started = datetime.now().isoformat(timespec="seconds")
    t0 = time.perf_counter()
    note = prepare_index(engine, corpus, progress=progress)
    if note:
        click.echo(note, err=True)
    systems: list[tuple[Ask, str]] = []
    base = engine.with_answerer(DenseBaseline())
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
