"""The fitted answerability score and follow-up decision, as a user meets them: answers, abstentions, follow-ups, a checked artifact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import engine_over_document

from qa import Engine

pytestmark = pytest.mark.real_model  # the fitted score reads dense similarities: it is measured with the real model
from qa.answer.model import ARTIFACT, ARTIFACT_SHA256, load_artifact
from qa.engine import follow_up_context
from qa.errors import ConfigError

BAKERY = """# Rosewood Bakery: staff handbook

Rosewood Bakery opens at 6:30 every weekday and at 8:00 on Saturdays. It is closed on Sundays.

The head baker is Tomasz Nowak, who joined the bakery in 2016. Orders for wedding cakes go to him at least three weeks ahead.

Staff get a 30% discount on bread and pastries. Uniforms are washed by the bakery every Friday.
"""


@pytest.fixture(scope="module")
def bakery(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return engine_over_document(tmp_path_factory.mktemp("bakery"), "handbook.md", BAKERY)


def test_an_answered_question_quotes_the_sentence_that_answers_it(bakery: Engine) -> None:
    answer = bakery.ask("Who is the head baker?")
    assert not answer.abstained and "Tomasz Nowak" in answer.text
    assert answer.confidence is not None and answer.confidence >= load_artifact().threshold
    from qa.readers import read_document

    source = read_document(bakery.settings.seeds_dir / "handbook.md").text  # the stored text citations point into
    for c in answer.citations:
        assert source[c.start : c.end] == c.quote


PORT = """# Port of Kell

The harbour was built in 1850 by the town council.

Its lighthouse is 40 metres tall.

The lighthouse was painted red in 1990 and white in 2010.

Ferries to Varn leave every hour from the north quay.

