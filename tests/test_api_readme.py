"""The README's API examples, run as written: every `curl` line and the OpenAI Python snippet, against `qa serve`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_server import api_env, qa_serve, seeds_copy
from conftest import ROOT

from qa import Engine, Settings

pytestmark = pytest.mark.integration

README = (ROOT / "README.md").read_text(encoding="utf-8")


def fenced_block(after: str, language: str) -> str:
    """The first ```language block after the line `after` in the README."""
    start = README.index(after)
    match = re.search(rf"```{language}\n(.*?)```", README[start:], re.S)
    assert match, f"no {language} block after {after!r}"
    return match.group(1)


def curl_commands() -> tuple[str, list[str]]:
    """The block's first line (the exports) and each curl command, continuation lines joined."""
    lines = fenced_block("Examples with curl", "bash").replace("\\\n", " ").splitlines()
    return lines[0], [line for line in lines if line.startswith("curl ")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("readme")
    seeds = seeds_copy(root)
    data = root / ".qa"
    Engine(Settings(data_dir=data, seeds_dir=seeds, _env_file=None)).ingest(seeds)
    with qa_serve(api_env(data, seeds, QA_API_KEYS="key1"), host="127.0.0.1", log=root / "serve.log") as url:
        yield {"url": url, "root": root, "seeds": seeds}


def test_every_curl_example_runs(server: dict[str, Any]) -> None:
    exports, commands = curl_commands()
    assert len(commands) == 10
    (server["root"] / "notes.md").write_text("# Notes\n\nThe team offsite is in Lisbon in May.\n", encoding="utf-8")
    outputs = []
    for command in commands:
        script = f"{exports}\nexport QA_URL={server['url']}\n{command}"
        done = subprocess.run(["bash", "-c", script], cwd=server["root"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    chat, stream, ask, models, documents, upload, reindex, delete, health, metrics = outputs
    message = json.loads(chat)["choices"][0]["message"]
    assert "60" in message["content"] and message["citations"] and "**Sources**" in message["content"]
    events = [e[6:] for e in stream.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]" and json.loads(events[0])["object"] == "chat.completion.chunk"
    assert json.loads(ask)["citations"]
    assert "qa" in [m["id"] for m in json.loads(models)["data"]]
    assert json.loads(documents)["data"][0]["chunks"] == 7
    assert json.loads(upload)["id"] == "notes.md" and json.loads(upload)["status"] == "added"
    assert json.loads(reindex.strip().splitlines()[-1]) == {"event": "done", "ok": True}
    assert json.loads(delete)["file_deleted"] is True and not (server["seeds"] / "notes.md").exists()
    assert json.loads(health)["status"] == "ok"
    assert "qa_requests_total" in metrics


def test_a_wrong_key_makes_curl_fail_with_the_json_error(server: dict[str, Any]) -> None:
    exports, commands = curl_commands()
    done = subprocess.run(["bash", "-c", f"{exports}\nexport QA_URL={server['url']} QA_KEY=wrong\n{commands[0]}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 22  # --fail-with-body: HTTP error
    assert json.loads(done.stdout)["error"]["code"] == "invalid_api_key"


def test_the_openai_python_snippet_runs(server: dict[str, Any]) -> None:
    snippet = fenced_block("## Use it from any OpenAI client", "python")
    assert "http://127.0.0.1:8080/v1" in snippet
    code = snippet.replace("http://127.0.0.1:8080/v1", server["url"] + "/v1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "OPENAI_")) or k == "QA_EMBED_MODEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "**Sources**" in done.stdout and "abstained: False" in done.stdout
    assert done.stdout.count("60") >= 2  # the answer, then again streamed
