"""What a question asks for, and which sentences hold it: the checks that decide when the offline answerer abstains."""

from __future__ import annotations

import pytest

from qa.answer.qtype import wanted
from qa.text import words

US_EXPULSION = "Russia announced on Thursday that it will expel 60 US diplomats and an unknown number of envoys from other countries."
AGENCY = "Speaking to a news agency in Moscow, Russian lawmaker Vladimir Dzhabarov said that Trump has been pressured."


def holds(question: str, sentence: str) -> bool:
    return wanted(question).found_in(sentence, set(words(question)))


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many diplomats were expelled?", "number"),
        ("When did Russia announce it?", "date"),
        ("What is the exact calendar date on which Russia announced the expulsion?", "date"),
        ("What is the name of the news agency?", "name"),
        ("Who is the UN Secretary General?", "person"),
        ("In which British town did it happen?", "place"),
        ("Why did Russia expel the diplomats?", "reason"),
    ],
)
def test_questions_are_typed_by_what_they_ask_for(question: str, kind: str) -> None:
    assert wanted(question).kind == kind


def test_a_count_must_count_the_thing_asked_about() -> None:
    assert holds("How many US diplomats will Russia expel?", US_EXPULSION)
    assert not holds("How many days do the US diplomats have to leave Russia?", US_EXPULSION)


def test_a_count_of_something_else_qualified_does_not_answer() -> None:
    # 60 *US* diplomats do not answer for British or Russian ones …
    assert not holds("How many British diplomats did Russia expel?", US_EXPULSION)
    assert not holds("How many Russian diplomats did the United States expel?", US_EXPULSION)
    # … but an unqualified mention of the noun still may ("an unknown number of envoys")
    assert holds("How many American envoys is Moscow sending home?", US_EXPULSION)


def test_counts_of_things_may_name_them_otherwise() -> None:
    assert holds("How many people lived in the colonies?", "The colonies had a population of roughly 60,000 settlers.")
    assert holds("How many nations kicked out Russian diplomats?", "27 countries have ejected over 150 Russian diplomats.")


def test_a_calendar_date_is_more_than_a_weekday() -> None:
    assert holds("When did Russia announce the expulsion?", US_EXPULSION)
    assert not holds("What is the exact calendar date on which Russia announced the expulsion?", US_EXPULSION)
    assert holds("On what date did Russia announce the expulsion?", "Russia announced on 29 March 2018 that it would expel them.")
    assert not holds("In what year did the crisis begin?", "The crisis began on a Thursday.")
    assert holds("In what year did the crisis begin?", "The crisis began in October 1973.")


def test_a_name_must_be_given_next_to_the_thing_named() -> None:
    # "in Moscow" says where the agency is and "Russian" describes the lawmaker: neither names the agency
    assert not holds("What is the name of the news agency Dzhabarov spoke to?", AGENCY)
    assert holds("What is the name of the news agency Dzhabarov spoke to?", "Dzhabarov told the news agency Interfax that it was a plot.")


def test_a_question_about_what_is_not_so_needs_a_sentence_that_says_not() -> None:
    assert wanted("Where wasn't the war fought?").negated
    assert wanted("Which American leader has not yet spoken out publicly against Putin?").negated
    assert not wanted("Can the problem be solved whether or not it is decidable?").negated


def test_numbers_the_question_states_must_be_repeated() -> None:
    want = wanted("What did the price of oil rise to in 1979?")
    assert want.repeats_numbers("In 1979 the price of oil rose to $39.50.")
    assert not want.repeats_numbers("In 1973 the price of oil rose to $12.")
    assert wanted("Why did British operations fail in 1755, 56, 57?").repeats_numbers(
        "British operations in 1755, 1756 and 1757 all failed."
    )


def test_a_percentage_is_not_answered_by_a_year() -> None:
    assert not holds("What percentage of people died in Central Asia?", "The plague reached Crimea by 1343.")
    assert holds("What percentage of people died in Europe?", "The plague killed 30–60% of Europe's population.")
