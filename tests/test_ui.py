"""The chat page over HTTP, as `gradio_client` (a real client) and `qa chat` users see it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from ui_server import SEED_QUESTION, SEED_QUOTE, seed_settings, served

from qa import Engine, Settings
from qa.cli import main
from qa.errors import LLMUnavailableError
from qa.types import Answer, Citation

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def seed_page(seed_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """The chat page on the seed index, served once for the module."""
    settings = seed_settings(tmp_path_factory.mktemp("ui"), seed_data_dir)
    with served(Engine(settings)) as page:
        yield page


def client(url: str, **kwargs: Any) -> Any:
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False, **kwargs)


def bot_text(messages: list[dict[str, Any]]) -> str:
    """The last assistant message's HTML, as the Chatbot holds it."""
    return "".join(part["text"] for part in messages[-1]["content"] if part.get("type") == "text")


def test_seed_question_returns_answer_text_and_citations(seed_page: tuple[Any, str]) -> None:
    _, url = seed_page
    box, messages, answer = client(url).predict(SEED_QUESTION, api_name="/chat")
    assert box == ""
    assert "national security adviser" in answer["text"] and "[1]" in answer["text"]
    cite = answer["citations"][0]
    assert cite["source"] == "000_da55755936a874b9.txt" and cite["paragraph"] == 6
    assert cite["quote"] == SEED_QUOTE
    html = bot_text(messages)
    assert '<span class="qa-ref">[1]</span>' in html
    assert f"<mark>{SEED_QUOTE}</mark>" in html
    assert "extractive" in html


def test_follow_up_uses_this_sessions_history(seed_page: tuple[Any, str]) -> None:
    _, url = seed_page
    alice, bob = client(url), client(url)
    alice.predict("Who is the UN Secretary General mentioned?", api_name="/chat")
    bob.predict(SEED_QUESTION, api_name="/chat")
    _, messages, answer = alice.predict("What did he say the crisis reminded him of?", api_name="/chat")
    assert "Cold War" in answer["text"]
    assert answer["retrieval_query"].startswith("Who is the UN Secretary General mentioned?")
    shown = " ".join(bot_text([m]) for m in messages if m["role"] == "user")
    assert "Mark Sedwill" not in shown
    assert len(messages) == 4


def test_unanswerable_question_is_shown_as_abstention_without_sources(seed_page: tuple[Any, str]) -> None:
    _, url = seed_page
    _, messages, answer = client(url).predict("What is the capital of Peru?", api_name="/chat")
    assert answer["abstained"] and answer["citations"] == []
    html = bot_text(messages)
    assert "The documents don" in html and "no answer in the documents" in html
    assert "qa-sources" not in html


def test_empty_message_gets_a_polite_reply(seed_page: tuple[Any, str]) -> None:
    _, url = seed_page
    box, messages, answer = client(url).predict("   ", api_name="/chat")
    assert [m["role"] for m in messages] == ["assistant"]
    assert "type a question about the documents" in bot_text(messages)
    assert box == ""


def test_over_long_message_gets_a_polite_reply_and_stays_in_the_box(seed_page: tuple[Any, str]) -> None:
    _, url = seed_page
    question = "Why? " * 500
    box, messages, _ = client(url).predict(question, api_name="/chat")
    reply = bot_text(messages)
    assert "too long" in reply and "2,000" in reply
    assert box == question
    user = bot_text(messages[:1])
    assert len(user) < 400 and user.endswith("…</div>")


def test_page_binds_loopback_without_share_link(seed_page: tuple[Any, str]) -> None:
    app, url = seed_page
    assert url.startswith("http://127.0.0.1:")
    assert app.server_name == "127.0.0.1"
    assert app.share_url is None
    assert requests.get(url, timeout=10).status_code == 200


