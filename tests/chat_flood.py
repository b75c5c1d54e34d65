"""A real `qa chat` process on loopback, and a bounded flood of raw queue joins against it.

Used by `tests/test_service_limits.py` and `bench/hostile.py` (which records the figures). Each
flooding client can use its own loopback source address (127.0.0.2, 127.0.0.3, ...), so a flood
can come from one client (the rate limit's case) or from many (the queue bound's case).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
QA = Path(sys.executable).with_name("qa")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process now (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Chat:
    process: subprocess.Popen[str]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@contextmanager
def chat_process(data: Path, cwd: Path, *, timeout: float = 240, **env: str) -> Iterator[Chat]:
    """`qa chat` on a free loopback port over `data`, with extra QA_* settings; stopped afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "OPENAI_", "SLACK_")) or k == "QA_EMBED_MODEL"}
    environ.update(QA_DATA_DIR=str(data), QA_SEEDS_DIR=str(SEEDS), PYTHONUNBUFFERED="1", **env)
    log = cwd / f"chat-{port}.log"
    with open(log, "w", encoding="utf-8") as sink:
        process = subprocess.Popen([str(QA), "chat", "--port", str(port)], env=environ, cwd=cwd,
                                   stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout
        while f"Chat page: {url}" not in log.read_text(encoding="utf-8"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("qa chat did not start:\n" + log.read_text(encoding="utf-8")[-3000:])
            time.sleep(0.2)  # polling for start-up, not waiting on an outcome
        yield Chat(process, url, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def chat_fn_index(url: str) -> int:
    """The index of the page's `/chat` endpoint, from the page's config."""
    config = httpx.get(url + "config", timeout=30).json()
    for index, dependency in enumerate(config["dependencies"]):
        if dependency.get("api_name") == "chat":
            return int(dependency.get("id", index))
    raise AssertionError("no /chat endpoint in the page config")


@dataclass
class Flood:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: set[str] = field(default_factory=set)
    details: set[str] = field(default_factory=set)
    errors: int = 0  # connection failures, timeouts
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "retry_after": sorted(self.retry_after), "errors": self.errors, "seconds": round(self.seconds, 2)}


def flood(url: str, *, requests: int, clients: int = 1, concurrency: int = 100, timeout: float = 60) -> Flood:
    """Send `requests` queue joins for a question as fast as `concurrency` connections allow.

    Client i sends from 127.0.0.(i + 2), so `clients` > 1 spreads the flood over that many
    addresses. Each join is a new anonymous session; nobody listens for the answers.
    """
    return asyncio.run(_flood(url, requests=requests, clients=clients, concurrency=concurrency, timeout=timeout))


async def _flood(url: str, *, requests: int, clients: int, concurrency: int, timeout: float) -> Flood:
    fn_index = chat_fn_index(url)
    result = Flood()
    limits = httpx.Limits(max_connections=max(1, concurrency // clients) + 1)
    pool = [
        httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=f"127.0.0.{i + 2}", limits=limits), timeout=timeout)
        for i in range(clients)
    ]
    gate = asyncio.Semaphore(concurrency)

    async def join(n: int) -> None:
        body = {"data": ["What is Mark Sedwill's job?", None], "fn_index": fn_index,
                "session_hash": uuid.uuid4().hex[:11], "event_data": None, "trigger_id": None}
        async with gate:
            try:
                response = await pool[n % clients].post(url + "gradio_api/queue/join", json=body)
            except httpx.HTTPError:
                result.errors += 1
                return
        result.statuses[response.status_code] += 1
        if "retry-after" in response.headers:
            result.retry_after.add(response.headers["retry-after"])
        if response.status_code != 200:
            result.details.add(response.text[:300])

    started = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.gather(*(join(n) for n in range(requests))), timeout)
    finally:
        result.sent = requests
        result.seconds = time.perf_counter() - started
        for client in pool:
            await client.aclose()
    return result


def ask(url: str, question: str = "What is Mark Sedwill's job?") -> dict[str, Any]:
    """One question through gradio_client, as a user's page would ask it; returns the answer dict."""
    from gradio_client import Client

    _, _, answer = Client(url, verbose=False, download_files=False).predict(question, api_name="/chat")
    return dict(answer)
