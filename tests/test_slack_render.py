"""How an answer looks in Slack (Block Kit), and how a thread reads back as history: pure functions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qa.errors import IndexMissingError, InputError, LLMUnavailableError, PromptError, StoreError
from qa.slack import question_text, thread_history
from qa.slack_render import (
    FAILURE_TEXT,
    HELPFUL_ACTION,
    LOOKING_TEXT,
    UNHELPFUL_ACTION,
    answer_blocks,
    answer_from_feedback_value,
    error_text,
    fallback_text,
)
from qa.types import Answer, Citation


def citation(n: int = 1, quote: str = "Russia will expel 60 US diplomats.", **overrides: Any) -> Citation:
    fields: dict[str, Any] = dict(n=n, source="news.txt", title="News", paragraph=3, start=10, end=10 + len(quote),
                                  quote=quote, score=0.9, passage="a long passage " * 50)
    return Citation(**(fields | overrides))


def texts(blocks: list[dict[str, Any]], kind: str) -> list[str]:
    out = []
    for b in blocks:
        if b["type"] == kind == "section":
            out.append(b["text"]["text"])
        elif b["type"] == kind == "context":
            out.extend(e["text"] for e in b["elements"])
    return out


def test_answer_blocks_show_text_then_numbered_sources_then_buttons() -> None:
    answer = Answer(text="Russia will expel 60 US diplomats. [1]", citations=[citation()], question="How many?")

    blocks = answer_blocks(answer)

    assert [b["type"] for b in blocks] == ["section", "context", "actions"]
    assert texts(blocks, "section") == ["Russia will expel 60 US diplomats. [1]"]
    assert texts(blocks, "context") == ["*Sources*\n*[1]* news.txt, paragraph 3: “Russia will expel 60 US diplomats.”"]
    assert [e["action_id"] for e in blocks[-1]["elements"]] == [HELPFUL_ACTION, UNHELPFUL_ACTION]


def test_document_text_is_escaped_for_mrkdwn() -> None:
    quote = "Profits <b>rose</b> & fell > 5% <@U123> <!channel>"
    answer = Answer(text=f"{quote} [1]", citations=[citation(quote=quote, source="a<b>&c.txt")])

    blocks = answer_blocks(answer)

    section = texts(blocks, "section")[0]
    assert section == "Profits &lt;b&gt;rose&lt;/b&gt; &amp; fell &gt; 5% &lt;@U123&gt; &lt;!channel&gt; [1]"
    sources = texts(blocks, "context")[0]
    assert "a&lt;b&gt;&amp;c.txt" in sources
    assert "<" not in sources and "<" not in fallback_text(answer)


def test_long_quotes_are_shortened_in_the_sources() -> None:
    quote = "word " * 200
    blocks = answer_blocks(Answer(text="x [1]", citations=[citation(quote=quote)]))
    line = texts(blocks, "context")[0].splitlines()[1]
    assert line.endswith("…”")
    assert len(line) < 250


def test_abstention_is_said_plainly_without_sources() -> None:
    answer = Answer(text="The documents don't say. Nothing in the indexed documents answers this question.",
                    abstained=True)
    blocks = answer_blocks(answer)
    assert texts(blocks, "section") == [answer.text]
    assert texts(blocks, "context") == []
    assert blocks[-1]["type"] == "actions"


def test_ungrounded_llm_answer_is_marked_and_notice_shown() -> None:
    answer = Answer(text="It is **probably** sixty.", mode="llm", grounded=False,
                    notice="The language model timed out twice; retried.")
    blocks = answer_blocks(answer)
    assert texts(blocks, "section") == ["It is *probably* sixty."]
    notes = texts(blocks, "context")
    assert notes[0].startswith(":warning: *Not grounded:*")
    assert notes[1] == ":information_source: The language model timed out twice; retried."


def test_extractive_text_keeps_its_asterisks() -> None:
    assert texts(answer_blocks(Answer(text="A **b** c. [1]")), "section") == ["A **b** c. [1]"]


def test_very_long_answer_is_split_into_sections_within_block_kit_limits() -> None:
    answer = Answer(text=" ".join(f"Sentence number {i} says something." for i in range(600)), mode="llm")
    blocks = answer_blocks(answer)
    sections = texts(blocks, "section")
    assert len(sections) > 1
    assert all(len(s) <= 3000 for s in sections)
    assert len(blocks) <= 50
    assert len(fallback_text(answer)) <= 3000


def test_button_value_fits_and_carries_question_and_citations() -> None:
    answer = Answer(text="Sixty. [1] [2]", citations=[citation(1), citation(2, quote="q " * 600)],
                    question="How many diplomats?", mode="extractive")
    value = answer_blocks(answer)[-1]["elements"][0]["value"]
    assert len(value) <= 2000

    restored = answer_from_feedback_value(value, text="Sixty. [1] [2]")

    assert restored.question == "How many diplomats?"
    assert restored.text == "Sixty. [1] [2]"
    assert [c.n for c in restored.citations] == [1, 2]
    assert restored.citations[0].quote == "Russia will expel 60 US diplomats."
    assert (restored.citations[0].start, restored.citations[0].paragraph) == (10, 3)
    assert restored.citations[0].score == answer.citations[0].score


def test_button_value_fits_even_for_the_longest_question() -> None:
    answer = Answer(text="x", citations=[citation(n, quote="q " * 400) for n in range(1, 11)], question="why " * 500)
    value = answer_blocks(answer)[-1]["elements"][0]["value"]
    assert len(value) <= 2000
    data = json.loads(value)
    assert data["q"].startswith("why why")
    assert len(data["c"]) == 10


def test_unreadable_button_value_still_logs_the_text() -> None:
    assert answer_from_feedback_value("not json", text="a &amp; b").text == "a & b"


def test_error_replies_explain_question_problems_but_hide_server_details() -> None:
    assert error_text(InputError("The question is empty: type a question.")) == (
        "Sorry, I couldn't answer that. The question is empty: type a question."
    )
    hidden = [IndexMissingError("No index yet in /srv/qa/.qa"), StoreError("chroma at 10.0.0.5:8000 refused"),
              LLMUnavailableError("api.internal:11434 down"), PromptError("/srv/prompts/answer.md missing")]
    replies = [error_text(e) for e in hidden]
    assert all(r.startswith("Sorry") for r in replies)
    assert not any(secret in r for r in replies for secret in ("/srv", "10.0.0.5", "api.internal"))
    assert error_text(PromptError("x")) == FAILURE_TEXT


def test_question_text_drops_the_bot_mention_and_reads_slack_markup() -> None:
    text = "<@UQABOT>  what did <@U42|bob> say in <#C1|general> about <https://x.test/a|the memo> &amp; &lt;it&gt;?"
    assert question_text(text, "UQABOT") == "what did @bob say in #general about the memo & <it>?"
    assert question_text("<@UQABOT>", "UQABOT") == ""


def test_thread_history_maps_our_replies_to_assistant_and_people_to_user() -> None:
    messages = [
        {"ts": "100.000001", "user": "UALICE", "text": "<@UQABOT> Who is the UN Secretary General?"},
        {"ts": "100.000002", "user": "UQABOT", "bot_id": "BQABOT", "text": "Antonio Guterres &amp; co. [1]"},
        {"ts": "100.000003", "user": "UQABOT", "bot_id": "BQABOT", "text": LOOKING_TEXT},
        {"ts": "100.000004", "bot_id": "BOTHER", "subtype": "bot_message", "text": "Build passed"},
        {"ts": "100.000005", "user": "UBOB", "text": "<@UQABOT> What did he say?"},
        {"ts": "100.000006", "user": "UALICE", "text": "later message"},
    ]

    history = thread_history(messages, before="100.000005", bot_user_id="UQABOT", bot_id="BQABOT")

    assert history == [
        {"role": "user", "content": "Who is the UN Secretary General?"},
        {"role": "assistant", "content": "Antonio Guterres & co. [1]"},
    ]


def test_sources_name_folder_and_page_or_section_and_quote_plain_text() -> None:
    answer = Answer(
        text="Trips need **written approval** from a [manager](https://intranet.example.org/m). [1]",
        citations=[citation(quote="Trips need **written approval** from a [manager](https://intranet.example.org/m).",
                            folder="docs", source="travel.md", section="Travel policy", markup="markdown"),
                   citation(n=2, folder="docs", source="handbook.pdf", page=2)],
    )
    blocks = answer_blocks(answer)
    main = texts(blocks, "section")[0]
    assert main.startswith("Trips need *written approval* from a <https://intranet.example.org/m|manager>.")
    sources = texts(blocks, "context")[-1]
    assert "*[1]* docs/travel.md, § Travel policy, paragraph" in sources
    assert "“Trips need written approval from a manager.”" in sources
    assert "*[2]* docs/handbook.pdf, page 2:" in sources


def test_answer_from_dict_rebuilds_what_to_dict_wrote() -> None:
    from qa.types import Chunk, Sentence, UnsupportedSentence

    chunk = Chunk(id="c1", source="guide.md", title="Guide", paragraph=2, start=100, end=140,
                  text="Leave is 25 days. Ask HR for more days.", sentences=(Sentence(100, 117), Sentence(118, 140)),
                  page=3, section="Leave › Annual", root="/docs", markup="markdown")
    answer = Answer(
        text="Leave is 25 days [1]. It is paid.", citations=[chunk.cite(1, 0, 0.87654)], abstained=False,
        mode="llm:tiny", timings={"total_ms": 12.5}, grounded=False, notice="fell back", question="How much leave?",
        retrieval_query="leave days", retrieved=[chunk], prompts={"answer": [{"role": "user", "content": "q"}]},
        unsupported_sentences=[UnsupportedSentence(start=22, end=34, text="It is paid.", reason="uncited", missing=("paid",))],
    )
    data = answer.to_dict(with_retrieved=True, with_prompts=True)
    rebuilt = Answer.from_dict(json.loads(json.dumps(data)))  # through JSON, as a Slack button or the API carries it
    assert rebuilt == answer
    assert rebuilt.to_dict(with_retrieved=True, with_prompts=True) == data
    assert rebuilt.citations[0].label == "docs/guide.md" and rebuilt.citations[0].location == "page 3, § Leave › Annual"
    assert Answer.from_dict(Answer(text="The documents don't say.", abstained=True).to_dict()).abstained is True


def test_answer_from_dict_refuses_what_is_not_an_answer() -> None:
    with pytest.raises(ValueError, match="`text` string"):
        Answer.from_dict({"text": 3})