def test_questions_and_documents_are_never_rendered_as_html(seed_page: tuple[Any, str]) -> None:
    _, url = seed_page
    _, messages, _ = client(url).predict("<img src=x onerror=alert(1)> who is <b>Putin</b>?", api_name="/chat")
    user = bot_text(messages[:1])
    assert "<img" not in user and "&lt;img src=x onerror=alert(1)&gt;" in user
    assert "&lt;b&gt;Putin&lt;/b&gt;" in user


# -- a scripted engine: the real Engine with a fixed stream, for the LLM-shaped and failing paths --


class ScriptedEngine(Engine):
    """Streams a fixed LLM-style answer in pieces; some questions fail the way a real backend does."""

    def stream(self, question: str, history: Any = None, *, k: int | None = None) -> Iterator[str | Answer]:
        if "explode" in question:
            raise RuntimeError("scripted failure")
        if "offline" in question:
            raise LLMUnavailableError("The LLM server at http://127.0.0.1:9 is unreachable. Start it, or unset QA_LLM_BASE_URL.")
        if "real engine" in question:
            yield from super().stream(question, history, k=k)
            return
        pieces = ["Russia will ", "expel 60 ", "US diplomats [1]."]
        yield from pieces
        quote = "Russia announced on Thursday that it will expel 60 US diplomats"
        yield Answer(
            text="".join(pieces),
            citations=[Citation(1, "news.md", "Expulsions", 1, 0, len(quote), quote, 1.0, passage=quote + " and more.")],
            mode="llm:tiny-llm",
            grounded="ungrounded" not in question,
            notice="Answered by tiny-llm; check the quotes." if "notice" in question else None,
            question=question,
        )


@pytest.fixture(scope="module")
def scripted_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    root = tmp_path_factory.mktemp("scripted")
    settings = Settings(data_dir=root / ".qa", seeds_dir=root / "seeds", _env_file=None)
    with served(ScriptedEngine(settings)) as page:
        yield page


def test_llm_answer_streams_in_pieces_then_shows_model_badge(scripted_page: tuple[Any, str]) -> None:
    _, url = scripted_page
    job = client(url).submit("How many diplomats? notice", api_name="/chat")
    box, messages, answer = job.result(timeout=60)
    partial = [bot_text(out[1]) for out in job.outputs() if out[2] is None and out[1]]
    assert any("Russia will" in html and "qa-badges" not in html for html in partial)
    html = bot_text(messages)
    assert "LLM · tiny-llm" in html
    assert "Answered by tiny-llm; check the quotes." in html
    assert "ungrounded" not in html
    assert answer["mode"] == "llm:tiny-llm"


@pytest.mark.slow
def test_llm_mode_streams_through_the_page_and_falls_back_visibly(seed_data_dir: Path, tmp_path: Path) -> None:
    from fake_openai import FakeOpenAI, Reply

    with FakeOpenAI() as fake:
        settings = seed_settings(
            tmp_path, seed_data_dir, llm_base_url=fake.base_url, llm_model="fake-model", llm_retries=0, llm_timeout=10.0
        )
        with served(Engine(settings)) as (_, url):
            fake.reply(Reply(text="Mark Sedwill is Britain's national security adviser [1].", chunk_chars=6))
            job = client(url).submit(SEED_QUESTION, api_name="/chat")
            _, messages, answer = job.result(timeout=120)
            partial = [bot_text(out[1]) for out in job.outputs() if out[2] is None and out[1]]
            assert any("Mark S" in html and "qa-badges" not in html for html in partial)
            html = bot_text(messages)
            assert "Mark Sedwill is Britain&#x27;s national security adviser" in html
            assert "LLM · fake-model" in html and answer["mode"] == "llm:fake-model"
            assert answer["citations"] and "qa-sources" in html

            fake.reply(Reply(text="Mark Sedwill is Britain's national security adviser [1].", chunk_chars=5, truncate_after=3))
            _, messages, answer = client(url).predict(SEED_QUESTION, api_name="/chat")
            html = bot_text(messages)
            assert answer["mode"] == "extractive" and "stopped mid-answer" in answer["notice"]
            assert "stopped mid-answer" in html and "extractive" in html
            assert html.count("Mark Sedwill") >= 1 and "Mark Sedwill is<" not in html  # the cut-off text is replaced


