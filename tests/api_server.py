"""Helpers for the API tests: `qa serve` as a real process on a free loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from conftest import SEEDS, free_port

QA = str(Path(sys.executable).parent / "qa")
KEY = "test-key-0123456789"
OTHER_KEY = "second-key-abcdef"


def seeds_copy(root: Path) -> Path:
    """A private seeds folder (uploads and deletes write to it; the repository's stays untouched)."""
    folder = root / "seeds"
    shutil.copytree(SEEDS, folder)
    return folder


def api_env(data_dir: Path, seeds_dir: Path, **env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "OPENAI_", "SLACK_")) or k == "QA_EMBED_MODEL"}
    return {**base, "QA_DATA_DIR": str(data_dir), "QA_SEEDS_DIR": str(seeds_dir), "HF_HUB_OFFLINE": "1", **env}


@contextmanager
def qa_serve(env: dict[str, str], *, host: str = "127.0.0.1", healthy: bool = True, log: Path | None = None) -> Iterator[str]:
    """`qa serve` on a free port until the block ends; yields its base URL once /healthz answers."""
    with qa_serve_process(env, host=host, healthy=healthy, log=log) as (url, _):
        yield url


@contextmanager
def qa_serve_process(
    env: dict[str, str], *, host: str = "127.0.0.1", healthy: bool = True, log: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As `qa_serve`, yielding (base URL, process)."""
    port = free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen([QA, "serve", "--host", host, "--port", str(port)], env=env, stdout=out, stderr=out)
    url = f"http://{host}:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"qa serve exited with {proc.returncode}" + (f": {log.read_text()}" if log else ""))
            try:
                status = httpx.get(f"{url}/healthz", timeout=2).status_code
                if status == 200 or not healthy:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("qa serve did not become healthy in 90 s")
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]
