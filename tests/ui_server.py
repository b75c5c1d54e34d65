"""Helpers for the chat page tests: the app served on a free loopback port, Chromium through Playwright."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import SEEDS, free_port

from qa import Engine, Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
SEED_QUESTION = "What is Mark Sedwill's job?"
SEED_QUOTE = (
    "Britain’s national security adviser Mark Sedwill called the move a “powerful western message” "
    "in response toward what he called an increased aggressive behavior by Moscow."
)


def seed_settings(root: Path, seed_data_dir: Path, **overrides: Any) -> Settings:
    """Settings over a private copy of the seed index, on the repository's seeds/ (read-only use).

    The index is keyed by the seeds folder's path, so re-indexing seeds/ finds it unchanged. Tests
    that upload files use their own small seeds folder instead, never the repository's.
    """
    data = root / ".qa"
    shutil.copytree(seed_data_dir, data, dirs_exist_ok=True)
    return Settings(data_dir=data, seeds_dir=SEEDS, _env_file=None, **overrides)


@contextmanager
def served(engine: Engine, settings: Settings | None = None) -> Iterator[tuple[Any, str]]:
    """`build_app` + `serve` on 127.0.0.1 in this process; yields (app, url) and closes it after."""
    from qa.ui import build_app, serve

    settings = settings or engine.settings
    app = build_app(engine, settings)
    url = serve(app, settings, host="127.0.0.1", port=free_port(), block=False)
    try:
        yield app, url
    finally:
        close(app)


def close(app: Any) -> None:
    """`app.close()`, with the stop event set on the server's own loop first.

    gradio's `close()` sets the asyncio Event its streaming handlers await from the calling thread; when a
    handler adds its waiter at that moment, the server's loop and this thread change the waiters at once
    ("RuntimeError: deque mutated during iteration", seen once in a loaded run). Set on its loop, the event
    is already set when `close()` looks, and `close()` goes on to stop the server.
    """
    event = app.app.stop_event
    loop = getattr(event, "_loop", None)  # asyncio binds an Event to its loop on the first wait
    if loop is not None and loop.is_running():

        async def stop() -> None:
            event.set()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
    app.close(verbose=False)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def ask_in_page(page: Any, question: str, *, answers_before: int | None = None) -> Any:
    """Type `question`, press Enter, wait for its finished answer; returns that bot message."""
    bots = page.locator("#qa-chat [data-testid='bot']")
    before = bots.count() if answers_before is None else answers_before
    box = page.locator("#qa-question textarea")
    box.fill(question)
    box.press("Enter")
    return wait_for_answer(page, before)


def wait_for_answer(page: Any, answers_before: int) -> Any:
    bots = page.locator("#qa-chat [data-testid='bot']")
    answer = bots.nth(answers_before)
    answer.locator(".qa-badges, .qa-error").first.wait_for(timeout=90_000)
    return answer
