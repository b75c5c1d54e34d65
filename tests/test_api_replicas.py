"""Two `qa serve` replicas on one `chroma run` server: what one changes, the other answers from, without a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from api_server import api_env, qa_serve, seeds_copy
from conftest import SEED_FILE
from test_chroma_server import chroma_server  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

QUESTION = "What is Mark Sedwill's job?"
LUNAR = "Who runs the lunar base Artemis Camp?"
NOTE = "# Lunar base\n\nThe lunar base Artemis Camp is run by commander Ilse Varga since 2031.\n"
BOUND_S = 10.0  # a change made through one replica shows in the other's answers within this


def ask(url: str, question: str) -> dict[str, Any]:
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
    reply = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": question}])
    message = reply.choices[0].message
    return {"content": message.content, **(message.model_extra or {})}


def within(bound: float, check: Callable[[], bool]) -> float:
    """Seconds until `check()` holds, failing after `bound`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > bound:
            pytest.fail(f"not consistent within {bound} s")
        time.sleep(0.2)
    return time.monotonic() - started


def test_two_replicas_see_each_others_ingest_and_delete(chroma_server: int, tmp_path: Path) -> None:  # noqa: F811
    server = {"QA_CHROMA_HOST": "127.0.0.1", "QA_CHROMA_PORT": str(chroma_server)}
    seeds_a = seeds_copy(tmp_path / "a")
    seeds_b = seeds_copy(tmp_path / "b")
    env_a = api_env(tmp_path / "a" / ".qa", seeds_a, **server)
    env_b = api_env(tmp_path / "b" / ".qa", seeds_b, **server)
    with qa_serve(env_a, healthy=False, log=tmp_path / "a.log") as a, qa_serve(env_b, healthy=False, log=tmp_path / "b.log") as b:
        assert httpx.get(b + "/healthz").status_code == 503  # nothing indexed yet: B says so

        # ingest through A; B answers from it
        report = httpx.post(a + "/v1/documents:reindex", json={}, timeout=120).json()
        assert report["ok"] and report["folders"][0]["report"]["added"] == [SEED_FILE.name]
        waited = within(BOUND_S, lambda: httpx.get(b + "/healthz").status_code == 200)
        from_a, from_b = ask(a, QUESTION), ask(b, QUESTION)
        assert "national security adviser" in from_b["content"]
        assert from_a["citations"] == from_b["citations"] and from_a["content"] == from_b["content"]

        # a new document through A
        added = httpx.post(a + "/v1/documents", files={"file": ("lunar base.md", NOTE.encode())}, timeout=60)
        assert added.status_code == 201
        waited = max(waited, within(BOUND_S, lambda: "Ilse Varga" in ask(b, LUNAR)["content"]))
        assert [d["id"] for d in httpx.get(b + "/v1/documents").json()["data"]] == sorted([SEED_FILE.name, "lunar_base.md"])

        # deleted through B; A stops citing it
        gone = httpx.delete(b + "/v1/documents/lunar_base.md")
        assert gone.status_code == 200 and gone.json()["chunks_deleted"] >= 1
        waited = max(waited, within(BOUND_S, lambda: "Ilse Varga" not in ask(a, LUNAR)["content"]))
        assert ask(a, LUNAR)["abstained"] is True and ask(b, LUNAR)["abstained"] is True
        assert [d["id"] for d in httpx.get(a + "/v1/documents").json()["data"]] == [SEED_FILE.name]
        assert ask(a, QUESTION)["citations"] == ask(b, QUESTION)["citations"]
    print(f"\nreplicas consistent after at most {waited:.2f} s")
