"""WordNet synonyms in the answerer's coverage: a reworded question still finds the sentence that answers it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import engine_over_document

from qa import Engine
from qa.answer.features import FEATURES, Featurizer
from qa.answer.lexicon import DATA, synonyms

BUILD = Path(__file__).resolve().parents[1] / "bench" / "build_synonyms.py"

pytestmark = pytest.mark.real_model  # candidates come from real retrieval over a real store

CLUB = """# Harbour Rowing Club: minutes of the annual meeting

The committee expelled two members in March for unpaid fees. The boathouse roof will be repaired in the summer.

Training starts at 7:00 on weekdays. Visitors may row on Saturdays with a member.
"""


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return engine_over_document(tmp_path_factory.mktemp("club"), "minutes.md", CLUB)


def _features(engine: Engine, question: str, needle: str) -> dict[str, float]:
    retriever = engine.retriever
    passages = retriever.passages(retriever.retrieve(question, 4))
    for cand in Featurizer().candidates(question, passages):
        if needle in cand.text:
            return dict(zip(FEATURES, cand.features.tolist()))
    raise AssertionError(f"no retrieved sentence holds {needle!r}")


def test_the_shipped_synonyms_state_their_source_and_licence_and_stay_small() -> None:
    path = DATA / "synonyms.tsv"
    header = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    assert any("Princeton WordNet 3.0" in line for line in header)
    assert any("Licence" in line for line in header)
    assert path.stat().st_size < 2_000_000


def test_synonyms_are_read_both_ways_and_two_word_terms_keep_their_content_word() -> None:
    table = synonyms()
    assert ("kick",) in table["expel"]  # "kick out": the stop word "out" is dropped
    assert ("expel",) in table["kick out"]
    assert all(words for alternatives in table.values() for words in alternatives)


def test_a_question_worded_with_a_synonym_covers_the_sentence_through_it(club: Engine) -> None:
    row = _features(club, "Who was kicked out of the club for not paying?", "expelled")
    assert row["coverage_synonym"] > row["coverage"]
    assert row["coverage_window_synonym"] >= row["coverage_synonym"]
    same = _features(club, "When will the boathouse roof be repaired?", "roof")
    assert same["coverage_synonym"] == same["coverage"]  # the sentence's own words: no synonym needed


def _wordnet(root: Path) -> Path:
    """A WordNet database in WordNet's own file format, three verbs and one noun."""
    licence = "  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n"
    (root / "index.verb").write_text(
        licence
        + "expel v 2 1 @ 2 1 00000001 00000002  \n"
        + "kick_out v 1 1 @ 1 0 00000001  \n"
        + "fire v 3 1 @ 3 1 00000003 00000004 00000002  \n",
        encoding="utf-8",
    )
    (root / "data.verb").write_text(
        licence
        + "00000001 41 v 02 expel 0 kick_out 0 000 | force to leave  \n"
        + "00000002 41 v 02 expel 1 fire 2 000 | rare sense of both  \n"
        + "00000003 41 v 01 fire 0 000 | shoot  \n"
        + "00000004 41 v 01 fire 1 000 | ignite  \n",
        encoding="utf-8",
    )
    (root / "index.noun").write_text(licence + "einstein n 1 1 @ 1 0 00000005  \ngenius n 1 1 @ 1 0 00000005  \n", encoding="utf-8")
    (root / "data.noun").write_text(licence + "00000005 18 n 02 Einstein 0 genius 0 000 | a genius  \n", encoding="utf-8")
    (root / "index.adj").write_text(licence, encoding="utf-8")
    (root / "data.adj").write_text(licence, encoding="utf-8")
    return root


def test_make_synonyms_keeps_shared_frequent_senses_and_leaves_out_rare_senses_and_names(tmp_path: Path) -> None:
    out = tmp_path / "synonyms.tsv"
    result = subprocess.run(
        [sys.executable, str(BUILD), "--wordnet", str(_wordnet(tmp_path)), "--senses", "2", "--out", str(out)],
        capture_output=True, text=True, check=True,
    )
    rows = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    # expel~fire share a synset that is expel's 2nd sense but fire's 3rd: left out; "Einstein" is a name
    assert rows == [["expel", "kick out"]], result.stdout
    assert "Princeton WordNet 3.0" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("build", [BUILD, BUILD.with_name("build_measures.py")], ids=["make synonyms", "make measures"])
def test_a_wordnet_build_without_wordnet_says_how_to_install_it(tmp_path: Path, build: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(build), "--wordnet", str(tmp_path), "--out", str(tmp_path / "s.tsv")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2 and "apt-get install -y wordnet-base" in result.stderr
    assert not (tmp_path / "s.tsv").exists()
