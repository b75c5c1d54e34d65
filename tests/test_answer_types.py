"""What a question asks for and the word knowledge behind it: features of the answerability model, on sentences written for these tests."""

from __future__ import annotations

import pytest

from qa.answer.lexicon import lexicon
from qa.answer.qtype import has_answer_type, question_type
from qa.text import words


def holds(question: str, sentence: str) -> bool:
    return has_answer_type(question_type(question), sentence, set(words(question)))


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many engineers joined the team?", "number"),
        ("When did the library reopen?", "date"),
        ("On what date was the contract signed?", "date"),
        ("What is the name of the supplier?", "name"),
        ("Who chairs the safety committee?", "person"),
        ("In which city is the warehouse?", "place"),
        ("Why was the launch delayed?", "reason"),
    ],
)
def test_questions_are_typed_by_what_they_ask_for(question: str, kind: str) -> None:
    assert question_type(question) == kind


def test_a_count_needs_a_number_the_question_does_not_state() -> None:
    assert holds("How many engineers joined the team?", "Twelve engineers joined the platform team in spring.")
    assert not holds("How many engineers joined the team?", "Engineers joined the platform team in spring.")


def test_a_month_or_a_nationality_is_not_a_person() -> None:
    assert not holds("Who approved the budget?", "The budget was approved by the board in March.")
    assert holds("Who approved the budget?", "The budget was approved by Priya Raman in March.")
    assert not holds("Who signed the treaty?", "The treaty was signed by several French delegates.")


def test_a_reason_needs_a_because() -> None:
    assert holds("Why was the launch delayed?", "The launch was delayed because a supplier missed a deadline.")
    assert not holds("Why was the launch delayed?", "The launch took place on a Tuesday.")


def test_countries_their_short_forms_and_adjectives_are_one_key() -> None:
    lex = lexicon()
    keys = {lex.tokens(text)[0] for text in ("US", "U.S.", "American", "America", "United States of America", "USA")}
    assert keys == {"country:us"}
    assert lex.tokens("British")[0] == lex.tokens("UK")[0] == "country:gb"
    assert lex.tokens("tell us")[1] == "us"  # the pronoun is not the country


def test_number_names_and_digits_are_one_key() -> None:
    lex = lexicon()
    assert lex.tokens("sixty")[0] == lex.tokens("60")[0] == "num:60"
    assert lex.tokens("$1,200")[0] == "num:1200"


def test_months_come_from_the_calendar_and_only_when_capitalised() -> None:
    lex = lexicon()
    assert lex.tokens("March")[0] == lex.tokens("Mar.")[0] == "month:3"
    assert lex.tokens("they march on")[1] == "march"


def test_negative_verbs_say_something_is_not_so() -> None:
    lex = lexicon()

    def negates(text: str) -> bool:
        tokens = lex.tokens(text)
        from qa.terms import stemmer as _stemmer

        return lex.negates(tokens, list(_stemmer().stemWords(tokens)))

    assert negates("The company denied the report.")
    assert negates("She refused to comment.")
    assert negates("It wasn't ready.")
    assert not negates("The company confirmed the report.")
