"""The feedback log and `qa feedback export`: thumbs become gold items to grow the eval set."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from qa import Settings
from qa.cli import main
from qa.feedback import feedback_path, read_feedback, record_feedback
from qa.types import Answer, Citation

QUOTE = "Russia announced on Thursday that it will expel 60 US diplomats and an unknown number of envoys from other countries."


def _answer(question: str, *, abstained: bool = False) -> Answer:
    citations = [] if abstained else [Citation(1, "000_da55755936a874b9.txt", "000", 1, 0, len(QUOTE), QUOTE, 1.2)]
    text = "The documents don't say." if abstained else QUOTE + " [1]"
    return Answer(text=text, citations=citations, abstained=abstained, question=question)


def test_feedback_is_appended_as_one_json_line_per_rating() -> None:
    settings = Settings()
    record_feedback(settings, answer=_answer("How many US diplomats will Russia expel?"), helpful=True, channel="web")
    record_feedback(settings, answer=_answer("Who won?"), helpful=False, channel="slack", user="U1", history=["Hi"])
    lines = feedback_path(settings).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["question"] == "How many US diplomats will Russia expel?" and first["helpful"] is True
    assert first["citations"][0]["quote"] == QUOTE and first["mode"] == "extractive" and first["timestamp"]
    assert second["channel"] == "slack" and second["user"] == "U1" and second["history"] == ["Hi"]


def test_feedback_export_writes_gold_items(tmp_path: Path) -> None:
    settings = Settings()
    record_feedback(settings, answer=_answer("How many US diplomats will Russia expel?"), helpful=True, channel="web")
    record_feedback(settings, answer=_answer("Who is the Pope?", abstained=True), helpful=True, channel="web")
    record_feedback(settings, answer=_answer("Who won the match?"), helpful=False, channel="web")
    out = tmp_path / "feedback-gold.jsonl"

    result = CliRunner().invoke(main, ["feedback", "export", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Wrote 3 items" in result.output
    helpful, unanswerable, disliked = (json.loads(line) for line in out.read_text(encoding="utf-8").splitlines())
    assert helpful["question"] == "How many US diplomats will Russia expel?"
    assert helpful["answerable"] is True and helpful["answers"] == [QUOTE] and helpful["evidence"] == [QUOTE]
    assert unanswerable["answerable"] is False and unanswerable["answers"] == []
    assert disliked["review"] is True and disliked["answers"] == []
    assert len({helpful["id"], unanswerable["id"], disliked["id"]}) == 3


def test_feedback_export_prints_to_stdout_and_survives_a_torn_last_line() -> None:
    settings = Settings()
    record_feedback(settings, answer=_answer("How many US diplomats will Russia expel?"), helpful=True, channel="web")
    with feedback_path(settings).open("a", encoding="utf-8") as fh:
        fh.write('{"question": "half writ')  # a crash mid-write
    assert len(read_feedback(settings)) == 1
    result = CliRunner().invoke(main, ["feedback", "export"])
    assert result.exit_code == 0
    (item,) = [json.loads(line) for line in result.output.splitlines()]
    assert item["question"] == "How many US diplomats will Russia expel?"


def test_feedback_export_of_an_empty_log_is_empty() -> None:
    result = CliRunner().invoke(main, ["feedback", "export"])
    assert result.exit_code == 0 and result.output == ""
