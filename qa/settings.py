"""All settings in one place: read once from `QA_*` variables (and `.env`), then passed around."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


EMBED_MODELS = ("minilm", "minilm-torch", "openai")  # what QA_EMBED_MODEL may name


def _default_prompts_dir() -> Path:
    # Source checkout: prompts/ beside qa/; installed wheel: the packaged qa/prompts.
    here = PROJECT_ROOT / "prompts"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent / "prompts"


class Settings(BaseSettings):
    """Every knob of `qa`. Each field is the env variable `QA_<NAME>`; see the README table."""

    model_config = SettingsConfigDict(
        env_prefix="QA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Corpus and storage
    seeds_dir: Path = Field(Path("seeds"), description="Folder indexed by default.")
    data_dir: Path = Field(Path(".qa"), description="Where the store, caches, logs and feedback live.")
    collection: str = Field("qa", description="Chroma collection name.")
    chroma_host: str | None = Field(None, description="Chroma server host; unset = embedded store in data_dir.")
    chroma_port: int = Field(8000, description="Chroma server port.")
    write_lock_timeout: float = Field(
        300.0, ge=0, description="Seconds a writer (ingest, upload, re-index, repair) waits for another to finish."
    )
    check_timeout: float = Field(300.0, gt=0, description="Seconds `qa check` gives the store to open and be read.")
    lock_wait: float = Field(
        10.0, ge=0, description="Seconds a command waits for another process to release the embedded store before saying it is locked."
    )

    # Chunking and embeddings
    max_file_mb: int = Field(20, description="Larger files are skipped at ingest with a warning.")
    chunk_tokens: int = Field(200, description="Max word pieces per chunk (the encoder reads 256).")
    embed_model: str = Field("minilm", description="`minilm` (bundled, offline) or `openai` (`fake`: hashed words, for tests only).")
    openai_embed_model: str = Field("text-embedding-3-small", description="Model name when embed_model=openai.")
    embed_batch_size: int = Field(64, description="Sentences per embedding batch during ingest.")

    @field_validator("embed_model")
    @classmethod
    def _known_embed_model(cls, value: str) -> str:
        if value not in (*EMBED_MODELS, "fake"):  # `fake` is the tests' embedder, never offered to users
            raise ValueError(f"{value!r} names no embedding model; choose one of: {', '.join(EMBED_MODELS)}")
        return value

    # Retrieval and answering
    top_k: int = Field(5, description="Passages retrieved per question.")
    max_question_chars: int = Field(2000, description="Longer questions are refused.")
    answer_sentences: int = Field(2, description="Max sentences in an extractive answer.")

    # LLM (unset = extractive, offline)
    llm_base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1.")
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the LLM server.")
    llm_api_key: SecretStr | None = Field(None, description="API key for llm_base_url (optional).")
    openai_api_key: SecretStr | None = Field(
        None, validation_alias="OPENAI_API_KEY", description="OpenAI key; enables LLM mode against OpenAI."
    )
    llm_timeout: float = Field(30.0, description="Seconds per LLM request.")
    llm_deadline: float = Field(
        120.0, gt=0, description="Seconds one answer may take in all (condensing, retries, streaming) before the extractive fallback."
    )
    llm_retries: int = Field(2, description="Retries on 429/5xx/timeouts before falling back to extractive.")
    llm_local_threads: int = Field(2, ge=1, description="Threads of the local llama.cpp server started by `make run-llm`.")
    llm_local_port: int = Field(8081, description="Port of `python -m qa.local_llm serve`.")
    prompts_dir: Path = Field(default_factory=_default_prompts_dir, description="Folder of prompt templates.")

    # Front ends
    ui_auth: SecretStr | None = Field(None, description="`user:password` for the chat page's basic auth.")
    ui_concurrency: int = Field(4, description="Gradio queue concurrency.")
    max_upload_mb: int = Field(20, description="Largest upload the chat page accepts (all files dropped at once).")
    ui_queue_max: int = Field(64, description="Chat page requests waiting at most; past it, `busy, retry`.")
    rate_limit_per_minute: float = Field(
        60, description="Requests a minute per client address on the chat page; 0 = no limit."
    )
    rate_limit_burst: int = Field(20, description="Requests a client may make at once before the rate limit applies.")
    slack_api_url: str = Field("https://slack.com/api/", description="Slack Web API base URL (GovSlack, tests).")
    slack_bot_token: SecretStr | None = Field(
        None, validation_alias="SLACK_BOT_TOKEN", description="Slack Bot User OAuth Token (xoxb-…); `qa slack` needs it."
    )
    slack_app_token: SecretStr | None = Field(
        None, validation_alias="SLACK_APP_TOKEN", description="Slack app-level token (xapp-…, connections:write) for Socket Mode."
    )
    slack_signing_secret: SecretStr | None = Field(
        None, validation_alias="SLACK_SIGNING_SECRET", description="Slack signing secret; verifies requests in HTTP mode."
    )

    slack_channel_collections: str = Field(
        "", description="Per-channel collections for Slack, `C123:hr,C456:eng`; other channels use `collection`."
    )

    # HTTP API (`qa serve`)
    api_keys: SecretStr | None = Field(None, description="Comma-separated bearer keys for `qa serve`; unset = loopback only.")
    api_max_body_kb: int = Field(256, description="Largest JSON request body `qa serve` reads (uploads: max_upload_mb).")
    api_concurrency: int = Field(4, description="Questions `qa serve` answers at once.")
    api_queue: int = Field(64, description="Questions that may wait for a slot; more get 429.")
    api_queue_timeout: float = Field(30.0, description="Seconds a question may wait for a slot before 429.")
    api_rate_per_minute: float = Field(0, description="Requests a minute per API key (or address without keys); 0 = no limit.")
    api_rate_burst: int = Field(20, description="Requests a client may make at once before api_rate_per_minute applies.")

    # Logs
    log_questions: bool = Field(False, description="Also write each question's text to the question log.")
    log_max_mb: int = Field(10, description="Size at which logs/questions.jsonl is rotated.")
    log_backups: int = Field(5, description="Rotated question logs kept.")

    debug: bool = Field(False, description="Re-raise unexpected errors with a traceback.")

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_base_url or self.openai_api_key)

    @property
    def store_path(self) -> Path:
        return self.data_dir / "chroma"

    def describe_store(self) -> str:
        if self.chroma_host:
            return f"chroma server http://{self.chroma_host}:{self.chroma_port}"
        return f"embedded chroma at {self.store_path}"

    def collection_settings(self, name: str | None) -> Settings:
        """These settings with `collection` set to `name` (the default when None or empty)."""
        if not name or name == self.collection:
            return self
        return self.model_copy(update={"collection": check_collection_name(name)})

    def slack_collections(self) -> dict[str, str]:
        """`QA_SLACK_CHANNEL_COLLECTIONS` as `{channel id: collection}`."""
        from qa.errors import ConfigError

        out: dict[str, str] = {}
        for item in self.slack_channel_collections.split(","):
            if not item.strip():
                continue
            channel, sep, name = (part.strip() for part in item.partition(":"))
            if not sep or not channel or not name:
                raise ConfigError(
                    f"QA_SLACK_CHANNEL_COLLECTIONS: {item.strip()!r} is not `CHANNEL:collection` (e.g. C123:hr,C456:eng)."
                )
            out[channel] = check_collection_name(name)
        return out


_COLLECTION_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")


def check_collection_name(name: str) -> str:
    """`name` if it can name a collection (letters, digits, `.`, `_`, `-`; up to 63), else a ConfigError."""
    from qa.errors import ConfigError

    if not isinstance(name, str) or not _COLLECTION_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"Bad collection name {str(name)[:80]!r}: use 1-63 letters, digits, `.`, `_` or `-`, starting and ending with a letter or digit."
        )
    return name


def load_settings() -> Settings:
    """Settings from the environment (and `.env`); a bad value is a one-line ConfigError naming its variable."""
    from pydantic import ValidationError

    from qa.errors import ConfigError

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "QA_" + str(first["loc"][0]).upper() if first.get("loc") else "a QA_ setting"
        message = str(first["msg"]).removeprefix("Value error, ")  # pydantic's prefix for a validator's own words
        raise ConfigError(f"Bad setting {name}: {message}.") from exc
