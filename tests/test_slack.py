"""The Slack bot over real HTTP: signed events in, Web API calls out to a local stand-in for Slack."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from click.testing import CliRunner
from pydantic import SecretStr

from qa.cli import main
from qa.errors import ConfigError
from qa.feedback import read_feedback
from qa.slack import build_app, make_http_server
from qa.slack_render import HELPFUL_ACTION, LOOKING_TEXT, UNHELPFUL_ACTION
from tests.conftest import SEEDS, free_port
from tests.fake_slack import (
    BOT_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    SIGNING_SECRET,
    USER_ID,
    Call,
    FakeSlack,
    click_payload,
    event_envelope,
    signed_headers,
)

pytestmark = pytest.mark.integration

MENTION = f"<@{BOT_USER_ID}>"


@dataclass
class RunningBot:
    """The Bolt app from `build_app`, served over HTTP on a free loopback port."""

    app: Any
    server: Any
    slack: FakeSlack
    settings: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/slack/events"

    def deliver(self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None,
                secret: str = SIGNING_SECRET, timestamp: int | None = None) -> requests.Response:
        """Send `event` the way Slack's Events API does (a retry carries X-Slack-Retry-Num)."""
        body = json.dumps(event_envelope(event, event_id=event_id))
        headers = signed_headers(body, secret=secret, timestamp=timestamp)
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return requests.post(self.url, data=body.encode(), headers=headers, timeout=10)

    def click(self, payload: dict[str, Any]) -> requests.Response:
        body = urlencode({"payload": json.dumps(payload)})
        headers = signed_headers(body, content_type="application/x-www-form-urlencoded")
        return requests.post(self.url, data=body.encode(), headers=headers, timeout=10)

    def answers(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The bot's messages in a thread, as people see them now."""
        return [m for m in self.slack.thread(channel, thread_ts) if m.get("bot_id") == BOT_ID]

    def wait_for_answer(self, channel: str, thread_ts: str) -> dict[str, Any]:
        (update,) = self.slack.wait_for("chat.update", lambda c: c.params["channel"] == channel and _in_thread(
            self.slack, c, thread_ts))
        return self.slack.message(channel, update.params["ts"])

    def drain(self) -> None:
        """Stop taking requests and let every answer already started finish (the executor runs lazy listeners)."""
        self.server.shutdown()
        self.server.server_close()
        self.app.listener_runner.listener_executor.shutdown(wait=True)


def _in_thread(slack: FakeSlack, call: Call, thread_ts: str) -> bool:
    return slack.message(call.params["channel"], call.params["ts"]).get("thread_ts") == thread_ts


def slack_settings(settings: Any, slack: FakeSlack, data_dir: Path, **overrides: Any) -> Any:
    return settings.model_copy(
        update={
            "slack_bot_token": SecretStr(BOT_TOKEN),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_api_url": slack.base_url,
            "data_dir": data_dir,
            **overrides,
        }
    )


def start_bot(engine: Any, settings: Any, slack: FakeSlack) -> RunningBot:
    app = build_app(engine, settings)
    server = make_http_server(app, host="127.0.0.1", port=0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return RunningBot(app=app, server=server, slack=slack, settings=settings)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture
def bot(shared_seed_engine: Any, slack: FakeSlack, tmp_path: Path) -> Iterator[RunningBot]:
    running = start_bot(shared_seed_engine, slack_settings(shared_seed_engine.settings, slack, tmp_path / ".qa"), slack)
    yield running
    running.drain()


def section_text(message: dict[str, Any]) -> str:
    return "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")


def context_text(message: dict[str, Any]) -> str:
    return "\n".join(e["text"] for b in message["blocks"] if b["type"] == "context" for e in b["elements"])


# -- answering ---------------------------------------------------------------------------------------


def test_mention_is_answered_in_its_thread_with_sources(bot: RunningBot, slack: FakeSlack) -> None:
    event = slack.user_says("C0GENERAL", f"{MENTION} What is Mark Sedwill's job?")

    response = bot.deliver(event)
    assert response.status_code == 200

    answer = bot.wait_for_answer("C0GENERAL", event["ts"])
    (placeholder,) = slack.calls_to("chat.postMessage")
    assert placeholder.params["thread_ts"] == event["ts"]
    assert placeholder.params["text"] == LOOKING_TEXT
    assert answer["ts"] == slack.calls_to("chat.update")[0].params["ts"] == bot.answers("C0GENERAL", event["ts"])[0]["ts"]
    assert "national security adviser" in section_text(answer)
    assert "[1]" in section_text(answer)
    sources = context_text(answer)
    assert sources.startswith("*Sources*")
    assert "*[1]* seeds/000_da55755936a874b9.txt, paragraph 6: “Britain’s national security adviser" in sources
    buttons = [e["action_id"] for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == [HELPFUL_ACTION, UNHELPFUL_ACTION]
    assert "national security adviser" in answer["text"]  # the notification text


def test_direct_message_is_answered_in_a_thread(bot: RunningBot, slack: FakeSlack) -> None:
    event = slack.user_says("D0ALICE", "How many US diplomats will Russia expel?", im=True)

    assert bot.deliver(event).status_code == 200

    answer = bot.wait_for_answer("D0ALICE", event["ts"])
    assert "60 US diplomats" in section_text(answer)
    assert answer["thread_ts"] == event["ts"]


def test_follow_up_in_a_thread_uses_the_earlier_question(bot: RunningBot, slack: FakeSlack) -> None:
    first = slack.user_says("C0GENERAL", f"{MENTION} Who is the UN Secretary General mentioned?")
    bot.deliver(first)
    assert "Guterres" in section_text(bot.wait_for_answer("C0GENERAL", first["ts"]))

    follow_up = slack.user_says("C0GENERAL", f"{MENTION} What did he say?", thread_ts=first["ts"])
    bot.deliver(follow_up)

    slack.wait_for("chat.update", count=2)
    (replies,) = slack.calls_to("conversations.replies")
    assert (replies.params["channel"], replies.params["ts"]) == ("C0GENERAL", first["ts"])
    second = slack.message("C0GENERAL", slack.calls_to("chat.update")[1].params["ts"])
    assert second["thread_ts"] == first["ts"]
    assert "Cold War" in section_text(second)


def test_follow_up_outside_a_thread_has_no_history(bot: RunningBot, slack: FakeSlack) -> None:
    event = slack.user_says("C0GENERAL", f"{MENTION} What did he say?")
    bot.deliver(event)
    answer = bot.wait_for_answer("C0GENERAL", event["ts"])
    assert "The documents don't say" in section_text(answer)
    assert "Sources" not in context_text(answer)
    assert not slack.calls_to("conversations.replies")


def test_retried_delivery_is_answered_once(bot: RunningBot, slack: FakeSlack) -> None:
    event = slack.user_says("C0GENERAL", f"{MENTION} How many US diplomats will Russia expel?")
    assert bot.deliver(event, event_id="Ev1").status_code == 200
    bot.wait_for_answer("C0GENERAL", event["ts"])

    for retry in (1, 2, 3):
        assert bot.deliver(event, event_id="Ev1", retry=retry).status_code == 200
    bot.drain()

    assert len(slack.calls_to("chat.postMessage")) == 1
    assert len(slack.calls_to("chat.update")) == 1
    assert len(bot.answers("C0GENERAL", event["ts"])) == 1


def test_burst_of_retries_is_answered_once(bot: RunningBot, slack: FakeSlack) -> None:
    event = slack.user_says("C0GENERAL", f"{MENTION} How many US diplomats will Russia expel?")

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda n: bot.deliver(event, event_id="EvBurst", retry=n).status_code, range(8)))
    assert statuses == [200] * 8
    bot.wait_for_answer("C0GENERAL", event["ts"])
    bot.drain()

    assert len(slack.calls_to("chat.postMessage")) == 1
    assert len(bot.answers("C0GENERAL", event["ts"])) == 1


