"""`qa eval` as a team uses it: scores, a run folder with report and chart, comparisons and a CI gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import GOLD

from qa.cli import main
from qa.metrics import METRICS


@pytest.fixture
def indexed(seed_data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import shutil

    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data, dirs_exist_ok=True)
    monkeypatch.setenv("QA_DATA_DIR", str(data))
    return data


def test_eval_json_prints_every_metric_and_writes_the_run_folder(indexed: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["eval", "--gold", str(GOLD), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(METRICS) <= set(summary)
    assert summary["n"] == 70 and summary["mode"] == "extractive"
    assert summary["answer_contains"] >= 0.9 and summary["retrieval_hit_at_k"] >= 0.95
    assert {p.name for p in out.iterdir()} >= {"results.jsonl", "summary.json", "report.md", "metrics.png"}
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    first = json.loads((out / "results.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert {"question", "answer", "citations", "metrics", "timings"} <= set(first)
    assert "| answer_contains |" in (out / "report.md").read_text(encoding="utf-8")


def test_a_broken_setting_fails_the_gate_naming_the_metrics_that_fell(indexed: Path, tmp_path: Path) -> None:
    floors = ["--min", "retrieval_hit_at_k=0.95", "--min", "answer_contains=0.90", "--min", "abstain_recall=0.50"]
    ok = CliRunner().invoke(main, ["eval", "--gold", str(GOLD), "--out", str(tmp_path / "a"), *floors])
    assert ok.exit_code == 0, ok.output
    broken = CliRunner().invoke(main, ["eval", "--gold", str(GOLD), "--out", str(tmp_path / "b"), "--baseline", "--k", "1", *floors])
    assert broken.exit_code == 1
    assert "Quality gate failed" in broken.output
    assert "abstain_recall 0 < 0.5" in broken.output and "answer_contains" in broken.output


def test_compare_shows_changes_and_items_that_flipped(indexed: Path, tmp_path: Path) -> None:
    CliRunner().invoke(main, ["eval", "--gold", str(GOLD), "--out", str(tmp_path / "good")])
    result = CliRunner().invoke(
        main, ["eval", "--gold", str(GOLD), "--out", str(tmp_path / "worse"), "--baseline", "--compare", str(tmp_path / "good")]
    )
    assert result.exit_code == 0, result.output
    assert "abstain_recall" in result.output and "worse" in result.output
    assert "went from right to wrong:" in result.output


def test_malformed_gold_lines_are_reported_with_their_line_number(indexed: Path, tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "Who?", "answers": [], "answerable": false}\n{not json\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["eval", "--gold", str(gold)])
    assert result.exit_code == 1
    assert "line 2: not valid JSON" in result.output
    gold.write_text('{"id": "a", "answers": ["x"], "answerable": true, "evidence": ["x"]}\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["eval", "--gold", str(gold)])
    assert "line 1: missing field `question`" in result.output


def test_corpus_flag_indexes_its_own_collection_without_touching_the_seed_index(indexed: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lighthouse.txt").write_text("The lighthouse keeper is named Ada Lovell. She lights the lamp at dusk.", encoding="utf-8")
    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        json.dumps({"id": "1", "question": "What is the lighthouse keeper's name?", "answers": ["Ada Lovell"],
                    "answerable": True, "evidence": ["The lighthouse keeper is named Ada Lovell."]}) + "\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["eval", "--gold", str(gold), "--corpus", str(docs), "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["answer_contains"] == 1.0
    info = json.loads(CliRunner().invoke(main, ["info", "--json"]).output)
    assert info["chunks"] == 7  # the seed collection is as it was


def test_with_an_llm_the_judged_metrics_sit_beside_the_string_metrics(indexed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        server.reply("Mark Sedwill is Britain's national security adviser [1].")
        server.when("expert evaluation system", "4.5\nThe answer matches the reference.")
        server.when("supported by the context", "YES")
        monkeypatch.setenv("QA_LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("QA_LLM_MODEL", "fake-model")
        gold = tmp_path / "gold.jsonl"
        gold.write_text(GOLD.read_text(encoding="utf-8").splitlines()[40] + "\n", encoding="utf-8")
        result = CliRunner().invoke(main, ["eval", "--gold", str(gold), "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["mode"].startswith("llm:")
    assert summary["llm_correctness"] == 1.0 and summary["llm_correctness_score"] == 4.5
    assert summary["llm_faithfulness"] == 1.0
    assert summary["answer_contains"] == 1.0
