"""No single client can freeze the chat page: bounded queue, per-client rate limit, upload size, no open monitoring, no open host."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_flood import ask, chat_process, flood, rss_mb
from click.testing import CliRunner
from conftest import SEEDS
from ui_server import served

from qa import Engine, Settings
from qa.cli import main
from qa.ratelimit import RateLimiter
from qa.ui import is_loopback

pytestmark = [pytest.mark.integration]


# -- the flood, against a real `qa chat` -----------------------------------------------------------


@pytest.mark.slow
def test_a_flood_of_queue_joins_gets_busy_replies_and_the_page_keeps_answering(seed_data_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data)
    settings = {"QA_UI_QUEUE_MAX": "8", "QA_UI_CONCURRENCY": "1", "QA_RATE_LIMIT_PER_MINUTE": "60", "QA_RATE_LIMIT_BURST": "10"}
    with chat_process(data, tmp_path, **settings) as chat:
        assert "Mark Sedwill" in ask(chat.url)["text"]
        rss_before = rss_mb(chat.pid)

        # 300 anonymous joins from 50 addresses, each within its rate limit: the queue bound answers
        many = flood(chat.url, requests=300, clients=50, concurrency=100, timeout=120)
        assert many.errors == 0 and sum(many.statuses.values()) == 300
        assert many.statuses[503] >= 200, many.to_dict()
        assert set(many.statuses) <= {200, 503}
        assert many.retry_after == {"5"}
        assert any("busy" in d and "Retry" in d for d in many.details)

        # 50 joins from one address: its rate limit answers, with how long to wait
        one = flood(chat.url, requests=50, clients=1, concurrency=20, timeout=120)
        assert one.statuses[429] >= 35 and one.statuses[200] <= 15, one.to_dict()
        assert any("too many requests" in d for d in one.details)

        # afterwards a user (from 127.0.0.1, not one of the flooding addresses) is answered as before
        assert "Mark Sedwill" in ask(chat.url)["text"]
        assert rss_mb(chat.pid) - rss_before < 200


def test_the_rate_limit_is_per_client_and_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=3, clock=lambda: now[0])
    assert [limiter.allow("alice")[0] for _ in range(4)] == [True, True, True, False]
    allowed, wait = limiter.allow("alice")
    assert not allowed and 0 < wait <= 1.0
    assert limiter.allow("bob") == (True, 0.0)  # another client is not held back by alice
    now[0] += 1.0
    assert limiter.allow("alice")[0] is True
    assert RateLimiter(per_minute=0, burst=1).allow("anyone") == (True, 0.0)  # 0 turns it off


def test_the_rate_limiter_forgets_idle_clients_so_memory_stays_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=5, max_clients=100, clock=lambda: now[0])
    for n in range(10_000):
        limiter.allow(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter._buckets) <= 100
    now[0] += 60
    limiter.allow("late")
    assert len(limiter._buckets) == 1


# -- upload size and monitoring on the raw endpoints ---------------------------------------------


@pytest.fixture(scope="module")
def small_upload_page(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("limits")
    settings = Settings(_env_file=None, data_dir=root / ".qa", seeds_dir=root / "seeds", max_upload_mb=1,
                        rate_limit_per_minute=0)
    settings.seeds_dir.mkdir()
    (settings.seeds_dir / "fleet.txt").write_text("The fleet left Sevastopol on Monday.\n", encoding="utf-8")
    engine = Engine(settings)
    engine.ingest(settings.seeds_dir)
    with served(engine) as (_, url):
        yield url


def test_raw_upload_endpoint_refuses_more_than_the_upload_limit_in_one_request(small_upload_page: str) -> None:
    url = small_upload_page
    many = [("files", (f"part{i}.txt", b"a" * 400_000, "text/plain")) for i in range(5)]  # 2 MB in 0.4 MB files
    refused = httpx.post(url + "gradio_api/upload", files=many, timeout=60)
    assert refused.status_code == 413
    assert "1 MB" in refused.text and "QA_MAX_UPLOAD_MB" in refused.text
    one = httpx.post(url + "gradio_api/upload", files=[("files", ("big.txt", b"a" * 1_500_000, "text/plain"))], timeout=60)
    assert one.status_code == 413
    fine = httpx.post(url + "gradio_api/upload", files=[("files", ("small.txt", b"The fleet.\n", "text/plain"))], timeout=60)
    assert fine.status_code == 200 and fine.json()[0].endswith("small.txt")


def test_monitoring_dashboard_is_off(small_upload_page: str, capfd: pytest.CaptureFixture[str]) -> None:
    url = small_upload_page
    assert httpx.get(url + "monitoring/summary", timeout=30).status_code in (403, 404)
    assert httpx.get(url + "monitoring", timeout=30).status_code in (403, 404)
    assert "monitoring/" not in capfd.readouterr().out  # its key is not printed either


# -- who may serve where ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.org"])
def test_chat_on_an_open_host_without_login_is_refused(host: str) -> None:
    result = CliRunner().invoke(main, ["chat", "--host", host, "--port", "0"])
    assert result.exit_code == 1
    assert "QA_UI_AUTH" in result.output and "--insecure-no-auth" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_loopback_hosts_need_no_login() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.org", ""))


@pytest.mark.slow
def test_insecure_no_auth_serves_an_open_host_with_a_warning(seed_data_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    from chat_flood import free_port

    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data)
    port = free_port()
    env = {"QA_DATA_DIR": str(data), "QA_SEEDS_DIR": str(SEEDS), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    command = [str(Path(sys.executable).with_name("qa")), "chat", "--host", "0.0.0.0", "--port", str(port), "--insecure-no-auth"]
    log = tmp_path / "chat.log"
    with open(log, "w", encoding="utf-8") as sink:
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while "Chat page:" not in log.read_text(encoding="utf-8"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text(encoding="utf-8")
            time.sleep(0.2)  # polling for start-up
        assert httpx.get(f"http://127.0.0.1:{port}/config", timeout=30).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "without a login (--insecure-no-auth)" in log.read_text(encoding="utf-8")