def test_mention_in_a_dm_delivered_as_two_events_is_answered_once(bot: RunningBot, slack: FakeSlack) -> None:
    event = slack.user_says("D0ALICE", f"{MENTION} How many US diplomats will Russia expel?", im=True)
    bot.deliver(event, event_id="EvMessage")
    bot.deliver(dict(event, type="app_mention"), event_id="EvMention")
    bot.wait_for_answer("D0ALICE", event["ts"])
    bot.drain()

    assert len(bot.answers("D0ALICE", event["ts"])) == 1


# -- safety -----------------------------------------------------------------------------------------


def test_bad_signature_is_rejected_with_401(bot: RunningBot, slack: FakeSlack) -> None:
    event = slack.user_says("C0GENERAL", f"{MENTION} How many US diplomats will Russia expel?")

    response = bot.deliver(event, secret="not-the-signing-secret")

    assert response.status_code == 401
    bot.drain()
    assert not slack.calls_to("chat.postMessage")


def test_stale_timestamp_is_rejected_with_401(bot: RunningBot, slack: FakeSlack) -> None:
    event = slack.user_says("C0GENERAL", f"{MENTION} How many US diplomats will Russia expel?")

    response = bot.deliver(event, timestamp=int(time.time()) - 10 * 60)  # correctly signed, but replayed

    assert response.status_code == 401
    bot.drain()
    assert not slack.calls_to("chat.postMessage")


