"""`qa eval`: run a gold Q&A set through the engine, score it, write a report and chart, compare runs, gate CI.

One concept a module:

    run.py       which items are asked (a split, conversations), the engine (or a retrieval mode of it), the runner
    judge.py     LLM-judged correctness and faithfulness
    compare.py   a run against an earlier one
    report.py    the run folder: results.jsonl, summary.json, report.md, metrics.png
    floors.py    the quality floors `make test` gates on (eval/floors.json)
    cli.py       the `qa eval` command

Scoring lives in `qa/metrics.py` (its docstring says how answerable and unanswerable items enter
each metric). `--baseline` puts the baseline answerer (`qa/answer/baseline.py`) through the same harness, `--with-baseline` runs both.
"""

from __future__ import annotations

from qa.answer.baseline import BASELINE_MODE, DenseBaseline
from qa.eval.cli import eval_command
from qa.eval.compare import compare_runs, read_run
from qa.eval.judge import judge_run
from qa.eval.report import draw_chart, render_report, safe_settings, write_results
from qa.eval.run import RetrievalModeEngine, Run, open_engine, run_items

__all__ = [
    "BASELINE_MODE",
    "DenseBaseline",
    "RetrievalModeEngine",
    "Run",
    "compare_runs",
    "draw_chart",
    "eval_command",
    "judge_run",
    "open_engine",
    "read_run",
    "render_report",
    "run_items",
    "safe_settings",
    "write_results",
]
