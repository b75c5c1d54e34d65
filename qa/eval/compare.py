"""Comparing a run with an earlier one: each metric's change, and the items that went from right to wrong."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa.errors import InputError
from qa.eval.run import EXTRA_SUMMARY
from qa.metrics import LLM_METRICS, METRICS


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
        raise InputError(f"Cannot read the run in {folder}: {exc}.") from exc
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
