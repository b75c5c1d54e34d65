"""Keys and tokens never show up in what `qa` prints, even when the LLM fails."""

from __future__ import annotations

from click.testing import CliRunner
from conftest import free_port

from qa import Settings
from qa.cli import main

SECRETS = {"QA_LLM_API_KEY": "sk-llm-SECRET-1", "OPENAI_API_KEY": "sk-openai-SECRET-2",
           "SLACK_BOT_TOKEN": "xoxb-SECRET-3", "SLACK_SIGNING_SECRET": "SECRET-4", "QA_UI_AUTH": "ada:SECRET-5"}


def test_secrets_stay_out_of_info_answers_errors_and_settings(seed_data_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QA_DATA_DIR", str(seed_data_dir))
    monkeypatch.setenv("QA_LLM_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")  # nothing listens: fallback path
    monkeypatch.setenv("QA_LLM_RETRIES", "0")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    outputs = [
        CliRunner().invoke(main, ["info"]).output,
        CliRunner().invoke(main, ["info", "--json"]).output,
        CliRunner().invoke(main, ["ask", "--json", "--show-prompt", "What is Mark Sedwill's job?"]).output,
        CliRunner().invoke(main, ["ask", ""]).output,
        repr(Settings()),
        str(Settings().model_dump()),
    ]
    assert "The language model is unavailable" in outputs[2]
    for text in outputs:
        assert "SECRET" not in text
