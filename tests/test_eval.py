"""`qa eval` as a team uses it: scores, a run folder with report and chart, comparisons and a CI gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import GOLD, SEEDS

from qa.cli import main
from qa.metrics import METRICS

pytestmark = pytest.mark.real_model  # the gates' floors are the real model's


@pytest.fixture
def indexed(seed_data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import shutil

    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data, dirs_exist_ok=True)
    monkeypatch.setenv("QA_DATA_DIR", str(data))
    return data


FLOORS = ["--min", "retrieval_hit_at_k=0.95", "--min", "answer_contains=0.90", "--min", "abstain_recall=0.17"]


@pytest.fixture(scope="module")
def full_run(seed_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """One run of the whole gold set with the baseline beside it and passing floors, read by several tests.

    The 70 questions are asked once for the module rather than once a test: each test reads the part it checks.
    """
    import shutil

    root = tmp_path_factory.mktemp("eval-full-run")
    shutil.copytree(seed_data_dir, root / ".qa")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QA_DATA_DIR", str(root / ".qa"))
        patch.setenv("QA_SEEDS_DIR", str(SEEDS))
        result = CliRunner().invoke(main, ["eval", "--gold", str(GOLD), "--out", str(root / "run"), "--json", "--with-baseline", *FLOORS])
    return result, root / "run"


def test_eval_json_prints_every_metric_and_writes_the_run_folder(full_run: tuple[Any, Path]) -> None:
    result, out = full_run
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


def test_a_broken_setting_fails_the_gate_naming_the_metrics_that_fell(indexed: Path, tmp_path: Path, full_run: tuple[Any, Path]) -> None:
    ok, _ = full_run  # the same floors, passed by the engine
    assert ok.exit_code == 0, ok.output
    assert "Quality gate passed (3 bounds)." in ok.stderr
    broken = CliRunner().invoke(main, ["eval", "--gold", str(GOLD), "--out", str(tmp_path / "b"), "--baseline", "--k", "1", *FLOORS])
    assert broken.exit_code == 1
    assert "Quality gate failed" in broken.output
    assert "abstain_recall 0 < 0.17" in broken.output and "answer_contains" in broken.output


def test_compare_shows_changes_and_items_that_flipped(indexed: Path, tmp_path: Path, full_run: tuple[Any, Path]) -> None:
    _, good = full_run
    result = CliRunner().invoke(
        main, ["eval", "--gold", str(GOLD), "--out", str(tmp_path / "worse"), "--baseline", "--compare", str(good)]
    )
    assert result.exit_code == 0, result.output
    assert "abstain_recall" in result.output and "worse" in result.output
    assert "went from right to wrong:" in result.output
    report = (tmp_path / "worse" / "report.md").read_text(encoding="utf-8")
    assert f"## Against {good}" in report and "- **seed-0" in report


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


def _run_files(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in folder.rglob("*") if p.suffix in (".md", ".json", ".jsonl"))


def test_dense_retrieval_with_top_k_1_fails_the_gate_naming_retrieval(indexed: Path, tmp_path: Path) -> None:
    gate = ["--min", "retrieval_hit_at_k=0.95", "--min", "answer_contains=0.90", "--max", "false_abstain_rate=0.10"]
    result = CliRunner().invoke(main, ["eval", "--gold", str(GOLD), "--out", str(tmp_path / "r"), "--retrieval", "dense", "--k", "1", *gate])
    assert result.exit_code == 1
    assert "Quality gate failed: retrieval_hit_at_k" in result.output and "< 0.95" in result.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text(encoding="utf-8"))
    assert summary["run"]["retrieval"] == "dense" and summary["run"]["k"] == 1
    assert summary["gate"]["failed"] and summary["gate"]["failed"][0].startswith("retrieval_hit_at_k")


def test_with_baseline_reports_both_side_by_side(full_run: tuple[Any, Path]) -> None:
    result, out = full_run
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| metric | extractive | baseline |" in report
    assert "## How each metric counts" in report and "## Worst items" in report
    baseline = json.loads((out / "baseline" / "summary.json").read_text(encoding="utf-8"))
    assert baseline["mode"] == "baseline" and baseline["n"] == 70
    assert baseline["abstain_recall"] == 0.0 and baseline["abstain_precision"] is None  # it never abstains
    rows = [json.loads(line) for line in (out / "baseline" / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(len(r["citations"]) == 1 and r["answer"].endswith("[1]") for r in rows)


def test_follow_ups_replay_their_history_with_the_engines_answers(indexed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fake_openai import FakeOpenAI

    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        json.dumps({"id": "f1", "question": "What did he say the crisis reminded him of?", "answers": ["Cold War"],
                    "answerable": True, "evidence": ["x"], "history": ["Who is the UN Secretary General mentioned?"]}) + "\n",
        encoding="utf-8",
    )
    with FakeOpenAI() as server:
        server.reply("Antonio Guterres is the UN Secretary General [1].")
        monkeypatch.setenv("QA_LLM_BASE_URL", server.base_url)
        result = CliRunner().invoke(main, ["eval", "--gold", str(gold), "--out", str(tmp_path / "r"), "--no-judge"])
        sent = [" ".join(str(m.get("content")) for m in body["messages"]) for body in server.chat_requests]
    assert result.exit_code == 0, result.output
    # First the history question on its own, then the follow-up with that question and the answer it got.
    assert "Who is the UN Secretary General mentioned?" in sent[0] and "reminded him" not in sent[0]
    later = " ".join(sent[1:])
    assert "reminded him of" in later and "Antonio Guterres is the UN Secretary General" in later
    record = json.loads((tmp_path / "r" / "results.jsonl").read_text(encoding="utf-8"))
    assert record["history_answers"] == ["Antonio Guterres is the UN Secretary General [1]."]


def test_offline_run_ignores_the_llm_and_never_writes_secrets(indexed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    monkeypatch.setenv("QA_LLM_API_KEY", "sk-test-secret-4242")
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["eval", "--gold", str(GOLD), "--out", str(out), "--offline", "--limit", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mode"] == "extractive"
    written = _run_files(out) + result.output
    assert "sk-test-secret-4242" not in written
    assert "| llm_api_key | set |" in (out / "report.md").read_text(encoding="utf-8")


def test_settings_in_reports_hide_credentials_in_urls() -> None:
    from qa.eval import safe_settings
    from qa.settings import Settings

    shown = safe_settings(Settings(llm_base_url="https://user:pw-secret@llm.example/v1?key=abc", chunk_tokens=150, _env_file=None))
    assert shown["llm_base_url"] == "https://llm.example/v1"
    assert shown["chunk_tokens"] == 150 and shown["openai_api_key"] == "unset"


def test_a_failing_judge_leaves_the_string_metrics_standing(indexed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fake_openai import FakeOpenAI, Reply

    with FakeOpenAI() as server:
        server.reply("Mark Sedwill is Britain's national security adviser [1].")
        server.when("expert evaluation system", Reply(status=500))
        server.when("supported by the context", "YES")
        monkeypatch.setenv("QA_LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("QA_LLM_RETRIES", "0")
        gold = tmp_path / "gold.jsonl"
        gold.write_text(GOLD.read_text(encoding="utf-8").splitlines()[40] + "\n", encoding="utf-8")
        result = CliRunner().invoke(main, ["eval", "--gold", str(gold), "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["judge_errors"] == 1 and summary["llm_correctness"] is None
    assert summary["answer_contains"] == 1.0
    assert "1 judge calls failed" in (tmp_path / "r" / "report.md").read_text(encoding="utf-8")


def test_eval_without_an_index_indexes_the_seeds_first(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["eval", "--gold", str(GOLD), "--limit", "3", "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    assert "indexed" in result.stderr and json.loads(result.stdout)["n"] == 3


def test_a_bound_on_an_unknown_metric_lists_the_valid_names(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["eval", "--gold", str(GOLD), "--min", "answer_contain=0.9"])
    assert result.exit_code == 2
    assert "answer_contain=0.9" in result.output and "answer_contains" in result.output


def test_split_runs_only_the_named_half_of_the_gold_set(indexed: Path, tmp_path: Path) -> None:
    split = json.loads((GOLD.parent / "split.json").read_text(encoding="utf-8"))
    result = CliRunner().invoke(main, ["eval", "--gold", str(GOLD), "--split", "dev", "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n"] == len(split["dev"]) and summary["run"]["split"] == "dev"
    ids = {json.loads(line)["id"] for line in (tmp_path / "r" / "results.jsonl").read_text(encoding="utf-8").splitlines()}
    assert ids == set(split["dev"]) and not ids & set(split["test"])
    assert 0.5 <= summary["answerability_auroc"] <= 1.0


def test_split_of_a_gold_set_it_does_not_cover_is_a_one_line_error(tmp_path: Path) -> None:
    gold = tmp_path / "mine.jsonl"
    gold.write_text(json.dumps({"id": "x1", "question": "Who?", "answers": [], "answerable": False}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["eval", "--gold", str(gold), "--split", "test"])
    assert result.exit_code == 1 and "None of the test ids" in result.output


def _conversation(cid: str, *turns: tuple[str, bool]) -> str:
    return json.dumps({"id": cid, "turns": [
        {"question": q, "answers": [], "answerable": False, "evidence": [], "follow_up": f} for q, f in turns
    ]})


def test_conversations_are_asked_turn_by_turn_and_the_follow_up_decision_is_scored(indexed: Path, tmp_path: Path) -> None:
    conversations = tmp_path / "conversations.jsonl"
    conversations.write_text(
        _conversation("c1", ("Who chairs the parish council?", False), ("When was she elected?", True)) + "\n"
        + _conversation("c2", ("Who chairs the parish council?", False), ("What is the boiling point of ethanol?", False)) + "\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["eval", "--gold", str(conversations), "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n"] == 4 and summary["n_follow_up_decisions"] == 2 and summary["follow_up_right"] == 1.0
    rows = {json.loads(line)["id"]: json.loads(line) for line in (tmp_path / "r" / "results.jsonl").read_text(encoding="utf-8").splitlines()}
    assert rows["c1#2"]["history"] == ["Who chairs the parish council?"]
    assert rows["c1#2"]["follow_up"] == {"expected": True, "decided": True}
    assert rows["c2#2"]["follow_up"] == {"expected": False, "decided": False}


def test_a_bad_conversation_line_names_the_line_and_the_turn(tmp_path: Path) -> None:
    conversations = tmp_path / "conversations.jsonl"
    conversations.write_text(
        _conversation("c1", ("Who?", False)) + "\n" + json.dumps({"id": "c2", "turns": [{"question": "Where?", "answerable": True}]}) + "\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["eval", "--gold", str(conversations)])
    assert result.exit_code == 1
    assert "line 2: turn 1:" in result.output and "answers" in result.output


def test_judge_scores_outside_one_to_five_are_not_counted() -> None:
    from qa.eval.judge import _parse_score

    assert _parse_score("4\nThe answer matches the reference.")[0] == 4.0
    assert _parse_score("Score: 15 out of 5")[0] is None
    assert _parse_score("I can't tell.")[0] is None


def test_gate_takes_its_gold_set_split_and_floors_from_the_floors_file(indexed: Path, tmp_path: Path) -> None:
    from qa.eval.floors import load_gate

    gate = load_gate("gold-test")
    test_ids = json.loads((GOLD.parent / "split.json").read_text(encoding="utf-8"))["test"]
    # the baseline with one passage falls below the floors: the gate fails, naming them
    result = CliRunner().invoke(main, ["eval", "--gate", "gold-test", "--baseline", "--k", "1", "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 1
    assert "Quality gate failed" in result.output and "abstain_recall 0 < 0.12" in result.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text(encoding="utf-8"))
    assert summary["n"] == len(test_ids) and summary["run"]["split"] == "test"
    assert summary["gate"]["min"] == gate.floors and summary["gate"]["max"] == gate.ceilings


def test_an_unknown_gate_is_a_one_line_error_listing_the_gates(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["eval", "--gate", "nope", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "No gate 'nope'" in result.output and "gold-test" in result.output and "paraphrase" in result.output


def test_readme_states_the_floors_written_in_eval_floors_json() -> None:
    from qa.eval.floors import load_gates
    from qa.settings import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    gates = load_gates()
    assert set(gates) == {"gold-test", "paraphrase"}
    for name, gate in gates.items():
        assert f"- {name}: {gate.describe()}\n" in readme, f"README's Floors list disagrees with eval/floors.json on {name}"
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "--min" not in makefile and all(f"--gate {name}" in makefile for name in gates)


def test_eval_runs_as_a_module_with_the_same_options() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "qa.eval", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--gate NAME" in done.stdout and "--with-baseline" in done.stdout
