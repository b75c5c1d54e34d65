"""`make quality`'s table: every test set's figures beside the dense top-1 baseline of the same run.

    python -m qa.quality NAME=RUN_DIR ...     # RUN_DIR written by `qa eval --with-baseline --out RUN_DIR`
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLUMNS = ("answer_contains", "abstain_recall", "false_abstain_rate", "answerability_auroc", "follow_up_right")


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def table(runs: list[tuple[str, dict[str, Any]]]) -> str:
    """A Markdown table: one row per test set, each figure as `ours (baseline)`."""
    lines = [
        "| test set | n | " + " | ".join(COLUMNS) + " | p50 ms |",
        "|---|---|" + "---|" * len(COLUMNS) + "---|",
    ]
    for name, summary in runs:
        base = summary.get("baseline", {})
        cells = []
        for column in COLUMNS:
            ours, theirs = summary.get(column), base.get(column)
            if ours is None and theirs is None:
                cells.append("")
            elif column == "answerability_auroc" or not base:
                cells.append(_fmt(ours))
            else:
                cells.append(f"{_fmt(ours)} ({_fmt(theirs)})")
        lines.append(f"| {name} | {summary.get('n')} | " + " | ".join(cells) + f" | {_fmt(summary.get('latency_p50_ms'))} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    runs = []
    for arg in args:
        name, _, folder = arg.partition("=")
        path = Path(folder or name) / "summary.json"
        if not path.is_file():
            print(f"No summary.json in {path.parent}: run `qa eval --with-baseline --out {path.parent}` first.", file=sys.stderr)
            return 1
        runs.append((name, json.loads(path.read_text(encoding="utf-8"))))
    print("ours (dense top-1 baseline), offline, extractive\n")
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