def test_unsigned_body_too_large_is_refused_before_reading(bot: RunningBot) -> None:
    response = requests.post(bot.url, data=b"x" * 2_000_000, headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413


def test_url_verification_challenge_is_answered(bot: RunningBot) -> None:
    body = json.dumps({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"})
    response = requests.post(bot.url, data=body.encode(), headers=signed_headers(body), timeout=10)
    assert response.status_code == 200
    assert "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in response.text


def test_bot_messages_are_ignored(bot: RunningBot, slack: FakeSlack) -> None:
    own = dict(slack.user_says("D0ALICE", "How many US diplomats will Russia expel?", im=True, user=BOT_USER_ID),
               bot_id=BOT_ID)
    other = dict(slack.user_says("D0ALICE", "How many US diplomats will Russia expel?", im=True, user="UOTHERBOT"),
                 bot_id="BOTHER", subtype="bot_message")
    mention_by_bot = dict(slack.user_says("C0GENERAL", f"{MENTION} How many US diplomats?", user="UOTHERBOT"),
                          bot_id="BOTHER")

    for event in (own, other, mention_by_bot):
        assert bot.deliver(event).status_code == 200
    bot.drain()

    assert not slack.calls_to("chat.postMessage")


def test_edits_and_channel_messages_without_mention_are_ignored(bot: RunningBot, slack: FakeSlack) -> None:
    edit = dict(slack.user_says("D0ALICE", "How many US diplomats?", im=True), subtype="message_changed")
    channel_chatter = dict(slack.user_says("C0GENERAL", "How many US diplomats?", event_type="message"),
                           channel_type="channel")
    for event in (edit, channel_chatter):
        assert bot.deliver(event).status_code == 200
    bot.drain()
    assert not slack.calls_to("chat.postMessage")


def test_over_long_question_gets_a_polite_reply_in_the_thread(bot: RunningBot, slack: FakeSlack) -> None:
    limit = bot.settings.max_question_chars
    event = slack.user_says("C0GENERAL", f"{MENTION} " + "why " * (limit // 4 + 10))

    bot.deliver(event)

    (reply,) = slack.wait_for("chat.postMessage")
    assert reply.params["thread_ts"] == event["ts"]
    assert reply.params["text"].startswith("Sorry, that question is too long for me")
    assert f"I can take up to {limit:,}" in reply.params["text"]
    bot.drain()
    assert not slack.calls_to("chat.update")


def test_empty_mention_gets_a_hint(bot: RunningBot, slack: FakeSlack) -> None:
    event = slack.user_says("C0GENERAL", MENTION)
    bot.deliver(event)
    (reply,) = slack.wait_for("chat.postMessage")
    assert reply.params["thread_ts"] == event["ts"]
    assert "Ask me a question about the documents" in reply.params["text"]


def test_a_mention_of_only_control_characters_gets_the_same_hint(bot: RunningBot, slack: FakeSlack) -> None:
    # The engine's clean_question decides what is empty: a pasted colour code and a bell are not a question.
    event = slack.user_says("C0GENERAL", f"{MENTION} \x1b[31m \x07")
    bot.deliver(event)
    (reply,) = slack.wait_for("chat.postMessage")
    assert "Ask me a question about the documents" in reply.params["text"]
    bot.drain()
    assert not slack.calls_to("chat.update")


def ask_once(engine: Any, settings: Any, slack: FakeSlack, question: str = "How many US diplomats will Russia expel?") -> dict[str, Any]:
    """Start a bot on `engine`, ask one question in #general, and return the posted answer."""
    running = start_bot(engine, settings, slack)
    try:
        event = slack.user_says("C0GENERAL", f"{MENTION} {question}")
        running.deliver(event)
        return running.wait_for_answer("C0GENERAL", event["ts"])
    finally:
        running.drain()


def test_missing_index_gets_a_polite_reply_in_the_thread(slack: FakeSlack, tmp_path: Path) -> None:
    from qa import Engine, Settings

    engine = Engine(Settings(data_dir=tmp_path / "empty", seeds_dir=SEEDS, _env_file=None))
    answer = ask_once(engine, slack_settings(engine.settings, slack, tmp_path / "empty"), slack)
    assert answer["text"] == (
        "Sorry, I can't answer yet: no documents have been indexed yet "
        "(whoever runs this bot can fix that with `qa ingest`)."
    )
    assert str(tmp_path) not in answer["text"]


def test_engine_crash_gets_a_polite_reply_without_internals(slack: FakeSlack, shared_seed_engine: Any,
                                                            tmp_path: Path) -> None:
    class BrokenEngine:
        settings = shared_seed_engine.settings

        def ask(self, question: str, history: Any = None) -> Any:
            raise RuntimeError("connection to /secret/db refused")

    answer = ask_once(BrokenEngine(), slack_settings(shared_seed_engine.settings, slack, tmp_path), slack)
    assert answer["text"].startswith("Sorry, something went wrong while answering")
    assert "secret" not in answer["text"]


# -- feedback ---------------------------------------------------------------------------------------


def test_button_click_is_recorded_in_the_feedback_log(bot: RunningBot, slack: FakeSlack) -> None:
    event = slack.user_says("C0GENERAL", f"{MENTION} What is Mark Sedwill's job?")
    bot.deliver(event)
    answer = bot.wait_for_answer("C0GENERAL", event["ts"])

    assert bot.click(click_payload(answer, "C0GENERAL", HELPFUL_ACTION)).status_code == 200

    (thanks,) = slack.wait_for("chat.postEphemeral")
    assert thanks.params["user"] == USER_ID
    assert thanks.params["thread_ts"] == event["ts"]
    (record,) = read_feedback(bot.settings)
    assert record["channel"] == "slack"
    assert record["user"] == USER_ID
    assert record["helpful"] is True
    assert record["question"] == "What is Mark Sedwill's job?"
    assert "national security adviser" in record["answer"]
    assert record["citations"][0]["source"] == "000_da55755936a874b9.txt"
    assert record["citations"][0]["quote"].startswith("Britain’s national security adviser Mark Sedwill")


def test_follow_up_feedback_keeps_the_thread_history(bot: RunningBot, slack: FakeSlack) -> None:
    first = slack.user_says("C0GENERAL", f"{MENTION} Who is the UN Secretary General mentioned?")
    bot.deliver(first)
    bot.wait_for_answer("C0GENERAL", first["ts"])
    follow_up = slack.user_says("C0GENERAL", f"{MENTION} What did he say?", thread_ts=first["ts"])
    bot.deliver(follow_up)
    second = slack.message("C0GENERAL", slack.wait_for("chat.update", count=2)[1].params["ts"])

    bot.click(click_payload(second, "C0GENERAL", UNHELPFUL_ACTION))
    slack.wait_for("chat.postEphemeral")

    (record,) = read_feedback(bot.settings)
    assert record["helpful"] is False
    assert record["question"] == "What did he say?"
    assert record["history"] == ["Who is the UN Secretary General mentioned?"]


def test_click_after_a_restart_is_still_recorded(bot: RunningBot, slack: FakeSlack, shared_seed_engine: Any) -> None:
    event = slack.user_says("C0GENERAL", f"{MENTION} What is Mark Sedwill's job?")
    bot.deliver(event)
    answer = bot.wait_for_answer("C0GENERAL", event["ts"])
    bot.drain()

    restarted = start_bot(shared_seed_engine, bot.settings, slack)  # remembers no answers
    try:
        assert restarted.click(click_payload(answer, "C0GENERAL", UNHELPFUL_ACTION)).status_code == 200
        slack.wait_for("chat.postEphemeral")
    finally:
        restarted.drain()

    (record,) = read_feedback(bot.settings)
    assert record["helpful"] is False
    assert record["question"] == "What is Mark Sedwill's job?"
    assert "national security adviser" in record["answer"]
    assert record["citations"][0]["quote"].startswith("Britain’s national security adviser Mark Sedwill")


def test_forged_click_is_not_recorded(bot: RunningBot, slack: FakeSlack) -> None:
    event = slack.user_says("C0GENERAL", f"{MENTION} What is Mark Sedwill's job?")
    bot.deliver(event)
    answer = bot.wait_for_answer("C0GENERAL", event["ts"])
    body = urlencode({"payload": json.dumps(click_payload(answer, "C0GENERAL", HELPFUL_ACTION))})
    headers = signed_headers(body, secret="forged", content_type="application/x-www-form-urlencoded")

    assert requests.post(bot.url, data=body.encode(), headers=headers, timeout=10).status_code == 401
    bot.drain()
    assert read_feedback(bot.settings) == []


# -- set-up -----------------------------------------------------------------------------------------


def test_missing_tokens_error_names_the_variables() -> None:
    result = CliRunner().invoke(main, ["slack"])
    assert result.exit_code == 1
    assert "SLACK_BOT_TOKEN" in result.output and "SLACK_APP_TOKEN" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_http_mode_names_the_missing_signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    result = CliRunner().invoke(main, ["slack", "--http", "--port", "0"])
    assert result.exit_code == 1
    assert "SLACK_SIGNING_SECRET" in result.output
    assert "SLACK_BOT_TOKEN" not in result.output


def test_build_app_without_bot_token_names_the_variable(shared_seed_engine: Any) -> None:
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        build_app(shared_seed_engine, shared_seed_engine.settings)


def test_wrong_bot_token_fails_at_start(shared_seed_engine: Any, slack: FakeSlack, tmp_path: Path) -> None:
    settings = slack_settings(shared_seed_engine.settings, slack, tmp_path, slack_bot_token=SecretStr("xoxb-revoked"))
    with pytest.raises(ConfigError, match=r"Slack refused SLACK_BOT_TOKEN .*invalid_auth"):
        build_app(shared_seed_engine, settings)
    (check,) = slack.calls_to("auth.test")
    assert check.token == "xoxb-revoked"


def test_unreachable_slack_api_url_fails_at_start(shared_seed_engine: Any, tmp_path: Path) -> None:
    settings = shared_seed_engine.settings.model_copy(
        update={"slack_bot_token": SecretStr(BOT_TOKEN), "slack_api_url": f"http://127.0.0.1:{free_port()}/api"}
    )
    with pytest.raises(ConfigError, match="Can't reach Slack at http://127.0.0.1:.*QA_SLACK_API_URL"):
        build_app(shared_seed_engine, settings)


@pytest.mark.slow
def test_qa_slack_http_command_answers_mentions(seed_data_dir: Path, slack: FakeSlack, tmp_path: Path) -> None:
    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data, dirs_exist_ok=True)
    port = free_port()
    env = dict(os.environ, QA_DATA_DIR=str(data), QA_SLACK_API_URL=slack.base_url, SLACK_BOT_TOKEN=BOT_TOKEN,
               SLACK_SIGNING_SECRET=SIGNING_SECRET)
    command = [str(Path(sys.executable).with_name("qa")), "slack", "--http", "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_listening(port, process)
        running = RunningBot(app=None, server=type("Server", (), {"server_port": port})(), slack=slack, settings=None)
        event = slack.user_says("C0GENERAL", f"{MENTION} How many US diplomats will Russia expel?")
        assert running.deliver(event).status_code == 200
        answer = running.wait_for_answer("C0GENERAL", event["ts"])
        assert "60 US diplomats" in section_text(answer)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert f"on http://127.0.0.1:{port}/slack/events" in stderr


def wait_until_listening(port: int, process: subprocess.Popen[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"qa slack exited: {process.communicate()[1]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)  # polling for the port, not waiting on an outcome
    raise AssertionError(f"qa slack did not listen on {port} within {timeout}s")
