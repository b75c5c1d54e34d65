"""Socket Mode: the bot opens a WebSocket (URL from apps.connections.open) and answers events sent down it."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from websockets.sync.server import Server, ServerConnection, serve

from qa.cli import main
from qa.slack import build_app, socket_mode_handler
from tests.fake_slack import APP_TOKEN, BOT_TOKEN, BOT_USER_ID, FakeSlack, event_envelope

pytestmark = pytest.mark.integration


class SocketModeServer:
    """Slack's side of a Socket Mode connection: says hello, sends the queued envelopes, collects the acks."""

    def __init__(self) -> None:
        self.outbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self.server: Server = serve(self._session, "127.0.0.1", 0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/link/?ticket=fake"

    def send_event(self, event: dict[str, Any], *, envelope_id: str, retry_attempt: int = 0) -> None:
        self.outbox.put({
            "envelope_id": envelope_id,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
            "payload": event_envelope(event, event_id="EvSocket1"),
        })

    def _session(self, ws: ServerConnection) -> None:
        ws.send(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0FAKE"}}))
        while True:
            try:
                ws.send(json.dumps(self.outbox.get(timeout=0.05)))
            except queue.Empty:
                pass
            try:
                message = ws.recv(timeout=0.05)
            except TimeoutError:
                continue
            except Exception:
                return
            self.acks.put(json.loads(message))

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def socket_server() -> Iterator[SocketModeServer]:
    server = SocketModeServer()
    yield server
    server.stop()


@pytest.fixture
def slack(socket_server: SocketModeServer) -> Iterator[FakeSlack]:
    fake = FakeSlack(socket_url=socket_server.url).start()
    yield fake
    fake.stop()


def test_socket_mode_answers_a_mention_once_and_acks_each_envelope(
    shared_seed_engine: Any, slack: FakeSlack, socket_server: SocketModeServer, tmp_path: Path
) -> None:
    settings = shared_seed_engine.settings.model_copy(update={
        "slack_bot_token": SecretStr(BOT_TOKEN),
        "slack_app_token": SecretStr(APP_TOKEN),
        "slack_api_url": slack.base_url,
        "data_dir": tmp_path / ".qa",
    })
    app = build_app(shared_seed_engine, settings)
    handler = socket_mode_handler(app, settings)
    handler.connect()
    try:
        event = slack.user_says("C0GENERAL", f"<@{BOT_USER_ID}> How many US diplomats will Russia expel?")
        socket_server.send_event(event, envelope_id="env-1")
        socket_server.send_event(event, envelope_id="env-2", retry_attempt=1)

        acks = {socket_server.acks.get(timeout=30)["envelope_id"], socket_server.acks.get(timeout=30)["envelope_id"]}
        assert acks == {"env-1", "env-2"}
        (update,) = slack.wait_for("chat.update")
    finally:
        handler.close()
        app.listener_runner.listener_executor.shutdown(wait=True)

    (opened,) = slack.calls_to("apps.connections.open")
    assert opened.token == APP_TOKEN
    (placeholder,) = slack.calls_to("chat.postMessage")
    assert placeholder.params["thread_ts"] == event["ts"]
    answer = slack.message("C0GENERAL", update.params["ts"])
    assert "60 US diplomats" in answer["blocks"][0]["text"]["text"]
    assert len(slack.calls_to("chat.update")) == 1


def test_qa_slack_with_a_refused_app_token_says_which_token(
    slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-revoked")
    monkeypatch.setenv("QA_SLACK_API_URL", slack.base_url)

    result = CliRunner().invoke(main, ["slack"])

    assert result.exit_code == 1
    assert "Slack refused SLACK_APP_TOKEN (invalid_auth)" in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: Slack refused SLACK_APP_TOKEN")