The harbour master is Ilse Marrow.
"""


def test_a_likely_runner_up_from_another_paragraph_is_quoted_after_the_best_sentence_and_an_unlikely_one_is_not(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    port = engine_over_document(tmp_path_factory.mktemp("port"), "port.md", PORT)
    floor = load_artifact().second_floor
    # The best-scored sentence (who built the harbour) is not the answer; the runner-up, another paragraph, is.
    runs = port.ask("Who runs the harbour?")
    assert len(runs.citations) == 2 and "Ilse Marrow" in runs.citations[1].quote
    best, runner_up = runs.citations
    assert best.chunk_id != runner_up.chunk_id and best.score is not None and runner_up.score is not None
    assert best.score >= runner_up.score >= floor
    assert "Ilse Marrow" in runs.text
    # Here the runner-up (another paragraph about the lighthouse) scores under the floor: one quote.
    tall = port.ask("How tall is the lighthouse?")
    assert [c.quote for c in tall.citations] == ["Its lighthouse is 40 metres tall."]


def test_a_question_the_documents_do_not_cover_is_abstained_with_a_low_score(bakery: Engine) -> None:
    # A question about a topic the handbook never touches. A near miss about staff terms ("How many weeks of
    # parental leave do employees get?") scores 0.0815, over the threshold (0.0688, the highest that holds the
    # false-abstain ceiling on the written fitting set too), so it is answered: the score separates near misses only weakly.
    answer = bakery.ask("Who won the football World Cup in 1998?")
    assert answer.abstained and answer.citations == []
    assert answer.confidence is not None and answer.confidence < load_artifact().threshold


def test_the_score_ranks_a_covered_question_above_an_uncovered_one(bakery: Engine) -> None:
    covered = bakery.ask("What discount do staff get on bread?").confidence
    uncovered = bakery.ask("What is the bakery's policy on remote work?").confidence
    assert covered is not None and uncovered is not None and covered > uncovered


def test_a_follow_up_leans_on_the_previous_question_and_a_new_topic_does_not() -> None:
    history = [{"role": "user", "content": "Who is the head baker?"}, {"role": "assistant", "content": "Tomasz Nowak [1]"}]
    assert follow_up_context("When did he join?", history) == "Who is the head baker?"
    assert follow_up_context("And on Saturdays?", ["When does the bakery open?"]) == "When does the bakery open?"
    assert follow_up_context("What is the capital of Portugal?", history) == ""
    assert follow_up_context("When did Tomasz Nowak join the bakery?", history) == ""
    assert follow_up_context("When did he join?", []) == ""


def test_a_follow_up_of_a_follow_up_reaches_back_to_the_question_that_stood_alone() -> None:
    turns = ["Who is the head baker?", "When did he join?", "What does he handle?"]
    assert follow_up_context(turns[2], turns[:2]) == "Who is the head baker? When did he join?"


def test_follow_ups_are_answered_from_the_earlier_question(bakery: Engine) -> None:
    history = [{"role": "user", "content": "Who is the head baker?"}, {"role": "assistant", "content": "Tomasz Nowak [1]"}]
    answer = bakery.ask("When did he join?", history=history)
    assert "2016" in answer.text and answer.retrieval_query.startswith("Who is the head baker?")


def test_an_altered_artifact_is_refused_with_the_command_that_rebuilds_it(tmp_path: Path) -> None:
    altered = tmp_path / "answerability.json"
    data = json.loads(ARTIFACT.read_text(encoding="utf-8"))
    data["threshold"] = 0.0
    altered.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="make train"):
        load_artifact(altered, ARTIFACT_SHA256)
    with pytest.raises(ConfigError, match="missing.*make train"):
        load_artifact(tmp_path / "nowhere.json", ARTIFACT_SHA256)


def test_the_shipped_artifact_passes_its_check_and_says_what_it_was_fitted_on() -> None:
    artifact = load_artifact()
    assert 0.0 < artifact.threshold < 1.0
    fitted = artifact.meta["fitting_data"]
    assert set(fitted) == {"squad2-train-19", "gold_dev_half", "written_for_fitting", "follow_ups"}
    assert "CC BY-SA" in artifact.meta["licence"]


def test_the_runner_up_floor_keeps_the_answers_quoting_the_runner_up_always_would_on_every_fitting_set() -> None:
    """The floor drops unlikely runners-up, and costs at most its tolerance in answers found on each fitting set."""
    data = json.loads(ARTIFACT.read_text(encoding="utf-8"))
    for coverage in data["meta"]["validation"]["answer_coverage_squad_gold_dev_written"]:
        assert coverage["with_runner_up"] >= coverage["runner_up_always"] - data["second_tolerance"]
        assert coverage["with_runner_up"] >= coverage["same_passage_only"]
    assert 0.0 < data["second_floor"] < data["threshold"]


def test_the_floor_is_the_highest_that_loses_at_most_its_tolerance() -> None:
    import numpy as np

    from qa.answer.train import TopThree, _second_floor

    # Four answerable questions, three rows each (scores, holds the answer, passage); the best rows are wrong in
    # questions 1 and 2, whose runners-up (0.02 and 0.05) hold the answer.
    scores = np.array([0.9, 0.01, 0.0, 0.5, 0.02, 0.0, 0.4, 0.05, 0.0, 0.8, 0.03, 0.0])
    right = np.array([1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0])
    question = np.repeat(np.arange(4), 3)
    passage = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    top = TopThree.of(scores, right, question, passage, np.ones(4, dtype=bool))
    assert top.coverage(0.1, 0.0) == 1.0 and top.coverage(0.1, 0.03) == 0.75
    assert _second_floor([top], 0.1, 0.0) == 0.02  # loses nothing
    assert _second_floor([top], 0.1, 0.25) == 0.05  # may lose one question of four


def test_the_threshold_holds_the_false_abstain_ceiling_on_every_fitting_set() -> None:
    """The written-for-fitting questions constrain the threshold too, beside SQuAD (out-of-fold) and the gold dev half."""
    data = json.loads(ARTIFACT.read_text(encoding="utf-8"))
    validation = data["meta"]["validation"]
    for name in ("squad_out_of_fold_by_article", "gold_dev_in_sample", "written_for_fitting"):
        assert validation[name]["false_abstain_rate"] <= data["max_false_abstain"], name


@pytest.mark.fake_model  # determinism of the build, not its quality: the fake embedder is deterministic too
def test_make_train_builds_the_same_bytes_twice(tmp_path: Path) -> None:
    """Deterministic: two runs over the same (small, written-here) fitting data write identical artifacts."""
    from qa.answer.train import main

    squad = tmp_path / "squad"
    (squad / "corpus").mkdir(parents=True)
    (squad / "corpus" / "Bakery.txt").write_text(BAKERY, encoding="utf-8")
    (squad / "corpus" / "Harbour.txt").write_text(
        "The harbour was built in 1850 by the town council.\n\nIts lighthouse is 40 metres tall and was painted red in 1990.\n",
        encoding="utf-8",
    )
    questions = [
        ("Who is the head baker?", ["Tomasz Nowak"], "The head baker is Tomasz Nowak, who joined the bakery in 2016."),
        ("When does the bakery open on Saturdays?", ["8:00"], "Rosewood Bakery opens at 6:30 every weekday and at 8:00 on Saturdays."),
        ("How tall is the lighthouse?", ["40 metres"], "Its lighthouse is 40 metres tall and was painted red in 1990."),
        ("Who built the harbour?", ["the town council"], "The harbour was built in 1850 by the town council."),
        ("Who painted the lighthouse blue?", [], ""),
        ("What discount do customers get on cakes?", [], ""),
    ]
    with (squad / "gold.jsonl").open("w", encoding="utf-8") as fh:
        for i, (q, answers, evidence) in enumerate(questions):
            fh.write(json.dumps({"id": f"t{i}", "question": q, "answers": answers, "answerable": bool(answers), "evidence": [evidence] if evidence else []}) + "\n")
    # The other fitting sets are written here too (a gold dev half, questions written for fitting, follow-up
    # pairs), so each build reads a handful of questions instead of the project's full fitting data.
    gold = tmp_path / "gold.jsonl"
    shutil.copy(squad / "gold.jsonl", gold)
    (tmp_path / "split.json").write_text(json.dumps({"dev": ["t0", "t2", "t4"], "test": ["t1", "t3", "t5"]}), encoding="utf-8")
    fit = tmp_path / "fit"
    shutil.copytree(squad / "corpus", fit / "docs")
    shutil.copy(squad / "gold.jsonl", fit / "gold.jsonl")
    pairs = [("Who founded the bakery?", "When did he retire?", True), ("Who built the harbour?", "What did they build next?", True),
             ("How tall is the lighthouse?", "Is it open to visitors?", True), ("Who is the head baker?", "When does the bakery open?", False),
             ("How tall is the lighthouse?", "Who built the harbour in 1850?", False), ("What do staff get?", "What colour was the lighthouse painted?", False)]
    (tmp_path / "follow_ups.jsonl").write_text(
        "".join(json.dumps({"previous": a, "question": b, "follow_up": f}) + "\n" for a, b, f in pairs), encoding="utf-8")
    written = ["--squad", str(squad), "--seeds", str(squad / "corpus"), "--gold", str(gold), "--split", str(tmp_path / "split.json"),
               "--fit-docs", str(fit), "--follow-ups", str(tmp_path / "follow_ups.jsonl")]
    outs = []
    for run in ("a", "b"):
        out = tmp_path / f"{run}.json"
        assert main(["--out", str(out), "--work", str(tmp_path / f"work-{run}"), *written]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    fitting = json.loads(outs[0])["meta"]["fitting_data"]
    assert fitting["squad2-train-19"]["questions"] == len(questions)
    assert (fitting["gold_dev_half"]["questions"], fitting["written_for_fitting"]["questions"], fitting["follow_ups"]["pairs"]) == (3, 6, 6)


def test_a_store_copied_elsewhere_still_answers_with_the_same_scores(bakery: Engine, tmp_path: Path) -> None:
    shutil.copytree(bakery.settings.data_dir, tmp_path / ".qa")
    copy = Engine(bakery.settings.model_copy(update={"data_dir": tmp_path / ".qa"}))
    question = "What discount do staff get on bread?"
    assert copy.ask(question).confidence == bakery.ask(question).confidence
