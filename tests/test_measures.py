"""What the answerer's features read in a question: the amount it asks for (a price, a number of days, a monthly rate,
matched against what a sentence states, from word lists derived from WordNet by `make measures`), and which of its
words are terms, names and numbers at all."""

from __future__ import annotations

import pytest

from conftest import engine_over_document

from qa import Engine
from qa.answer.features import FEATURES, Featurizer, QuestionView
from qa.answer.lexicon import DATA, measures
from qa.answer.qtype import measures_asked
from qa.terms import TermStats

POOL = """# Riverside Leisure Centre: membership

The pool is open from 06:30 to 21:00 on weekdays. Lane swimming is in the main pool; the teaching pool is for lessons.

Adult membership costs £32 per month, or £320 a year if paid up front. Children under five swim free with a paying adult.

A locker key must be returned at reception. Lost keys are replaced by the duty manager.

Members may bring a guest on Sundays. Guest passes are sold at reception.
"""


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return engine_over_document(tmp_path_factory.mktemp("pool"), "membership.md", POOL)


def _rows(engine: Engine, question: str) -> dict[str, dict[str, float]]:
    """The feature rows of the retrieved sentences, by sentence text."""
    retriever = engine.retriever
    passages = retriever.passages(retriever.retrieve(question, 4))
    return {cand.text: dict(zip(FEATURES, cand.features.tolist())) for cand in Featurizer().candidates(question, passages)}


def _row(rows: dict[str, dict[str, float]], needle: str) -> dict[str, float]:
    return next(row for text, row in rows.items() if needle in text)


def test_the_shipped_measures_state_their_source_and_licence() -> None:
    text = (DATA / "measures.tsv").read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("Princeton WordNet 3.0" in line for line in header) and any("Licence" in line for line in header)
    sections = {tuple(line.split("\t")[:2]) for line in text.splitlines() if not line.startswith("#")}
    assert {("unit", "money"), ("unit", "time"), ("unit", "memory"), ("asks", "money"), ("period", "month")} <= sections


@pytest.mark.parametrize(
    ("kind", "sentence", "states"),
    [
        ("money", "Parking costs £4.50 for the day.", True),  # a currency symbol (Unicode category Sc)
        ("money", "The deposit is 200 euros.", True),
        ("money", "Tea and coffee are free.", True),
        ("money", "Parking is allocated by the facilities team.", False),
        ("money", "Late payments carry interest at 4% above base rate.", True),  # a share of a sum
        ("memory", "Every account includes 15 GB of storage.", True),
        ("memory", "Every account includes storage for photos.", False),
        ("time", "Refunds arrive within 5 working days.", True),
        ("time", "Refunds arrive by bank transfer.", False),
        ("power", "The heater draws 2 kW on its top setting.", True),
    ],
)
def test_an_amount_counts_only_with_a_unit_of_its_kind(kind: str, sentence: str, states: bool) -> None:
    assert measures().states(kind, sentence) is states


def test_a_question_asks_for_money_or_a_unit_only_when_it_says_so() -> None:
    assert measures_asked("how many weeks of holiday can I carry over") == {"time"}
    assert measures_asked("what fee do you charge for a late return") == {"money"}
    assert measures_asked("How much does the annual pass cost?") == {"money"}
    assert measures_asked("What's the deposit on a locker?") == frozenset()  # "deposit" is no WordNet price word
    assert measures_asked("How many people can join?") == frozenset()  # a count, not a unit
    assert measures_asked("Who pays for the taxi home?") == frozenset()  # not "what" or "how much"


def test_periods_are_named_per_day_week_month_or_year() -> None:
    known = measures()
    assert known.periods_in("£9 per calendar month") == {"month"}
    assert known.periods_in("an annual fee") == {"year"}
    assert known.periods_in("billed weekly, or £2 a day") == {"week", "day"}
    assert known.periods_in("open every day but one") == {"day"}
    assert known.periods_in("the day of the meeting") == frozenset()  # a day, not a rate per day
    assert known.periods_in("£9 a month, or 3 days a week") == {"month", "week"}
    assert known.periods_in("you may work abroad for a month") == frozenset()  # how long, not how often


