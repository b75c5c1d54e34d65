"""Load (`make stress`, not `make test`): 20 chat sessions at once, 200 questions through gradio_client against `qa chat`.

Each session asks five question/follow-up pairs from the gold set, rotated so that neighbouring
sessions hold different conversations at the same moment. Every answer must equal the one the
engine gives to the same question with the same history asked alone (so a follow-up answered from
another session's conversation shows up as a different answer), every question is answered once,
and no request fails. One session first runs by itself, for the latency without contention. The
figures are printed and written to bench/results/stress.json.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, SEEDS, free_port, load_gold

from qa import Engine, Settings

pytestmark = [pytest.mark.stress, pytest.mark.integration]

SESSIONS = 20
PAIRS = 5  # per session: a question and a follow-up leaning on it, so 10 questions a session
RESULTS = ROOT / "bench" / "results" / "stress.json"
ANSWER_TIMEOUT = 120.0  # seconds for one answer: a hung request fails the run instead of stalling it
RUN_TIMEOUT = 900.0


def session_scripts() -> list[list[str]]:
    """Per session, its questions in order: (earlier question, follow-up) pairs from the gold set."""
    pairs = [(item["history"][-1], item["question"]) for item in load_gold() if item.get("history")]
    assert len(pairs) >= PAIRS
    scripts = []
    for s in range(SESSIONS):
        chosen = [pairs[(s + 3 * j) % len(pairs)] for j in range(PAIRS)]
        scripts.append([q for pair in chosen for q in pair])
    return scripts


def expected_answers(engine: Engine, script: list[str]) -> list[dict[str, Any]]:
    """What the engine answers to each question of `script`, with that session's history, asked alone."""
    history: list[dict[str, str]] = []
    answers = []
    for question in script:
        answer = engine.ask(question, history=list(history))
        answers.append(summary(answer.to_dict()))
        history += [{"role": "user", "content": answer.question}, {"role": "assistant", "content": answer.text}]
    return answers


def summary(answer: dict[str, Any]) -> dict[str, Any]:
    """The parts of an answer a user sees, without timings."""
    return {
        "text": answer["text"],
        "abstained": answer["abstained"],
        "retrieval_query": answer["retrieval_query"],
        "citations": [(c["n"], c["source"], c["start"], c["end"]) for c in answer["citations"]],
    }


def run_session(url: str, script: list[str]) -> dict[str, Any]:
    """One browser-tab-like session: ask the script in order; record answers, final messages, latencies, errors."""
    from gradio_client import Client

    record: dict[str, Any] = {"answers": [], "latencies_ms": [], "errors": [], "messages": []}
    try:
        client = Client(url, verbose=False, download_files=False)
    except Exception as exc:  # noqa: BLE001 - counted, reported, and failed on below
        record["errors"].append(f"connect: {type(exc).__name__}: {exc}")
        return record
    for question in script:
        started = time.perf_counter()
        try:
            _, messages, answer = client.submit(question, api_name="/chat").result(timeout=ANSWER_TIMEOUT)
        except Exception as exc:  # noqa: BLE001
            record["errors"].append(f"{question!r}: {type(exc).__name__}: {exc}")
            continue
        record["latencies_ms"].append((time.perf_counter() - started) * 1000)
        if not answer or "error" in answer:
            record["errors"].append(f"{question!r}: {answer}")
            continue
        record["answers"].append(summary(answer))
        record["messages"] = messages
    return record


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_chat(data: Path, cwd: Path) -> tuple[subprocess.Popen[str], str, Path]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "OPENAI_", "SLACK_")) or k == "QA_EMBED_MODEL"}
    env.update(QA_DATA_DIR=str(data), QA_SEEDS_DIR=str(SEEDS), PYTHONUNBUFFERED="1",
               QA_RATE_LIMIT_PER_MINUTE="0")  # 200 questions from one address: load, not the rate limit
    log = cwd / "chat.log"
    with open(log, "w", encoding="utf-8") as sink:
        process = subprocess.Popen([str(Path(sys.executable).with_name("qa")), "chat", "--port", str(port)],
                                   env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while f"Chat page: {url}" not in log.read_text(encoding="utf-8"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("qa chat did not start:\n" + log.read_text(encoding="utf-8")[-3000:])
        time.sleep(0.2)  # polling for start-up, not waiting on an outcome
    return process, url, log


def test_twenty_concurrent_sessions_each_get_their_own_answers(seed_data_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data)
    scripts = session_scripts()
    engine = Engine(Settings(_env_file=None, data_dir=data, seeds_dir=SEEDS))
    expected = [expected_answers(engine, script) for script in scripts]
    chunks_before = engine.store.count()

    process, url, log = start_chat(data, tmp_path)
    try:
        alone = run_session(url, scripts[0])  # one session by itself first: the latency without contention
        assert alone["errors"] == [] and alone["answers"] == expected[0]
        cpu_before, started = cpu_seconds(process.pid), time.perf_counter()
        with ThreadPoolExecutor(max_workers=SESSIONS) as pool:
            futures = [pool.submit(run_session, url, script) for script in scripts]
            done, late = wait(futures, timeout=RUN_TIMEOUT)
            assert not late, f"{len(late)} sessions still running after {RUN_TIMEOUT:.0f}s"
            records = [f.result() for f in futures]
        wall = time.perf_counter() - started
        server_cpu = cpu_seconds(process.pid) - cpu_before
    finally:
        process.terminate()
        process.wait(timeout=30)

    latencies = np.array([ms for r in records for ms in r["latencies_ms"]])
    errors = [e for r in records for e in r["errors"]]
    asked = sum(len(s) for s in scripts)
    figures = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sessions": SESSIONS,
        "questions": asked,
        "answered": int(latencies.size),
        "errors": len(errors),
        "error_rate": round(len(errors) / asked, 4),
        "latency_ms": {
            "p50": round(float(np.percentile(latencies, 50)), 1) if latencies.size else None,
            "p95": round(float(np.percentile(latencies, 95)), 1) if latencies.size else None,
            "max": round(float(latencies.max()), 1) if latencies.size else None,
            "mean": round(float(latencies.mean()), 1) if latencies.size else None,
        },
        "latency_ms_one_session_alone": {
            "p50": round(float(np.percentile(alone["latencies_ms"], 50)), 1),
            "p95": round(float(np.percentile(alone["latencies_ms"], 95)), 1),
        },
        "wall_s": round(wall, 1),
        "questions_per_s": round(asked / wall, 2),
        "server_cpu_ms_per_question": round(server_cpu * 1000 / asked, 1),
        "server": "qa chat (extractive, seed index), QA_UI_CONCURRENCY=4, loopback",
        "cpus": os.cpu_count(),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print("\nstress:", json.dumps(figures, indent=2))

    assert errors == [], errors[:5]
    assert figures["error_rate"] == 0 and figures["answered"] == asked
    for script, want, record in zip(scripts, expected, records, strict=True):
        # answered once each, in order, from this session's own conversation
        assert record["answers"] == want
        messages = record["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"] * len(script)
        shown = [m["content"] if isinstance(m["content"], str) else m["content"][0]["text"] for m in messages[::2]]
        for question, html_text in zip(script, shown, strict=True):
            assert escape(question, quote=True) in html_text
    # the check can see cross-talk: at each step, sessions hold different conversations
    for step in range(1, 2 * PAIRS, 2):
        assert len({want[step]["retrieval_query"] for want in expected}) > 1
    assert engine.store.count() == chunks_before
    assert "Traceback" not in log.read_text(encoding="utf-8")
