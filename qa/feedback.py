"""The feedback log: thumbs up/down from the chat page and Slack, one JSON object a line under QA_DATA_DIR."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from qa.settings import Settings
    from qa.types import Answer

_LOCK = threading.Lock()


def feedback_path(settings: Settings) -> Path:
    return settings.data_dir / "feedback.jsonl"


def record_feedback(
    settings: Settings,
    *,
    answer: Answer | dict[str, Any],
    helpful: bool,
    channel: str,
    user: str | None = None,
    history: list[str] | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """Append one rating with the question, answer, citations and mode; returns the record written."""
    data = answer.to_dict() if hasattr(answer, "to_dict") else dict(answer)
    record = {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "channel": channel,
        "user": user,
        "helpful": helpful,
        "question": data.get("question", ""),
        "history": history or [],
        "answer": data.get("text", ""),
        "abstained": bool(data.get("abstained", False)),
        "mode": data.get("mode", ""),
        "citations": data.get("citations", []),
        "comment": comment,
    }
    path = feedback_path(settings)
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with _LOCK:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(line)
    return record


def read_feedback(settings: Settings) -> list[dict[str, Any]]:
    path = feedback_path(settings)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a torn last line from a crash is not worth failing an export over
    return records


def to_gold(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Feedback as gold items: helpful answers become answerable items with their quotes as evidence.

    Unhelpful ones are kept as items to review (answers empty, `"review": true`)."""
    gold = []
    for i, rec in enumerate(records, start=1):
        quotes = [c.get("quote", "") for c in rec.get("citations", []) if c.get("quote")]
        helpful = bool(rec.get("helpful"))
        item = {
            "id": f"feedback-{i:04d}",
            "question": rec.get("question", ""),
            "answers": [q for q in quotes] if helpful and not rec.get("abstained") else [],
            "answerable": (not rec.get("abstained")) if helpful else True,
            "evidence": quotes if helpful else [],
            "history": rec.get("history", []),
        }
        if not helpful:
            item["review"] = True
        gold.append(item)
    return gold


@click.group("feedback")
def feedback_group() -> None:
    """Work with the feedback log."""


@feedback_group.command("export")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="Write here instead of stdout.")
def export_command(output: Path | None) -> None:
    """Write the feedback log in the gold format (one JSON object a line)."""
    from qa.settings import Settings

    items = to_gold(read_feedback(Settings()))
    text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"Wrote {len(items)} items to {output}.", err=True)
    else:
        click.echo(text, nl=False)
