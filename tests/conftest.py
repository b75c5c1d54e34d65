"""Shared fixtures: every test gets its own data folder and a clean QA_* environment.

Embeddings: a test embeds with the deterministic fake (`QA_EMBED_MODEL=fake`: hashed words, no model
to load) unless it, or its module, is marked `real_model`: the tests that measure answer quality, the
encoder or what a user sees end to end keep the bundled all-MiniLM-L6-v2. The setting is in the
environment, so servers and `qa` subprocesses a test starts embed the same way; module-scoped
fixtures see their module's choice, and the seed index is built once per session for each model.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REAL_MODEL = "minilm"
FAKE_MODEL = "fake"
ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_FILE = SEEDS / "000_da55755936a874b9.txt"
GOLD = ROOT / "eval" / "gold.jsonl"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"

from qa.cli import fewer_gc_passes  # noqa: E402 - after the environment above

# A worker imports chromadb, gradio, llama-index and torch and keeps what it builds for the session: it runs
# the cyclic GC as seldom as `qa` itself does.
fewer_gc_passes()


def _embed_model(node: pytest.Item | pytest.Collector) -> str:
    if node.get_closest_marker("fake_model"):  # a test in a `real_model` module that measures no quality
        return FAKE_MODEL
    return REAL_MODEL if node.get_closest_marker("real_model") else FAKE_MODEL


@pytest.fixture(scope="module", autouse=True)
def module_embed_model(request: pytest.FixtureRequest) -> Iterator[str]:
    """The embedding model of this module's fixtures (servers, shared indexes): real if it is marked `real_model`."""
    model = _embed_model(request.node)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QA_EMBED_MODEL", model)
        yield model


@pytest.fixture(autouse=True)
def clean_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[None]:
    """No QA_* or OpenAI/Slack variables leak in; the store lives under the test's tmp_path."""
    for name in list(os.environ):
        if name.startswith(("QA_", "OPENAI_", "SLACK_")):
            monkeypatch.delenv(name, raising=False)
    model = _embed_model(request.node)
    if "seed_data_dir" in request.fixturenames and model != _embed_model(request.node.parent or request.node):
        pytest.fail(f"{request.node.name} embeds with {model} but its module's seed_data_dir with the other model: "
                    "mark the module, or use real_seed_data_dir", pytrace=False)
    monkeypatch.setenv("QA_EMBED_MODEL", model)
    monkeypatch.setenv("QA_DATA_DIR", str(tmp_path / ".qa"))
    monkeypatch.setenv("QA_SEEDS_DIR", str(SEEDS))
    monkeypatch.chdir(tmp_path)
    yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def _seed_indexes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Per embedding model: the seed index (built on first use) and one read-only engine over it."""
    return {}


def _seed_index(cache: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, model: str) -> tuple[Path, Any]:
    from qa import Engine, Settings

    if model not in cache:
        data = tmp_path_factory.mktemp(f"seed-index-{model}") / ".qa"
        settings = Settings(data_dir=data, seeds_dir=SEEDS, embed_model=model, _env_file=None)
        Engine(settings).ingest(SEEDS)
        cache[model] = (data, Engine(settings))
    return cache[model]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def seed_data_dir(_seed_indexes: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, module_embed_model: str) -> Path:
    """A data folder with seeds/ ingested once per session (for the module's embedding model); copy it before writing to it."""
    return _seed_index(_seed_indexes, tmp_path_factory, module_embed_model)[0]


@pytest.fixture
def real_seed_data_dir(_seed_indexes: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`seed_data_dir` embedded by the real model, for a test marked `real_model` in a module that is not."""
    return _seed_index(_seed_indexes, tmp_path_factory, REAL_MODEL)[0]


@pytest.fixture
def seed_engine(seed_data_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """An engine over its own copy of the seed index."""
    from qa import Engine, Settings

    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data, dirs_exist_ok=True)
    return Engine(Settings(data_dir=data, seeds_dir=SEEDS, _env_file=None))


@pytest.fixture
def shared_seed_engine(_seed_indexes: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """One read-only engine per embedding model for the whole session (fast: model and index load once)."""
    return _seed_index(_seed_indexes, tmp_path_factory, _embed_model(request.node))[1]


def engine_over_document(root: Path, name: str, text: str):  # type: ignore[no-untyped-def]
    """An engine over one document `name` holding `text`, indexed in `root` (its own store and docs folder)."""
    from qa import Engine, Settings

    (root / "docs").mkdir()
    (root / "docs" / name).write_text(text, encoding="utf-8")
    engine = Engine(Settings(data_dir=root / ".qa", seeds_dir=root / "docs", _env_file=None))
    engine.ingest(root / "docs")
    return engine


def load_gold(path: Path = GOLD) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]



# `make test` runs `pytest -n 3 --dist loadgroup` (pytest-xdist): each module is one unit of work, run whole by
# one worker so its module-scoped servers, indexes and runs start once; the slow modules whose tests share
# nothing but the per-worker session seed index are split test by test over the workers. The slow ones are
# handed out first, so no worker ends with a long module alone. Order and placement only: every test still
# runs once. Update from `pytest --durations=0` when a module grows slow.
# (xdist's own `xdist_group` grouping rewrites `item._nodeid`, which pytest 9 no longer reads, so it would run
# every test as its own unit and start a module's servers once per worker: `ModuleScheduling` groups instead.)
SLOW_MODULES_FIRST = (  # longest first, and the ones that mostly wait (deadlines, servers) early, where the other
    # workers' CPU covers their waits; the short CPU-bound ones fill the workers' tails
    "test_store_check.py", "test_secrets.py", "test_writer_lock.py", "test_api.py", "test_store_faults.py",
    "test_llm_grounding.py", "test_embed.py", "test_eval.py", "test_ui_browser.py", "test_store_freshness.py",
    "test_service_limits.py", "test_llm.py", "test_slack.py", "test_slack_socket_mode.py", "test_ui.py",
    "test_api_replicas.py", "test_api_readme.py", "test_api_collections.py", "test_hostile_input.py",
    "test_store_model.py", "test_hostile_questions.py", "test_mixed_documents.py", "test_documents_browser.py",
    "test_answerability.py",
)
SPREAD_MODULES = {"test_writer_lock.py", "test_store_model.py"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the order within a module is kept


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup`: one unit of work per module (per test in SPREAD_MODULES), handed out in collection order."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.partition("::")[0]
            return nodeid if module.rpartition("/")[2] in SPREAD_MODULES else module

    config.option.loadscopereorder = False  # keep SLOW_MODULES_FIRST's order, not the most tests first
    return ModuleScheduling(config, log)
