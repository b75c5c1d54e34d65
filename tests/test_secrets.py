"""Security defaults: secrets never printed, logged or written; only the corpus folder is read or written; pinned deps.

Every secret is set to a recognisable value containing `S3CR3T`, and every output is grepped for it:
`qa info`, `qa ask`, debug logs of `qa ask`, `qa chat` and `qa slack`, error messages, eval reports,
`Settings` dumps, the chat page's HTML and config.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from conftest import GOLD, ROOT, SEEDS, free_port
from fake_openai import FakeOpenAI, fake_openai_server, serve  # noqa: F401 - fixture

from qa import Engine, Settings
from qa.cli import main

LLM_KEY = "sk-llm-S3CR3T-1"
SECRETS = {"QA_LLM_API_KEY": LLM_KEY, "OPENAI_API_KEY": "sk-openai-S3CR3T-2",
           "SLACK_BOT_TOKEN": "xoxb-S3CR3T-3", "SLACK_SIGNING_SECRET": "S3CR3T-4", "QA_UI_AUTH": "ada:S3CR3T-5",
           "SLACK_APP_TOKEN": "xapp-S3CR3T-6"}
QA = str(Path(sys.executable).with_name("qa"))


def assert_no_secret(*texts: str | bytes) -> None:
    for text in texts:
        leaked = text.count(b"S3CR3T") if isinstance(text, bytes) else [ln for ln in text.splitlines() if "S3CR3T" in ln][:3]
        assert not leaked, leaked


@pytest.fixture
def keyed_llm() -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible server that accepts only QA_LLM_API_KEY's value."""
    yield from serve(api_key=LLM_KEY)


def child_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "OPENAI_", "SLACK_")) or k == "QA_EMBED_MODEL"}
    return {**env, "QA_DATA_DIR": str(data_dir), "QA_SEEDS_DIR": str(SEEDS), "PYTHONUNBUFFERED": "1", **SECRETS, **extra}


# -- qa info, qa ask, error messages, Settings --------------------------------------------------------


