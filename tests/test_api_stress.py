"""Load (`make stress`, not `make test`): 50 `openai` clients at once against `qa serve`, 500 questions.

The same scripts as the chat page's stress run (question/follow-up pairs from the gold set, rotated
so neighbouring clients hold different conversations), each client sending its own conversation as
`messages`. Every reply must carry the citations, abstention flag and text the engine gives that
question with that history asked alone, and no request may fail (a 429 counts as a failure: the
default queue holds 64 waiting questions). Figures are printed and written to
bench/results/stress-api.json.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from api_server import api_env, qa_serve_process
from conftest import ROOT, SEEDS
from test_stress import PAIRS, cpu_seconds, session_scripts

from qa import Engine, Settings
from qa.api import escape_markdown

pytestmark = [pytest.mark.stress, pytest.mark.integration]

CLIENTS = 50
RESULTS = ROOT / "bench" / "results" / "stress-api.json"
RUN_TIMEOUT = 900.0


def scripts() -> list[list[str]]:
    base = session_scripts()  # 20 distinct rotations; clients beyond 20 repeat them at other moments
    return [base[i % len(base)] for i in range(CLIENTS)]


def expected(engine: Engine, script: list[str]) -> list[dict[str, Any]]:
    history: list[dict[str, str]] = []
    out = []
    for question in script:
        answer = engine.ask(question, history=list(history))
        out.append({"text": escape_markdown(answer.text), "abstained": answer.abstained,
                    "citations": [(c.n, c.source, c.start, c.end) for c in answer.citations]})
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.text}]
    return out


def run_client(url: str, script: list[str]) -> dict[str, Any]:
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
    record: dict[str, Any] = {"answers": [], "latencies_ms": [], "errors": []}
    messages: list[dict[str, str]] = []
    for question in script:
        messages.append({"role": "user", "content": question})
        started = time.perf_counter()
        try:
            reply = client.chat.completions.create(model="qa", messages=messages)
        except Exception as exc:  # noqa: BLE001 - counted, reported and failed on below
            record["errors"].append(f"{question!r}: {type(exc).__name__}: {exc}")
            messages.pop()
            continue
        record["latencies_ms"].append((time.perf_counter() - started) * 1000)
        message = reply.choices[0].message
        extra = message.model_extra or {}
        record["answers"].append({
            "content": message.content, "abstained": extra.get("abstained"),
            "citations": [(c["n"], c["source"], c["start"], c["end"]) for c in extra.get("citations", [])],
        })
        messages.append({"role": "assistant", "content": message.content})
    return record


def test_fifty_concurrent_openai_clients_all_get_their_own_answers(seed_data_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data)
    plans = scripts()
    engine = Engine(Settings(_env_file=None, data_dir=data, seeds_dir=SEEDS))
    distinct = {tuple(p): expected(engine, p) for p in map(tuple, plans)}
    with qa_serve_process(api_env(data, SEEDS), log=tmp_path / "serve.log") as (url, process):
        import httpx

        alone = run_client(url, plans[0])
        assert alone["errors"] == []
        started = time.perf_counter()
        cpu_before = cpu_seconds(process.pid)
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            futures = [pool.submit(run_client, url, p) for p in plans]
            _, late = wait(futures, timeout=RUN_TIMEOUT)
            assert not late, f"{len(late)} clients still running after {RUN_TIMEOUT:.0f}s"
            records = [f.result() for f in futures]
        wall = time.perf_counter() - started
        server_cpu = cpu_seconds(process.pid) - cpu_before
        metrics = httpx.get(url + "/metrics").text

    latencies = np.array([ms for r in records for ms in r["latencies_ms"]])
    errors = [e for r in records for e in r["errors"]]
    asked = sum(len(p) for p in plans)
    figures = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "clients": CLIENTS,
        "questions": asked,
        "answered": int(latencies.size),
        "errors": len(errors),
        "latency_ms": {
            "p50": round(float(np.percentile(latencies, 50)), 1) if latencies.size else None,
            "p95": round(float(np.percentile(latencies, 95)), 1) if latencies.size else None,
            "max": round(float(latencies.max()), 1) if latencies.size else None,
        },
        "latency_ms_one_client_alone": {
            "p50": round(float(np.percentile(alone["latencies_ms"], 50)), 1),
            "p95": round(float(np.percentile(alone["latencies_ms"], 95)), 1),
        },
        "wall_s": round(wall, 1),
        "questions_per_s": round(asked / wall, 2),
        "server_cpu_ms_per_question": round(server_cpu * 1000 / asked, 1),
        "server": "qa serve (extractive, seed index), QA_API_CONCURRENCY=4, QA_API_QUEUE=64, loopback, openai client",
        "cpus": os.cpu_count(),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print("\nstress (API):", json.dumps(figures, indent=2))

    assert errors == [], errors[:5]
    assert figures["answered"] == asked
    for plan, record in zip(plans, records, strict=True):
        want = distinct[tuple(plan)]
        assert len(record["answers"]) == len(want) == 2 * PAIRS
        for got, exp in zip(record["answers"], want, strict=True):
            assert got["content"].startswith(exp["text"])
            assert got["abstained"] == exp["abstained"] and got["citations"] == exp["citations"]
    assert "qa_rejected_total{" not in metrics  # nothing refused
    assert "Traceback" not in (tmp_path / "serve.log").read_text(encoding="utf-8")
