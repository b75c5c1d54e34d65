"""Time LLM mode with a real model: llama.cpp's server and the bundled SmolLM2-135M (`make llm-local` first).

    .venv/bin/python bench/llm_local.py [--questions 8] [--sessions 8] [--threads 2]

Measures, on the seed index, time to first token and total per answer:
- `qa ask` (a fresh process per question; `Answer.timings` and the process's wall time);
- the chat page (`qa chat` in its own process, driven by gradio_client: first streamed update, final answer),
  one session alone ("idle"), then `--sessions` sessions at once asking in a loop ("load", the shape of `make stress`).
Prints the table and writes bench/results/llm-local.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QA = str(Path(sys.executable).parent / "qa")
sys.path.insert(0, str(ROOT))

from qa.local_llm import MODEL_ALIAS, LocalServer, free_port  # noqa: E402

QUESTIONS = [
    "How many US diplomats will Russia expel?",
    "What is Mark Sedwill's job?",
    "Who is the UN Secretary General mentioned?",
    "What did Theresa May say about the expulsions?",
    # the rest from the dev half of eval/gold.jsonl (a benchmark's workload is no place for test items)
    "Which US consulate did Moscow close?",
    "Where did the poisoning of the former Russian agent take place?",
    "In what year did Russia annex Crimea?",
    "Why did Trump call Putin?",
]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo), 1)


def stats(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95)}


def time_cli(env: dict[str, str], questions: list[str]) -> dict[str, Any]:
    first, total, wall = [], [], []
    for q in questions:
        started = time.perf_counter()
        out = subprocess.run([QA, "ask", "--json", q], env=env, capture_output=True, text=True, check=True)
        wall.append((time.perf_counter() - started) * 1000)
        answer = json.loads(out.stdout)
        assert answer["mode"] == f"llm:{MODEL_ALIAS}", answer.get("notice")
        first.append(answer["timings"]["first_token_ms"])
        total.append(answer["timings"]["total_ms"])
    return {"first_token_ms": stats(first), "total_ms": stats(total), "process_wall_ms": stats(wall)}


def ask_page(url: str, question: str) -> tuple[float, float, str]:
    """(first streamed update, final answer) in ms as a gradio_client user sees them, and the answer's mode."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    started = time.perf_counter()
    job = client.submit(question, api_name="/chat")
    first = None
    while not job.done():
        if first is None and any(out[1] and out[2] is None and _has_text(out[1]) for out in job.outputs()):
            first = (time.perf_counter() - started) * 1000
        time.sleep(0.01)
    _, _, answer = job.result()
    total = (time.perf_counter() - started) * 1000
    return (first if first is not None else total), total, answer["mode"]


def _has_text(messages: list[dict[str, Any]]) -> bool:
    """The streaming answer shows model text, not the "Searching the documents…" placeholder."""
    content = messages[-1].get("content") if messages else None
    html = "".join(p.get("text", "") for p in content if isinstance(p, dict)) if isinstance(content, list) else str(content or "")
    return "qa-answer" in html and "Searching the documents" not in html


def time_page(url: str, questions: list[str], sessions: int, rounds: int) -> dict[str, Any]:
    def session(i: int) -> list[tuple[float, float, str]]:
        return [ask_page(url, questions[(i + r) % len(questions)]) for r in range(rounds)]

    started = time.perf_counter()
    with ThreadPoolExecutor(sessions) as pool:
        results = [row for rows in pool.map(session, range(sessions)) for row in rows]
    took = time.perf_counter() - started
    modes = [m for _, _, m in results]
    return {
        "sessions": sessions,
        "answers": len(results),
        "llm_answers": sum(1 for m in modes if m.startswith("llm:")),  # the rest fell back to extractive
        "first_update_ms": stats([f for f, _, _ in results]),
        "total_ms": stats([t for _, t, _ in results]),
        "answers_per_s": round(len(results) / took, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "llm-local.json")
    args = parser.parse_args()
    questions = QUESTIONS[: args.questions]
    work = Path(tempfile.mkdtemp(prefix="qa-llm-bench-"))
    chat: subprocess.Popen[bytes] | None = None
    try:
        env = {**os.environ, "QA_DATA_DIR": str(work / ".qa"), "QA_SEEDS_DIR": str(ROOT / "seeds"), "HF_HUB_OFFLINE": "1"}
        subprocess.run([QA, "ingest"], env=env, check=True, capture_output=True)
        with LocalServer(threads=args.threads, log=work / "server.log") as server:
            env |= {"QA_LLM_BASE_URL": server.base_url, "QA_LLM_MODEL": MODEL_ALIAS, "QA_LLM_TIMEOUT": "120", "QA_LLM_DEADLINE": "300"}
            load_before = os.getloadavg()
            cli = time_cli(env, questions)
            port = free_port()
            chat = subprocess.Popen([QA, "chat", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            url = f"http://127.0.0.1:{port}/"
            for _ in range(600):
                try:
                    import urllib.request

                    urllib.request.urlopen(url, timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            ask_page(url, questions[0])  # warm: the page's engine imports llama-index on its first question
            idle = time_page(url, questions, sessions=1, rounds=len(questions))
            loaded = time_page(url, questions, sessions=args.sessions, rounds=args.rounds)
            load_after = os.getloadavg()
        result = {
            "model": MODEL_ALIAS,
            "server": f"llama_cpp.server, {args.threads} threads, OMP_WAIT_POLICY=PASSIVE",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
            "qa_ask": cli,
            "chat_page_idle": idle,
            "chat_page_load": loaded,
        }
        print(json.dumps(result, indent=2))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    finally:
        if chat is not None:
            chat.terminate()
            chat.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
