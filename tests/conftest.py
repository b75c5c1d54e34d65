"""Shared fixtures: every test gets its own data folder and a clean QA_* environment."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_FILE = SEEDS / "000_da55755936a874b9.txt"
GOLD = ROOT / "eval" / "gold.jsonl"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"


@pytest.fixture(autouse=True)
def clean_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No QA_* or OpenAI/Slack variables leak in; the store lives under the test's tmp_path."""
    for name in list(os.environ):
        if name.startswith(("QA_", "OPENAI_", "SLACK_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QA_DATA_DIR", str(tmp_path / ".qa"))
    monkeypatch.setenv("QA_SEEDS_DIR", str(SEEDS))
    monkeypatch.chdir(tmp_path)
    yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def seed_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with seeds/ ingested once per session; copy it before writing to it."""
    from qa import Engine, Settings

    data = tmp_path_factory.mktemp("seed-index") / ".qa"
    Engine(Settings(data_dir=data, seeds_dir=SEEDS, _env_file=None)).ingest(SEEDS)
    return data


@pytest.fixture
def seed_engine(seed_data_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """An engine over its own copy of the seed index."""
    from qa import Engine, Settings

    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data, dirs_exist_ok=True)
    return Engine(Settings(data_dir=data, seeds_dir=SEEDS, _env_file=None))


@pytest.fixture(scope="session")
def shared_seed_engine(seed_data_dir: Path):  # type: ignore[no-untyped-def]
    """One read-only engine for the whole session (fast: model and index load once)."""
    from qa import Engine, Settings

    return Engine(Settings(data_dir=seed_data_dir, seeds_dir=SEEDS, _env_file=None))


def load_gold(path: Path = GOLD) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