def test_secrets_stay_out_of_info_answers_errors_and_settings(seed_data_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QA_DATA_DIR", str(seed_data_dir))
    monkeypatch.setenv("QA_LLM_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")  # nothing listens: fallback path
    monkeypatch.setenv("QA_LLM_RETRIES", "0")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    outputs = [
        CliRunner().invoke(main, ["info"]).output,
        CliRunner().invoke(main, ["info", "--json"]).output,
        CliRunner().invoke(main, ["ask", "--json", "--show-prompt", "What is Mark Sedwill's job?"]).output,
        CliRunner().invoke(main, ["ask", ""]).output,
        repr(Settings()),
        str(Settings()),
        str(Settings().model_dump()),
        Settings().model_dump_json(),
    ]
    assert "The language model is unavailable" in outputs[2]
    assert_no_secret(*outputs)


def test_a_password_in_the_llm_url_is_hidden_from_info_and_notices(seed_data_dir, keyed_llm) -> None:  # type: ignore[no-untyped-def]
    url = keyed_llm.base_url.replace("http://", "http://proxyuser:URL-S3CR3T-7@")
    engine = Engine(Settings(_env_file=None, data_dir=seed_data_dir, llm_base_url=url, llm_retries=0))
    info = engine.info()
    assert info["llm_server"] == keyed_llm.base_url
    answer = engine.ask("What is Mark Sedwill's job?")  # the proxy login is not the key: refused, so a notice
    assert answer.notice and keyed_llm.base_url in answer.notice
    assert_no_secret(json.dumps(info), json.dumps(answer.to_dict()))


@pytest.mark.slow
def test_debug_logs_of_qa_ask_and_info_never_show_keys_or_url_passwords(seed_data_dir, keyed_llm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    keyed_llm.reply("Mark Sedwill is Britain's national security adviser [1].")
    env = child_env(seed_data_dir, QA_LLM_BASE_URL=keyed_llm.base_url, QA_LLM_MODEL="fake-model", QA_LLM_RETRIES="0")
    runs = [subprocess.run([QA, "-v", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
            for args in (["info"], ["ask", "--json", "--show-prompt", "What is Mark Sedwill's job?"])]
    assert all(r.returncode == 0 for r in runs), [r.stderr[-2000:] for r in runs]
    answer = json.loads(runs[1].stdout)
    assert answer["mode"] == "llm:fake-model" and answer["notice"] is None
    assert keyed_llm.requests[-1].headers["Authorization"] == f"Bearer {LLM_KEY}"  # the key was used, and never shown
    assert "DEBUG" in runs[1].stderr
    # and with a proxy password in the URL, which client libraries log in full at debug level
    env["QA_LLM_BASE_URL"] = keyed_llm.base_url.replace("http://", "http://proxyuser:URL-S3CR3T-7@")
    failing = subprocess.run([QA, "-v", "ask", "What is Mark Sedwill's job?"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert failing.returncode == 0 and "refused the API key" in failing.stdout
    assert f"{keyed_llm.base_url}/chat/completions" in failing.stderr
    assert_no_secret(*(r.stdout + r.stderr for r in (*runs, failing)))


def test_slack_start_up_errors_never_echo_the_tokens(seed_data_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QA_DATA_DIR", str(seed_data_dir))
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("QA_SLACK_API_URL", f"http://127.0.0.1:{free_port()}/api/")  # nothing listens
    result = CliRunner().invoke(main, ["slack", "--http", "--port", str(free_port())])
    assert result.exit_code == 1 and "Can't reach Slack" in result.output
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    missing = CliRunner().invoke(main, ["slack", "--http"])
    assert missing.exit_code == 1 and "SLACK_SIGNING_SECRET" in missing.output
    assert_no_secret(result.output, missing.output)


@pytest.mark.slow
@pytest.mark.integration
def test_qa_slack_debug_log_never_shows_the_tokens(seed_data_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.fake_slack import BOT_TOKEN, BOT_USER_ID, SIGNING_SECRET, FakeSlack
    from tests.test_slack import RunningBot, section_text, wait_until_listening

    slack = FakeSlack().start()
    port = free_port()
    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data)
    env = child_env(data, QA_SLACK_API_URL=slack.base_url, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET)
    log = tmp_path / "slack.log"
    with open(log, "w", encoding="utf-8") as sink:
        process = subprocess.Popen([QA, "-v", "slack", "--http", "--port", str(port)], env=env, cwd=tmp_path,
                                   stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_listening(port, process)
        bot = RunningBot(app=None, server=type("Server", (), {"server_port": port})(), slack=slack, settings=None)
        event = slack.user_says("C0GENERAL", f"<@{BOT_USER_ID}> How many US diplomats will Russia expel?")
        assert bot.deliver(event).status_code == 200
        assert "60 US diplomats" in section_text(bot.wait_for_answer("C0GENERAL", event["ts"]))
        assert bot.deliver(event, secret="forged").status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=30)
        slack.stop()
    output = log.read_text(encoding="utf-8")
    assert "Authorization" in output  # slack_sdk logs its request headers at debug level...
    for secret in (BOT_TOKEN, SIGNING_SECRET, "S3CR3T"):  # ...with the token redacted
        assert secret not in output


# -- eval reports ---------------------------------------------------------------------------------------


def test_eval_reports_and_output_never_contain_secrets(seed_data_dir, fake_openai_server, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake_openai_server.reset()
    fake_openai_server.reply("Mark Sedwill is Britain's national security adviser [1].")
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(GOLD.read_text(encoding="utf-8").splitlines(keepends=True)[:3]), encoding="utf-8")
    monkeypatch.setenv("QA_DATA_DIR", str(seed_data_dir))
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("QA_LLM_BASE_URL", fake_openai_server.base_url.replace("http://", "http://evaluser:URL-S3CR3T-7@"))
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["eval", "--gold", str(gold), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.name for p in written} >= {"results.jsonl", "summary.json", "report.md"}
    assert_no_secret(result.output, *(p.read_bytes() for p in written))
    fake_openai_server.reset()



# -- the chat page --------------------------------------------------------------------------------------


def test_share_link_is_refused_without_a_login(seed_data_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QA_DATA_DIR", str(seed_data_dir))
    result = CliRunner().invoke(main, ["chat", "--share", "--port", str(free_port())])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: A public link needs a login: set QA_UI_AUTH=user:password, then retry --share."


@pytest.mark.slow
@pytest.mark.integration
def test_qa_chat_serves_its_page_on_loopback_and_keeps_the_login_password_and_keys_out_of_its_log_and_pages(seed_data_dir, keyed_llm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from gradio_client import Client

    keyed_llm.reply("Mark Sedwill is Britain's national security adviser [1].")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = child_env(seed_data_dir, QA_LLM_BASE_URL=keyed_llm.base_url, QA_LLM_MODEL="fake-model")
    log = tmp_path / "chat.log"
    with open(log, "w", encoding="utf-8") as sink:
        process = subprocess.Popen([QA, "-v", "chat", "--port", str(port)], env=env, cwd=tmp_path,
                                   stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while f"Chat page: {url}" not in log.read_text(encoding="utf-8"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text(encoding="utf-8")[-3000:]
            time.sleep(0.2)  # polling for start-up, not waiting on an outcome
        pages = [requests.get(url, timeout=10), requests.get(url + "config", timeout=10)]
        assert pages[0].status_code == 200 and "<!doctype html>" in pages[0].text.lower()  # the login page
        assert requests.post(url + "login", data={"username": "ada", "password": "wrong"}, timeout=10).status_code >= 400
        with pytest.raises(Exception):  # noqa: B017 - gradio_client raises its own error for a refused login
            Client(url, auth=("ada", "wrong"), verbose=False)
        client = Client(url, auth=("ada", "S3CR3T-5"), verbose=False, download_files=False)
        _, messages, answer = client.predict("What is Mark Sedwill's job?", api_name="/chat")
        assert answer["mode"] == "llm:fake-model" and "national security adviser" in answer["text"]
        assert keyed_llm.requests[-1].headers["Authorization"] == f"Bearer {LLM_KEY}"
        pages.append(requests.get(url + "config", cookies=client.cookies, timeout=10))
        assert pages[-1].json()["title"] == "qa: answers from your documents"
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "DEBUG" in log.read_text(encoding="utf-8")
    assert_no_secret(log.read_text(encoding="utf-8"), json.dumps(messages), json.dumps(answer), *(p.text for p in pages))


@pytest.fixture(scope="module")
def upload_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Settings, str]]:
    """The chat page with its own small seeds folder and a 1 MB upload limit."""
    from ui_server import served

    root = tmp_path_factory.mktemp("upload-page")
    settings = Settings(_env_file=None, data_dir=root / ".qa", seeds_dir=root / "seeds", max_upload_mb=1)
    settings.seeds_dir.mkdir()
    (settings.seeds_dir / "fleet.txt").write_text("The fleet left Sevastopol on Monday.\n", encoding="utf-8")
    engine = Engine(settings)
    engine.ingest(settings.seeds_dir)
    (settings.data_dir / "feedback.jsonl").write_text('{"question": "private"}\n', encoding="utf-8")
    with served(engine) as (_, url):
        yield engine, settings, url


@pytest.mark.integration
def test_chat_page_serves_no_document_store_or_system_file(upload_page, seed_data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _, settings, url = upload_page
    private = [
        settings.seeds_dir / "fleet.txt",
        SEEDS / "000_da55755936a874b9.txt",
        settings.data_dir / "feedback.jsonl",
        settings.data_dir / "chroma" / "chroma.sqlite3",
        seed_data_dir / "chroma" / "chroma.sqlite3",
        ROOT / "pyproject.toml",
        Path("/etc/passwd"),
    ]
    assert all(p.is_file() for p in private)
    tries = [str(p) for p in private] + ["pyproject.toml", "../../../../etc/passwd", "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                                         str(settings.data_dir / "feedback.jsonl").replace("/", "%2F")]
    for path in tries:
        for route in ("gradio_api/file=", "gradio_api/file/", "file="):
            response = requests.get(url + route + path, timeout=10)
            assert response.status_code in (403, 404), (route, path, response.status_code)
            assert "Sevastopol" not in response.text and "root:" not in response.text and "private" not in response.text


@pytest.mark.integration
def test_uploaded_file_with_a_traversal_name_lands_only_in_the_seeds_folder(upload_page) -> None:  # type: ignore[no-untyped-def]
    from qa.ui import ChatPage

    engine, settings, url = upload_page
    root = settings.seeds_dir.parent
    before = {p for p in root.rglob("*") if p.is_file() and ".qa" not in p.parts}
    body = b"The embassy in Tallinn hired four drivers in June.\n"
    response = requests.post(url + "gradio_api/upload", files=[("files", ("../../etc/passwd.txt", body, "text/plain"))], timeout=10)
    assert response.status_code == 200
    (stored,) = response.json()
    assert ".." not in Path(stored).parts and Path(stored).name == "passwd.txt"  # gradio's own upload cache

    status, _, _ = ChatPage(engine, settings).upload([stored])
    assert "passwd.txt: added and indexed." in status
    assert (settings.seeds_dir / "passwd.txt").read_bytes() == body
    assert not Path(stored).exists()  # the cached upload is removed once copied
    after = {p for p in root.rglob("*") if p.is_file() and ".qa" not in p.parts}
    assert after - before == {settings.seeds_dir / "passwd.txt"}
    assert not Path("/etc/passwd.txt").exists()


@pytest.mark.integration
def test_upload_over_the_size_limit_is_refused_by_the_server(upload_page) -> None:  # type: ignore[no-untyped-def]
    _, settings, url = upload_page
    response = requests.post(url + "gradio_api/upload", files=[("files", ("big.txt", b"word " * 300_000, "text/plain"))], timeout=30)
    assert response.status_code == 413
    assert sorted(p.name for p in settings.seeds_dir.iterdir()) in (["fleet.txt"], ["fleet.txt", "passwd.txt"])


# -- pinned dependencies ----------------------------------------------------------------------------------


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-").replace(".", "-")


def test_every_dependency_is_pinned_in_constraints_at_the_installed_version() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[_name(name)] = pinned.strip()
    assert "qa" not in pins
    assert pins["torch"] == "2.13.0"
    assert sorted(declared - set(pins)) == [], "run `make constraints` after adding a dependency"
    stale = {name: (pin, version(name)) for name, pin in pins.items() if version(name).split("+")[0] != pin.split("+")[0]}
    assert stale == {}, "constraints.txt and .venv disagree: run `make install` or `make constraints`"