def test_a_price_question_marks_the_sentences_that_state_no_price(pool: Engine) -> None:
    rows = _rows(pool, "How much does adult membership cost?")
    assert _row(rows, "£32 per month")["measure_missing"] == 0.0
    assert _row(rows, "Guest passes are sold")["measure_missing"] == 1.0
    unasked = _rows(pool, "When is the pool open?")
    assert all(row["measure_missing"] == 0.0 for row in unasked.values())


def test_a_rate_asked_per_week_conflicts_with_one_given_per_month_and_year(pool: Engine) -> None:
    rows = _rows(pool, "What does adult membership cost per week?")
    assert _row(rows, "£32 per month")["period_conflict"] == 1.0
    assert _row(rows, "locker key")["period_conflict"] == 0.0  # names no period: nothing to conflict with
    same = _rows(pool, "What does adult membership cost per month?")
    assert _row(same, "£32 per month")["period_conflict"] == 0.0


def _view(question: str) -> QuestionView:
    return Featurizer().question(question, "", TermStats(100))


def test_contractions_of_stop_words_are_not_terms_the_answer_must_contain() -> None:
    # "I'm" and "there's" used to count as capitalised names or content terms no sentence repeats
    plain, contracted = _view("can I pause my membership while travelling"), _view("can I pause my membership while I'm travelling")
    assert contracted.weights == plain.weights and contracted.entities == plain.entities == frozenset()
    assert _view("there's a fee for late returns?").weights.keys() == {"fee", "late", "return"}


def test_one_as_a_pronoun_is_not_a_number_the_question_states() -> None:
    assert _view("who is the owner of that one").numbers == frozenset()
    assert _view("who is the owner of that one").entities == frozenset()
    assert _view("how many desks are on floor 3").numbers == {"num:3"}  # a number as digits still counts
    assert "country:us" in _view("can I work from the US for a month").entities  # "US" is no pronoun


SHIPPING = """# Returns

Customers outside Canada cover the shipping for returns. Parcels to Mexico are sent by courier.

Returns are accepted within 30 days of delivery.
"""


@pytest.fixture(scope="module")
def shipping(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return engine_over_document(tmp_path_factory.mktemp("shipping"), "returns.md", SHIPPING)


def test_a_country_named_as_excluded_does_not_conflict_with_the_one_asked_about(shipping: Engine) -> None:
    rows = _rows(shipping, "I am in France: who covers the shipping when I send something back?")
    assert _row(rows, "outside Canada")["country_conflict"] == 0.0  # France is outside Canada: no other place named
    assert _row(rows, "to Mexico")["country_conflict"] == 1.0  # Mexico is another place than France


SCHOOL = """# Autumn newsletter

The school day ends at 15:20 for Reception to Year 2 and at 15:25 for Years 3 to 6.

Members of the Parents and Staff Association meet on the first Monday of each month in the library.
"""


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return engine_over_document(tmp_path_factory.mktemp("school"), "newsletter.md", SCHOOL)


def test_a_number_inside_a_range_the_sentence_gives_counts_as_repeated(school: Engine) -> None:
    assert _row(_rows(school, "what time does school finish for year 4"), "Years 3 to 6")["numbers_repeated"] == 1.0
    assert _row(_rows(school, "what time does school finish for year 9"), "Years 3 to 6")["numbers_repeated"] == 0.0


def test_an_acronym_is_found_in_the_name_it_abbreviates(school: Engine) -> None:
    row = _row(_rows(school, "when does the PSA meet"), "Parents and Staff Association")
    assert row["entity_unseen"] == 0.0 and row["entity_coverage"] == 1.0
    other = _row(_rows(school, "when does the PTA meet"), "Parents and Staff Association")
    assert other["entity_unseen"] == 1.0
