"""Collections: `--collection` on the CLI, `qa collections`, `qa docs`, `model` in the API, Slack's per-channel mapping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from api_server import api_env, qa_serve
from click.testing import CliRunner
from conftest import SEED_FILE, SEEDS
from fake_slack import FakeSlack
from test_slack import MENTION, ask_once, section_text, slack_settings

from qa import ConfigError, Engine, Settings
from qa.cli import main

pytestmark = pytest.mark.integration

HR_NOTE = "# Leave policy\n\nEvery employee gets 31 days of paid holiday per year, booked through the HR portal.\n"
HR_QUESTION = "How many days of paid holiday does an employee get?"


@pytest.fixture(scope="module")
def two_collections(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The seeds in the default collection `qa`, an HR folder in collection `hr`, one data folder."""
    root = tmp_path_factory.mktemp("collections")
    hr = root / "hr-docs"
    hr.mkdir()
    (hr / "leave.md").write_text(HR_NOTE, encoding="utf-8")
    data = root / ".qa"
    Engine(Settings(data_dir=data, seeds_dir=SEEDS, _env_file=None)).ingest(SEEDS)
    return {"root": root, "data": data, "hr": hr}


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_ingests_asks_and_lists_by_collection(two_collections: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_DATA_DIR", str(two_collections["data"]))
    ingested = run("ingest", str(two_collections["hr"]), "--collection", "hr")
    assert ingested.exit_code == 0, ingested.output
    assert "1 added" in ingested.output

    listed = run("collections", "--json")
    rows = {r["name"]: r for r in json.loads(listed.output)}
    assert rows["qa"]["default"] is True and rows["qa"]["chunks"] == 7
    assert rows["hr"]["chunks"] >= 1 and rows["hr"]["default"] is False

    hr = run("ask", HR_QUESTION, "--collection", "hr", "--json")
    assert "31 days" in json.loads(hr.output)["text"]
    default = json.loads(run("ask", HR_QUESTION, "--json").output)
    assert "31 days" not in default["text"]  # the default collection knows nothing of it

    docs = json.loads(run("docs", "list", "--collection", "hr", "--json").output)
    assert [(d["source"], d["root"]) for d in docs] == [("leave.md", str(two_collections["hr"].resolve()))]
    assert docs[0]["indexed_at"].startswith("20")
    assert SEED_FILE.name in run("docs", "list").output


def test_cli_refuses_unknown_or_bad_collections_in_one_line(two_collections: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_DATA_DIR", str(two_collections["data"]))
    unknown = CliRunner().invoke(main, ["ask", "Who?", "--collection", "finance"])
    assert unknown.exit_code == 1
    assert "No collection 'finance'" in unknown.output and "qa ingest DIR --collection finance" in unknown.output
    bad = CliRunner().invoke(main, ["ingest", str(SEEDS), "--collection", "../x"])
    assert bad.exit_code == 1 and "Bad collection name" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    assert "finance" not in run("collections").output  # asking did not create it


def test_docs_rm_removes_a_document_from_its_collection_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "eng"
    folder.mkdir()
    (folder / "deploy.txt").write_text("Deploys to production happen every Tuesday at noon.\n", encoding="utf-8")
    assert run("ingest", str(folder), "--collection", "eng").exit_code == 0
    removed = run("docs", "rm", "deploy.txt", "--collection", "eng")
    assert removed.exit_code == 0 and "Removed deploy.txt" in removed.output and "stays" in removed.output
    assert json.loads(run("docs", "list", "--collection", "eng", "--json").output) == []
    again = CliRunner().invoke(main, ["docs", "rm", "deploy.txt", "--collection", "eng"])
    assert again.exit_code == 1 and "No document 'deploy.txt'" in again.output
    assert (folder / "deploy.txt").exists()


# -- the API ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(two_collections: dict[str, Path]) -> Iterator[str]:
    Engine(Settings(data_dir=two_collections["data"], collection="hr", _env_file=None)).ingest(two_collections["hr"])
    with qa_serve(api_env(two_collections["data"], SEEDS), log=two_collections["root"] / "serve.log") as url:
        yield url


def test_api_model_names_the_collection(served: str) -> None:
    client = openai.OpenAI(base_url=served + "/v1", api_key="unused", max_retries=0)
    assert {"qa", "hr"} <= {m.id for m in client.models.list()}
    hr = client.chat.completions.create(model="hr", messages=[{"role": "user", "content": HR_QUESTION}])
    assert "31 days" in hr.choices[0].message.content and hr.model == "hr"
    assert hr.choices[0].message.model_extra["citations"][0]["source"] == "leave.md"
    default = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": HR_QUESTION}])
    assert "31 days" not in default.choices[0].message.content
    ask = httpx.post(served + "/v1/ask", json={"question": HR_QUESTION, "collection": "hr"}, timeout=60).json()
    assert "31 days" in ask["text"]
    docs = httpx.get(served + "/v1/documents", params={"collection": "hr"}).json()
    assert [d["id"] for d in docs["data"]] == ["leave.md"] and docs["collection"] == "hr"


def test_api_upload_to_a_new_collection_creates_it(served: str, two_collections: dict[str, Path]) -> None:
    note = b"The staging cluster is called Tamarind and lives in Frankfurt.\n"
    added = httpx.post(served + "/v1/documents", params={"collection": "eng"}, files={"file": ("clusters.txt", note)}, timeout=60)
    assert added.status_code == 201 and added.json()["collection"] == "eng"
    assert Path(added.json()["folder"]) == two_collections["data"] / "uploads" / "eng"
    client = openai.OpenAI(base_url=served + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model="eng", messages=[{"role": "user", "content": "What is the staging cluster called?"}])
    assert "Tamarind" in reply.choices[0].message.content
    assert "eng" in {m.id for m in client.models.list()}
    gone = httpx.delete(served + "/v1/documents/clusters.txt", params={"collection": "eng"})
    assert gone.json()["file_deleted"] is True


# -- Slack --------------------------------------------------------------------------------------------


def test_slack_channels_answer_from_their_mapped_collection(two_collections: dict[str, Path], tmp_path: Path) -> None:
    Engine(Settings(data_dir=two_collections["data"], collection="hr", _env_file=None)).ingest(two_collections["hr"])
    engine = Engine(Settings(data_dir=two_collections["data"], seeds_dir=SEEDS, _env_file=None))
    slack = FakeSlack().start()
    try:
        settings = slack_settings(engine.settings, slack, tmp_path / ".qa", slack_channel_collections="C0GENERAL:hr")
        mapped = ask_once(engine, settings, slack, question=HR_QUESTION)
        assert "31 days" in section_text(mapped)
        unmapped = ask_once(engine, settings.model_copy(update={"slack_channel_collections": "C0OTHER:hr"}), slack, question=HR_QUESTION)
        assert "31 days" not in section_text(unmapped)
    finally:
        slack.stop()


def test_slack_channel_mapping_errors_name_the_setting() -> None:
    assert Settings(slack_channel_collections="C123:hr, C456:eng", _env_file=None).slack_collections() == {"C123": "hr", "C456": "eng"}
    with pytest.raises(ConfigError, match="QA_SLACK_CHANNEL_COLLECTIONS: 'C123' is not `CHANNEL:collection`"):
        Settings(slack_channel_collections="C123", _env_file=None).slack_collections()
    with pytest.raises(ConfigError, match="Bad collection name"):
        Settings(slack_channel_collections="C123:../hr", _env_file=None).slack_collections()


# -- the chat page ------------------------------------------------------------------------------------


def test_chat_page_selector_switches_the_sessions_collection(two_collections: dict[str, Path]) -> None:
    from qa.ui import ChatPage, _collection_choices, new_session

    Engine(Settings(data_dir=two_collections["data"], collection="hr", _env_file=None)).ingest(two_collections["hr"])
    engine = Engine(Settings(data_dir=two_collections["data"], seeds_dir=SEEDS, _env_file=None))
    assert _collection_choices(engine)[0] == "qa" and "hr" in _collection_choices(engine)
    page = ChatPage(engine, engine.settings)
    other_tab = new_session()
    messages, state, last, docs = page.select_collection("hr", new_session())
    assert messages == [] and last is None and "leave.md" in docs and SEED_FILE.name not in docs
    answer = list(page.chat(HR_QUESTION, state))[-1][3]
    assert "31 days" in answer["text"] and answer["citations"][0]["source"] == "leave.md"
    assert page.clear(state)[1]["collection"] == "hr"  # a new chat stays in the chosen collection
    default = list(page.chat(HR_QUESTION, other_tab))[-1][3]  # another tab still asks the default collection
    assert "31 days" not in default["text"]
