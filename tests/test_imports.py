"""`qa --help` stays fast: the CLI module imports no heavy dependency."""

from __future__ import annotations

import subprocess
import sys

import qa

HEAVY = ("chromadb", "llama_index", "gradio", "slack_bolt", "openai", "torch", "sentence_transformers")


def test_importing_the_cli_loads_no_heavy_dependency() -> None:
    code = "import sys, qa.cli; print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in %r)))" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_public_api_is_exported() -> None:
    for name in qa.__all__:
        assert hasattr(qa, name), name
    public = {n for n in vars(qa) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(qa.__all__)
