"""The chat page in Debian's Chromium, driven by Playwright: what a person sees and clicks.

`python tests/test_ui_browser.py docs/screenshot-chat.png` re-takes the README screenshot.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_server import SEED_QUESTION, SEED_QUOTE, ask_in_page, chromium, seed_settings, served, wait_for_answer

from qa import Engine, Settings
from qa.feedback import read_feedback

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow, pytest.mark.real_model]  # end to end as a user runs it


@pytest.fixture(scope="module")
def chat_page(seed_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    settings = seed_settings(tmp_path_factory.mktemp("browser"), seed_data_dir)
    with served(Engine(settings)) as (_, url):
        yield settings, url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any, chat_page: tuple[Settings, str]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.goto(chat_page[1])
    tab.locator("#qa-corpus .qa-corpus").wait_for(timeout=60_000)
    yield tab
    context.close()


def test_answer_shows_marker_sources_and_quote_and_thumbs_up_is_logged(
    page: Any, chat_page: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, _ = chat_page
    answer = ask_in_page(page, SEED_QUESTION)
    assert "national security adviser" in answer.locator(".qa-text").inner_text()
    assert answer.locator(".qa-ref").first.inner_text() == "[1]"
    assert "extractive" in answer.locator(".qa-badge-mode").inner_text()

    source = answer.locator("details.qa-source").first
    summary = source.locator("summary").inner_text()
    assert "[1]" in summary and "000_da55755936a874b9.txt" in summary and "paragraph 6" in summary
    assert not source.locator("mark").is_visible()  # collapsed until asked for
    source.locator("summary").click()
    assert source.locator("mark").is_visible()
    assert source.locator("mark").inner_text() == SEED_QUOTE
    assert "27 countries have ejected over 150 Russian diplomats" in source.locator(".qa-passage").inner_text()

    before = len(read_feedback(settings))
    page.locator("#qa-chat").get_by_role("button", name="Like").last.click()
    page.get_by_text("Thanks, your feedback is saved.").wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
    records = read_feedback(settings)
    assert len(records) == before + 1
    record = records[-1]
    assert record["helpful"] is True and record["channel"] == "web" and record["mode"] == "extractive"
    assert record["question"] == SEED_QUESTION and "national security adviser" in record["answer"]
    assert record["citations"][0]["quote"] == SEED_QUOTE and record["timestamp"]
    assert (tmp_path / "chat.png").stat().st_size > 10_000


def test_two_browser_sessions_keep_separate_conversations(browser: Any, chat_page: tuple[Settings, str]) -> None:
    settings, url = chat_page
    alice, bob = (browser.new_context().new_page() for _ in range(2))
    for tab in (alice, bob):
        tab.goto(url)
        tab.locator("#qa-corpus .qa-corpus").wait_for(timeout=60_000)
    # both questions are in flight at once
    for tab, question in ((alice, "Who is the UN Secretary General mentioned?"), (bob, SEED_QUESTION)):
        box = tab.locator("#qa-question textarea")
        box.fill(question)
        box.press("Enter")
    wait_for_answer(alice, 0)
    wait_for_answer(bob, 0)

    follow_up = ask_in_page(alice, "What did he say the crisis reminded him of?")
    assert "Cold War" in follow_up.inner_text()
    alice_questions = alice.locator("#qa-chat [data-testid='user']").all_inner_texts()
    assert alice_questions == ["Who is the UN Secretary General mentioned?", "What did he say the crisis reminded him of?"]
    assert bob.locator("#qa-chat [data-testid='user']").all_inner_texts() == [SEED_QUESTION]

    alice.locator("#qa-chat").get_by_role("button", name="Dislike").last.click()
    alice.get_by_text("Thanks, your feedback is saved.").wait_for(timeout=30_000)
    record = read_feedback(settings)[-1]
    assert record["helpful"] is False
    assert record["history"] == ["Who is the UN Secretary General mentioned?"]
    for tab in (alice, bob):
        tab.context.close()


def test_empty_and_over_long_messages_get_polite_replies(page: Any) -> None:
    page.locator("#qa-send").click()
    reply = wait_for_answer(page, 0).inner_text()
    assert "type a question about the documents" in reply, reply
    long_question = "Why? " * 450
    page.locator("#qa-question textarea").fill(long_question)
    page.locator("#qa-send").click()
    reply = wait_for_answer(page, 1).inner_text()
    assert "too long" in reply, reply
    kept = page.locator("#qa-question textarea").input_value()
    assert kept == long_question, kept[:200]  # kept, to be shortened
    answer = ask_in_page(page, "How many US diplomats will Russia expel?")  # the page still answers
    assert "60" in answer.locator(".qa-text").inner_text(), answer.inner_text()


def test_a_hostile_question_is_shown_as_text(page: Any) -> None:
    ask_in_page(page, "<img src=x onerror=\"document.title='owned'\"> <b>Putin</b>?")
    question = page.locator("#qa-chat [data-testid='user']").last
    assert question.inner_text() == "<img src=x onerror=\"document.title='owned'\"> <b>Putin</b>?"
    assert question.locator("img, b").count() == 0
    assert page.title() != "owned"


def test_uploaded_file_is_indexed_and_a_wrong_one_is_explained(browser: Any, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / ".qa", seeds_dir=tmp_path / "seeds", _env_file=None)
    settings.seeds_dir.mkdir()
    (settings.seeds_dir / "fleet.txt").write_text("The fleet left Sevastopol on Monday.\n", encoding="utf-8")
    engine = Engine(settings)
    engine.ingest(settings.seeds_dir)
    good = tmp_path / "interpreters.md"
    good.write_text("The Kyiv embassy hired twelve interpreters in May.\n", encoding="utf-8")
    bad = tmp_path / "scan.txt"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")  # an image saved as .txt
    with served(engine) as (_, url):
        tab = browser.new_context().new_page()
        tab.goto(url)
        tab.locator("#qa-corpus").get_by_text("1 document, 1 chunks indexed").wait_for(timeout=60_000)
        tab.locator("#qa-upload input[type=file]").set_input_files([str(good), str(bad)])
        tab.locator("#qa-status").get_by_text("interpreters.md: added and indexed.").wait_for(timeout=60_000)
        assert "scan.txt: looks like a binary file" in tab.locator("#qa-status").inner_text()
        assert "2 documents, 2 chunks indexed" in tab.locator("#qa-corpus").inner_text()
        answer = ask_in_page(tab, "How many interpreters did the Kyiv embassy hire?")
        assert "twelve interpreters" in answer.locator(".qa-text").inner_text()
        assert "interpreters.md" in answer.locator(".qa-source summary").first.inner_text()
        tab.context.close()
    assert sorted(p.name for p in settings.seeds_dir.iterdir()) == ["fleet.txt", "interpreters.md"]


def take_readme_screenshot(target: Path) -> None:
    """An answered seed question with its first source open, for the README."""
    import tempfile

    from conftest import SEEDS

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / ".qa", seeds_dir=SEEDS, _env_file=None)
        engine = Engine(settings)
        engine.ingest(SEEDS)
        with served(engine) as (_, url), chromium() as b:
            tab = b.new_page(viewport={"width": 1280, "height": 820}, device_scale_factor=1)
            tab.goto(url)
            tab.locator("#qa-corpus .qa-corpus").wait_for(timeout=60_000)
            answer = ask_in_page(tab, SEED_QUESTION)
            answer.locator("details.qa-source summary").first.click()
            tab.mouse.move(0, 0)
            tab.screenshot(path=str(target))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    take_readme_screenshot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot-chat.png"))