def test_ungrounded_answer_carries_a_warning(scripted_page: tuple[Any, str]) -> None:
    _, url = scripted_page
    _, messages, _ = client(url).predict("How many diplomats? ungrounded", api_name="/chat")
    assert "⚠ ungrounded" in bot_text(messages)


def test_engine_failures_get_polite_replies_and_the_page_keeps_serving(scripted_page: tuple[Any, str]) -> None:
    _, url = scripted_page
    session = client(url)
    _, messages, _ = session.predict("please explode", api_name="/chat")
    reply = bot_text(messages)
    assert "Sorry, something went wrong" in reply and "try again" in reply
    assert "scripted failure" not in reply  # internals stay in the server log unless QA_DEBUG=1
    _, messages, _ = session.predict("are you offline?", api_name="/chat")
    assert "unreachable" in bot_text(messages) and bot_text(messages).startswith('<div class="qa-error">Sorry')
    _, messages, answer = session.predict("How many diplomats?", api_name="/chat")
    assert answer["text"] == "Russia will expel 60 US diplomats [1]."
    # failed turns are not history: only the answered question is in the conversation state
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3


def test_asking_before_anything_is_indexed_says_how_to_index(scripted_page: tuple[Any, str]) -> None:
    _, url = scripted_page
    _, messages, _ = client(url).predict("Who is Putin? (real engine)", api_name="/chat")
    assert "no documents are indexed yet" in bot_text(messages) and "Re-index seeds" in bot_text(messages)


def test_thumbs_are_recorded_only_for_answers(tmp_path: Path) -> None:
    import gradio as gr

    from qa.feedback import read_feedback
    from qa.ui import ChatPage, new_session

    settings = Settings(data_dir=tmp_path / ".qa", seeds_dir=tmp_path / "seeds", _env_file=None)
    page = ChatPage(ScriptedEngine(settings), settings)
    state = new_session()
    for question in ("please explode", "How many diplomats?"):
        *_, (_, messages, state, _) = page.chat(question, state)
    page.feedback(state, gr.LikeData(None, {"index": 1, "value": [], "liked": True}), None)  # the error reply
    page.feedback(state, gr.LikeData(None, {"index": 3, "value": [], "liked": ""}), None)  # a thumb taken back
    assert read_feedback(settings) == []
    page.feedback(state, gr.LikeData(None, {"index": 3, "value": [], "liked": False}), None)
    (record,) = read_feedback(settings)
    assert record["helpful"] is False and record["channel"] == "web" and record["mode"] == "llm:tiny-llm"
    assert record["question"] == "How many diplomats?" and record["citations"][0]["source"] == "news.md"


def test_login_is_required_when_ui_auth_is_set(seed_data_dir: Path, tmp_path: Path) -> None:
    from gradio_client import Client

    settings = Settings(data_dir=tmp_path / ".qa", seeds_dir=tmp_path / "seeds", ui_auth="ann:s3cret", _env_file=None)
    with served(ScriptedEngine(settings)) as (_, url):
        assert requests.get(url + "config", timeout=10).status_code == 401
        with pytest.raises(Exception):
            Client(url, verbose=False)
        _, _, answer = Client(url, auth=("ann", "s3cret"), verbose=False).predict("How many?", api_name="/chat")
        assert answer["mode"] == "llm:tiny-llm"


def test_malformed_ui_auth_says_how_to_fix_it(tmp_path: Path) -> None:
    from qa.errors import ConfigError
    from qa.ui import parse_auth

    with pytest.raises(ConfigError, match="user:password"):
        parse_auth(Settings(ui_auth="no-colon", _env_file=None))


