"""How `qa eval` scores: matching, SQuAD scores, what each item counts toward, gold-file errors, the gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.errors import InputError
from qa.metrics import (
    METRICS,
    GoldItem,
    Scored,
    check_gate,
    contains_any,
    exact_match,
    load_gold,
    percentile,
    score_item,
    strip_markers,
    summarize,
    token_f1,
)

EVIDENCE = "Russia announced on Thursday that it will expel 60 US diplomats."
PASSAGE = "Russia announced on Thursday that it will expel 60 US diplomats. More text follows."
OTHER = "Kremlin expressed anger toward the campaign."


def _item(answerable: bool = True, answers: tuple[str, ...] = ("60",)) -> GoldItem:
    return GoldItem(id="q", question="How many?", answers=answers if answerable else (), answerable=answerable,
                    evidence=(EVIDENCE,) if answerable else ())


def _row(item: GoldItem, answer: Scored) -> dict:  # type: ignore[type-arg]
    return {"answerable": item.answerable, "metrics": score_item(item, answer, k=5)}


def test_citation_markers_never_count_as_an_answer() -> None:
    assert strip_markers("It was expelled [1]. Later [2, 3] again [12].") == "It was expelled. Later again."
    answer = Scored(text="Nothing about numbers here [1].", abstained=False)
    assert score_item(_item(answers=("1",)), answer, k=5)["answer_contains"] == 0.0


def test_matching_ignores_case_whitespace_and_typographic_quotes() -> None:
    assert contains_any("BRITAIN’S national\n security  adviser", ["Britain's national security adviser"])
    assert contains_any("a “powerful western message”", ['"powerful western message"'])
    assert not contains_any("something else", ["adviser"])


def test_exact_match_and_token_f1_use_squad_normalisation() -> None:
    assert exact_match("The Thursday.", ["thursday"]) == 1.0
    assert exact_match("on Thursday", ["Thursday"]) == 0.0
    assert token_f1("on Thursday", ["Thursday", "Friday"]) == pytest.approx(2 / 3)
    assert token_f1("", ["Thursday"]) == 0.0


def test_an_answerable_item_scores_retrieval_answer_and_citations() -> None:
    answer = Scored(text=f"{EVIDENCE} [1]", abstained=False, cited=[("c1", PASSAGE), ("c2", OTHER)], retrieved=[OTHER, PASSAGE])
    m = score_item(_item(), answer, k=5)
    assert m["hit_rank"] == 2 and m["retrieval_hit_at_k"] == 1.0 and m["mrr"] == 0.5
    assert m["answer_contains"] == 1.0 and m["citation_precision"] == 0.5 and m["citation_recall"] == 1.0
    assert m["correct"] is True
    assert score_item(_item(), answer, k=1)["retrieval_hit_at_k"] == 0.0  # evidence only at rank 2


def test_abstaining_on_an_answerable_item_scores_zero_not_missing() -> None:
    m = score_item(_item(), Scored(text="The documents don't say.", abstained=True, retrieved=[PASSAGE]), k=5)
    assert m["answer_contains"] == 0.0 and m["token_f1"] == 0.0 and m["citation_recall"] == 0.0
    assert m["citation_precision"] is None and m["retrieval_hit_at_k"] == 1.0 and m["correct"] is False


def test_unanswerable_items_count_only_toward_abstention() -> None:
    m = score_item(_item(answerable=False), Scored(text="60 [1]", abstained=False, cited=[("c1", PASSAGE)]), k=5)
    assert m["answer_contains"] is None and m["retrieval_hit_at_k"] is None and m["citation_precision"] is None
    assert m["correct"] is False


def test_summary_pools_items_as_documented() -> None:
    answered = Scored(text=f"{EVIDENCE} [1]", abstained=False, cited=[("c1", PASSAGE)], retrieved=[PASSAGE], latency_ms=10)
    wrong_cite = Scored(text=f"{OTHER} [1]", abstained=False, cited=[("c2", OTHER)], retrieved=[OTHER], latency_ms=20)
    abstained = Scored(text="The documents don't say.", abstained=True, latency_ms=30)
    rows = [
        _row(_item(), answered),
        _row(_item(), wrong_cite),
        _row(_item(), abstained),  # a false abstention
        _row(_item(answerable=False), abstained),  # a right abstention
        _row(_item(answerable=False), answered),  # answered what has no answer
    ]
    s = summarize(rows, mode="extractive")
    assert set(METRICS) <= set(s)
    assert s["n"] == 5 and s["n_answerable"] == 3 and s["n_unanswerable"] == 2
    assert s["answer_contains"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["retrieval_hit_at_k"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["citation_precision"] == 0.5  # 1 of 2 cited chunks; the unanswerable item's citation is not counted
    assert s["abstain_precision"] == 0.5 and s["abstain_recall"] == 0.5
    assert s["false_abstain_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["accuracy"] == 0.4
    assert s["latency_p50_ms"] == 20.0


def test_rates_with_nothing_to_count_are_null_not_zero() -> None:
    s = summarize([_row(_item(), Scored(text="60 [1]", abstained=False, cited=[("c", PASSAGE)]))], mode="baseline")
    assert s["abstain_precision"] is None and s["abstain_recall"] is None
    assert percentile([], 50) is None and percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('["a list"]', "line 2: expected a JSON object"),
        ('{"question": "Q?", "answerable": true, "evidence": ["e"]}', "line 2: missing field `answers`"),
        ('{"question": "Q?", "answers": ["a"], "answerable": true}', "line 2: missing field `evidence`"),
        ('{"question": "Q?", "answers": ["a"], "answerable": "yes", "evidence": []}', "line 2: `answerable` must be true or false"),
        ('{"question": "Q?", "answers": "a", "answerable": true, "evidence": ["e"]}', "line 2: `answers` must be a list of strings"),
        ('{"question": "Q?", "answers": [], "answerable": true, "evidence": ["e"]}', "line 2: an answerable item needs at least one accepted answer"),
        ('{"id": "a", "question": "Q?", "answers": [], "answerable": false}', "line 2: id 'a' repeats line 1"),
    ],
)
def test_bad_gold_lines_are_named_by_line_number(tmp_path: Path, line: str, message: str) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "Q?", "answers": [], "answerable": false}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        load_gold(gold)
    assert "\n" not in str(caught.value)


def test_missing_and_empty_gold_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="No gold file"):
        load_gold(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="has no questions"):
        load_gold(tmp_path / "empty.jsonl")


def test_gate_names_every_metric_out_of_bounds() -> None:
    summary = {"answer_contains": 0.8, "retrieval_hit_at_k": 1.0, "false_abstain_rate": 0.2, "abstain_precision": None}
    failures = check_gate(
        summary,
        floors={"answer_contains": 0.9, "retrieval_hit_at_k": 0.95, "abstain_precision": 0.5, "llm_correctness": 0.5},
        ceilings={"false_abstain_rate": 0.1},
    )
    assert failures == [
        "answer_contains 0.8 < 0.9",
        "abstain_precision not measured (floor 0.5)",
        "llm_correctness not measured (floor 0.5)",
        "false_abstain_rate 0.2 > 0.1",
    ]
    assert check_gate(summary, floors={"retrieval_hit_at_k": 0.95}, ceilings={}) == []
