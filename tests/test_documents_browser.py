"""The chat page in Debian's Chromium: a cited source opens inside its whole document, scrolled to the quote."""

from __future__ import annotations

from pathlib import Path

import pytest
from ui_server import ask_in_page, chromium, served

from qa import Engine, Settings

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

FILLER = "The tide tables for week {n} were posted at the gate, as every week. Nothing unusual happened."


def test_a_source_opens_in_its_document_scrolled_to_the_highlight(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    paragraphs = [FILLER.format(n=n) for n in range(1, 80)]
    paragraphs.insert(70, "The harbour master keeps the spare keys in a **red box** under the counter.")
    (seeds / "harbour.md").write_text("# Harbour log\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
    settings = Settings(data_dir=tmp_path / ".qa", seeds_dir=seeds, _env_file=None)
    engine = Engine(settings)
    engine.ingest(seeds)
    with served(engine) as (_, url), chromium() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(url)
        page.locator("#qa-corpus .qa-corpus").wait_for(timeout=60_000)
        answer = ask_in_page(page, "What does the harbour master keep in the red box?")
        assert "red box" in answer.locator(".qa-text").inner_text()
        assert answer.locator(".qa-text strong").inner_text() == "red box"  # Markdown emphasis rendered
        source = answer.locator("details.qa-source").first
        assert "seeds/harbour.md" in source.locator("summary").inner_text()
        assert "§ Harbour log" in source.locator("summary").inner_text()
        source.locator("summary").click()
        box = source.locator(".qa-document")
        mark = box.locator("mark")
        mark.wait_for(state="visible")
        assert "week 1 were posted" in box.inner_text()  # the whole document, from its start
        page.wait_for_function(
            "(box) => box.scrollTop > 0", arg=box.element_handle(), timeout=5_000
        )
        inner, outer = mark.bounding_box(), box.bounding_box()
        assert inner is not None and outer is not None
        assert outer["y"] <= inner["y"] and inner["y"] + inner["height"] <= outer["y"] + outer["height"]