# -- the corpus panel ---------------------------------------------------------------------------


def test_reindex_reports_an_unchanged_seeds_folder(seed_page: tuple[Any, str]) -> None:
    _, url = seed_page
    status, docs = client(url).predict(api_name="/reindex")
    assert "0 added" in status and "1 unchanged" in status and "0 chunks embedded" in status
    assert "1 document, 7 chunks indexed" in docs


@pytest.mark.slow
def test_uploads_are_saved_under_seeds_with_safe_names_and_indexed(tmp_path: Path) -> None:
    from qa.ui import ChatPage

    settings = Settings(data_dir=tmp_path / ".qa", seeds_dir=tmp_path / "seeds", max_upload_mb=1, _env_file=None)
    settings.seeds_dir.mkdir()
    (settings.seeds_dir / "fleet.txt").write_text("The fleet left Sevastopol on Monday.\n", encoding="utf-8")
    page = ChatPage(Engine(settings), settings)
    page.engine.ingest(settings.seeds_dir)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    good = incoming / "Kyiv notes (draft).md"
    good.write_text("# Kyiv notes\n\nThe Kyiv embassy hired twelve interpreters in May.\n", encoding="utf-8")
    script = incoming / "evil.html"
    script.write_text("<script>alert(1)</script>", encoding="utf-8")
    binary = incoming / "scan.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")  # an image saved as .txt
    huge = incoming / "huge.txt"
    huge.write_text("word " * 300_000, encoding="utf-8")

    status, docs, cleared = page.upload([str(good), str(script), str(binary), str(huge)])
    assert cleared is None
    assert "Kyiv notes (draft).md: added and indexed (saved as Kyiv_notes_draft.md)." in status
    assert "evil.html: no text in it" in status  # HTML is accepted (issue 15); a script alone is not text
    assert "scan.txt: looks like a binary file" in status
    assert "huge.txt: 1.5 MB is over the 1 MB limit" in status
    assert sorted(p.name for p in settings.seeds_dir.iterdir()) == ["Kyiv_notes_draft.md", "fleet.txt"]
    assert "2 documents, 2 chunks indexed" in docs and "Kyiv_notes_draft.md" in docs
    answer = page.engine.ask("How many interpreters did the Kyiv embassy hire?")
    assert answer.citations[0].source == "Kyiv_notes_draft.md"


def test_upload_names_cannot_escape_the_seeds_folder() -> None:
    from qa.errors import InputError
    from qa.ui import safe_filename

    assert safe_filename("../../etc/cron.d/evil.md") == "evil.md"
    assert safe_filename("..\\..\\boot.TXT") == "boot.txt"
    assert safe_filename(".hidden.md") == "hidden.md"
    assert safe_filename("...md") == "upload.md"
    with pytest.raises(InputError):
        safe_filename("notes.md.exe")


def test_an_upload_never_overwrites_an_existing_document(tmp_path: Path) -> None:
    from qa.ui import save_upload

    settings = Settings(data_dir=tmp_path / ".qa", seeds_dir=tmp_path / "seeds", _env_file=None)
    settings.seeds_dir.mkdir()
    (settings.seeds_dir / "notes.md").write_text("original", encoding="utf-8")
    upload = tmp_path / "notes.md"
    upload.write_text("new version", encoding="utf-8")
    assert save_upload(upload, settings) == "notes-2.md"
    assert (settings.seeds_dir / "notes.md").read_text(encoding="utf-8") == "original"
    assert save_upload(upload, settings) == "notes-2.md"  # the same file again is not duplicated


# -- `qa chat` ----------------------------------------------------------------------------------


def test_chat_help_names_host_and_port() -> None:
    # `qa chat` itself, started as a user starts it, is in test_secrets.py: one gradio process serves both stories
    help_text = CliRunner().invoke(main, ["chat", "--help"]).output
    assert "--host" in help_text and "--port" in help_text and "127.0.0.1" in help_text
