"""The Slack bot: answers mentions and direct messages in their thread, with sources and feedback buttons.

    app = build_app(engine, settings)                   # a slack_bolt.App
    socket_mode_handler(app, settings).start()          # Socket Mode (SLACK_APP_TOKEN)
    make_http_server(app, port=3000).serve_forever()    # Events API at /slack/events (SLACK_SIGNING_SECRET)

Slack gets its acknowledgement at once; the answer comes from a lazy listener that posts a "looking…"
placeholder in the thread and then replaces it with the answer.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import click

from qa.engine import clean_question
from qa.errors import (
    ConfigError,
    EmptyQuestionError,
    IndexMissingError,
    InputError,
    QAError,
    QuestionTooLongError,
    friendly_errors,
)
from qa.feedback import record_feedback
from qa.slack_render import (
    EMPTY_QUESTION_TEXT,
    FAILURE_TEXT,
    HELPFUL_ACTION,
    LOOKING_TEXT,
    UNHELPFUL_ACTION,
    answer_blocks,
    answer_from_feedback_value,
    error_text,
    fallback_text,
    too_long_text,
    unescape_mrkdwn,
)

if TYPE_CHECKING:
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk import WebClient

    from qa.engine import Engine
    from qa.settings import Settings
    from qa.types import Answer

log = logging.getLogger(__name__)

Message = dict[str, str]

EVENTS_PATH = "/slack/events"
_SEEN_TTL = 3600.0  # Slack retries a delivery three times over about five minutes
_SEEN_MAX = 10_000
_ANSWERS_MAX = 1_000
_HISTORY_PAGES = 5
_HISTORY_TURNS = 20
_MAX_BODY_BYTES = 1_000_000  # Slack's payloads are a few KB; refuse to buffer anything much bigger
_QUESTION_SUBTYPES = {None, "file_share", "thread_broadcast"}

_TOKENS = {
    "bot": (
        "slack_bot_token",
        "SLACK_BOT_TOKEN",
        "the Bot User OAuth Token (xoxb-…) from your Slack app's OAuth & Permissions page",
    ),
    "app": (
        "slack_app_token",
        "SLACK_APP_TOKEN",
        "an app-level token (xapp-…) with connections:write, from Basic Information > App-Level Tokens",
    ),
    "signing": (
        "slack_signing_secret",
        "SLACK_SIGNING_SECRET",
        "the Signing Secret from Basic Information > App Credentials",
    ),
}


class SeenKeys:
    """Keys seen in the last `ttl` seconds, at most `maxsize` of them; `claim` is atomic across threads."""

    def __init__(self, *, ttl: float = _SEEN_TTL, maxsize: int = _SEEN_MAX) -> None:
        self.ttl = ttl
        self.maxsize = maxsize
        self._seen: OrderedDict[object, float] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, key: object) -> bool:
        """True the first time `key` is seen (within the TTL), False for every repeat."""
        now = time.monotonic()
        with self._lock:
            while self._seen:
                oldest, at = next(iter(self._seen.items()))
                if now - at <= self.ttl and len(self._seen) < self.maxsize:
                    break
                del self._seen[oldest]
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


class RecentAnswers:
    """The last `maxsize` answers posted, keyed by (channel, message ts), for logging button clicks."""

    def __init__(self, maxsize: int = _ANSWERS_MAX) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: tuple[str, str], value: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(key)


def require_tokens(settings: Settings, *names: str) -> list[str]:
    """The secret values of the named Slack tokens; ConfigError naming each variable that is unset."""
    values, missing = [], []
    for name in names:
        attribute, variable, where = _TOKENS[name]
        secret = getattr(settings, attribute)
        value = secret.get_secret_value().strip() if secret is not None else ""
        values.append(value)
        if not value:
            missing.append(f"{variable} ({where})")
    if missing:
        raise ConfigError(f"Set {' and '.join(missing)}.")
    return values


def build_app(engine: Engine, settings: Settings | None = None) -> App:
    """The Bolt app answering `app_mention` and `message.im` events from `engine`, as described in the README.

    `settings` (default: the engine's) supply SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET (HTTP mode) and
    QA_SLACK_API_URL. The token is checked with `auth.test` here, so a wrong one fails at start-up.
    """
    settings = settings or engine.settings
    (bot_token,) = require_tokens(settings, "bot")
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    BoltApp, BoltResponse = _bolt()
    from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

    api_url = api_base_url(settings)
    _check_bot_token(bot_token, api_url)
    # Bolt builds its client from `token` and is pointed at QA_SLACK_API_URL before its first request;
    # handing it a ready client instead makes it warn "token will be unused" whenever SLACK_BOT_TOKEN is set.
    # An empty signing secret makes every HTTP request fail verification: safe for Socket Mode-only use.
    app: App = BoltApp(token=bot_token, signing_secret=secret, name="qa", token_verification_enabled=False)
    app.client.base_url = api_url
    app.client.retry_handlers = [ConnectionErrorRetryHandler(), RateLimitErrorRetryHandler(max_retry_count=2)]

    bot = _Bot(engine, settings)

    def ack_response() -> Any:
        return BoltResponse(status=200, body="")

    def screen(body: dict[str, Any], next: Callable[[], Any]) -> Any:
        # Runs before Slack is acknowledged: repeats and bot chatter are acked here without any work.
        if body.get("type") != "event_callback":
            return next()
        event = body.get("event") or {}
        if event.get("type") not in ("app_mention", "message"):
            return next()
        event_id = body.get("event_id")
        if event_id and not bot.seen_events.claim(event_id):
            log.info("ignored a repeated delivery of %s", event_id)
            return ack_response()
        if not _is_question(event):
            return ack_response()
        # A mention inside a DM can arrive as both app_mention and message.im: answer the message once.
        if not bot.seen_messages.claim((event.get("channel"), event.get("ts"))):
            return ack_response()
        return next()

    def acknowledge(ack: Callable[..., Any]) -> None:
        ack()

    def answer_event(event: dict[str, Any], client: WebClient, context: Any) -> None:
        bot.answer(event, client, bot_user_id=context.bot_user_id, bot_id=context.bot_id)

    def record_click(body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        bot.record_click(body, action, client)

    app.middleware(screen)
    app.event("app_mention")(ack=acknowledge, lazy=[answer_event])
    app.event("message")(ack=acknowledge, lazy=[answer_event])
    app.action(re.compile(f"^({HELPFUL_ACTION}|{UNHELPFUL_ACTION})$"))(ack=acknowledge, lazy=[record_click])
    return app


def _check_bot_token(token: str, api_url: str) -> None:
    """Fail at start-up, not on the first question, when Slack can't be reached or refuses the token."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    quiet = logging.Logger("qa.slack.auth_test", level=logging.CRITICAL)  # the ConfigError says it once
    try:
        WebClient(token=token, base_url=api_url, logger=quiet).auth_test()
    except SlackApiError as exc:
        raise ConfigError(f"Slack refused SLACK_BOT_TOKEN ({exc.response.get('error')}). Use {_TOKENS['bot'][2]}.") from exc
    except OSError as exc:
        raise ConfigError(f"Can't reach Slack at {api_url} ({exc}). Check the network or QA_SLACK_API_URL.") from exc


def api_base_url(settings: Settings) -> str:
    # WebClient joins method names onto the base URL, which therefore has to end in a slash.
    url = settings.slack_api_url.strip()
    return url if url.endswith("/") else url + "/"


class _Bot:
    """What the listeners do, with the engine, settings and the bot's short memory."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.seen_events = SeenKeys()
        self.seen_messages = SeenKeys()
        self.answers = RecentAnswers()
        self.channel_collections = settings.slack_collections()  # QA_SLACK_CHANNEL_COLLECTIONS
        self._engines: dict[str, Engine] = {}

    def engine_for(self, channel: str) -> Engine:
        """The engine on this channel's collection (QA_SLACK_CHANNEL_COLLECTIONS), else the default one."""
        name = self.channel_collections.get(channel)
        if not name:
            return self.engine
        if name not in self._engines:
            self._engines[name] = self.engine.for_collection(name)
        return self._engines[name]

    def answer(self, event: dict[str, Any], client: WebClient, *, bot_user_id: str | None, bot_id: str | None) -> None:
        channel, ts = str(event.get("channel", "")), str(event.get("ts", ""))
        thread_ts = str(event.get("thread_ts") or ts)
        refusal = None
        try:
            question = clean_question(question_text(str(event.get("text") or ""), bot_user_id), limit=self.settings.max_question_chars)
        except EmptyQuestionError:
            refusal = EMPTY_QUESTION_TEXT
        except QuestionTooLongError as exc:
            refusal = too_long_text(exc.length, exc.limit)
        except InputError as exc:
            refusal = error_text(exc)
        try:
            if refusal is not None:
                client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=refusal)
                return
            placeholder = str(client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=LOOKING_TEXT)["ts"])
        except Exception:
            log.exception("could not reply in %s", channel)
            return
        history: list[Message] = []
        try:
            if thread_ts != ts:
                history = self._history(client, channel, thread_ts, before=ts, bot_user_id=bot_user_id, bot_id=bot_id)
            answer = self.engine_for(channel).ask(question, history)
        except QAError as exc:
            log.warning("could not answer %r: %s", question[:200], exc)
            self._replace(client, channel, placeholder, thread_ts, text=error_text(exc))
            return
        except Exception:
            log.exception("answering %r failed", question[:200])
            self._replace(client, channel, placeholder, thread_ts, text=FAILURE_TEXT)
            return
        # Remember the answer before it shows: a click can arrive as soon as Slack has the message.
        known = {"answer": answer, "history": [m["content"] for m in history if m["role"] == "user"]}
        self.answers.put((channel, placeholder), known)
        posted = self._replace(
            client, channel, placeholder, thread_ts, text=fallback_text(answer), blocks=answer_blocks(answer)
        )
        if posted and posted != placeholder:
            self.answers.put((channel, posted), known)

    def _history(
        self, client: WebClient, channel: str, thread_ts: str, *, before: str, bot_user_id: str | None, bot_id: str | None
    ) -> list[Message]:
        from slack_sdk.errors import SlackApiError

        messages: list[dict[str, Any]] = []
        cursor = None
        try:
            for _ in range(_HISTORY_PAGES):
                page = client.conversations_replies(channel=channel, ts=thread_ts, limit=200, cursor=cursor or None)
                messages.extend(page.get("messages") or [])
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        except SlackApiError as exc:
            # A missing *:history scope shouldn't cost the answer, only the follow-up context.
            log.warning("could not read the thread in %s (%s); answering without history", channel, exc.response.get("error"))
        return thread_history(messages, before=before, bot_user_id=bot_user_id, bot_id=bot_id)[-_HISTORY_TURNS:]

    def _replace(
        self, client: WebClient, channel: str, ts: str, thread_ts: str, *, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> str | None:
        """Put the answer where the placeholder was (or below it if that fails); the message ts, or None."""
        from slack_sdk.errors import SlackApiError

        try:
            client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
            return ts
        except SlackApiError as exc:
            log.warning("could not update the placeholder in %s (%s); posting instead", channel, exc.response.get("error"))
        try:
            return str(client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text, blocks=blocks)["ts"])
        except Exception:
            log.exception("could not post the answer in %s", channel)
            return None

    def record_click(self, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        user = str((body.get("user") or {}).get("id") or "")
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id") or "")
        message_ts = str(container.get("message_ts") or message.get("ts") or "")
        helpful = action.get("action_id") == HELPFUL_ACTION
        known = self.answers.get((channel, message_ts))
        answer: Answer
        if known is not None:
            answer, history = known["answer"], known["history"]
        else:  # posted before a restart: the button carries the question and citations, the message the text
            answer = answer_from_feedback_value(str(action.get("value") or ""), text=str(message.get("text") or ""))
            history = []
        record_feedback(self.settings, answer=answer, helpful=helpful, channel="slack", user=user or None, history=history)
        if not user:
            return
        try:
            client.chat_postEphemeral(
                channel=channel,
                user=user,
                thread_ts=message.get("thread_ts") or container.get("thread_ts"),
                text=f"Thanks, noted as {'helpful' if helpful else 'not helpful'}.",
            )
        except Exception as exc:  # the rating is logged; the thank-you is a courtesy
            log.warning("could not thank %s for feedback: %s", user, exc)


def _is_question(event: dict[str, Any]) -> bool:
    """A person's new message to the bot: not a bot's, not an edit or join, and a DM if it's a plain message."""
    if event.get("bot_id") or event.get("subtype") not in _QUESTION_SUBTYPES or not event.get("user"):
        return False
    if event.get("type") == "message" and event.get("channel_type") != "im":
        return False
    return bool(event.get("channel") and event.get("ts"))


_USER_REF = re.compile(r"<@([A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL_REF = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL_REF = re.compile(r"<!([a-z]+)(?:\^[^|>]*)?(?:\|([^>]*))?>")
_LINK_REF = re.compile(r"<([a-z][a-z0-9+.-]*:[^|>]*)(?:\|([^>]*))?>", re.IGNORECASE)


def question_text(text: str, bot_user_id: str | None) -> str:
    """A Slack message as the question a person typed: our mention dropped, other references as plain text."""

    def user(m: re.Match[str]) -> str:
        return "" if m.group(1) == bot_user_id else "@" + (m.group(2) or m.group(1))

    text = _USER_REF.sub(user, text)
    text = _CHANNEL_REF.sub(lambda m: "#" + (m.group(2) or m.group(1)), text)
    text = _SPECIAL_REF.sub(lambda m: "@" + (m.group(2) or m.group(1)).lstrip("@"), text)
    text = _LINK_REF.sub(lambda m: m.group(2) or m.group(1), text)
    return " ".join(unescape_mrkdwn(text).split())


def thread_history(
    messages: Iterable[dict[str, Any]], *, before: str, bot_user_id: str | None, bot_id: str | None
) -> list[Message]:
    """Earlier turns of a thread as chat messages: our bot's replies are `assistant`, people's are `user`.

    Other bots' messages and our "looking…" placeholders are left out."""
    turns: list[Message] = []
    limit = _ts_key(before)
    for m in sorted(messages, key=lambda m: _ts_key(str(m.get("ts", "")))):
        if _ts_key(str(m.get("ts", ""))) >= limit:
            continue
        text = str(m.get("text") or "")
        ours = (bot_id is not None and m.get("bot_id") == bot_id) or (
            bot_user_id is not None and m.get("user") == bot_user_id
        )
        if ours:
            if text and text != LOOKING_TEXT:
                turns.append({"role": "assistant", "content": unescape_mrkdwn(text)})
        elif not m.get("bot_id") and m.get("subtype") != "bot_message":
            question = question_text(text, bot_user_id)
            if question:
                turns.append({"role": "user", "content": question})
    return turns


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    try:
        return int(seconds or 0), int(micros or 0)
    except ValueError:
        return 0, 0


# -- serving ------------------------------------------------------------------------------------


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def make_http_server(app: App, *, host: str = "127.0.0.1", port: int = 3000) -> WSGIServer:
    """A threaded HTTP server for Slack's Events API and interactivity at /slack/events (port 0: any free port)."""
    from slack_bolt.adapter.wsgi import SlackRequestHandler

    handler = SlackRequestHandler(app, path=EVENTS_PATH)

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY_BYTES:
            start_response("413 Content Too Large", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Request body too large.\n"]
        return handler(environ, start_response)

    from wsgiref.simple_server import make_server

    try:
        return make_server(host, port, wsgi, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    except OSError as exc:
        raise ConfigError(f"Can't listen on {host}:{port} ({exc.strerror or exc}). Pick another --port or --host.") from exc


def socket_mode_handler(app: App, settings: Settings) -> SocketModeHandler:
    """Bolt's built-in Socket Mode connection for `app`, using SLACK_APP_TOKEN."""
    (app_token,) = require_tokens(settings, "app")
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, app_token=app_token)


def _bolt() -> tuple[Any, Any]:
    try:
        from slack_bolt import App, BoltResponse
    except ModuleNotFoundError as exc:
        raise ConfigError("The Slack bot needs the `slack` extra: pip install 'qa[slack]' (or `make install`).") from exc
    return App, BoltResponse


# -- command ------------------------------------------------------------------------------------


@click.command("slack")
@click.option("--http", "use_http", is_flag=True, help="Serve Slack's Events API over HTTP instead of Socket Mode.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on with --http.")
@click.option("--port", type=int, default=3000, show_default=True, help="Port to listen on with --http.")
@friendly_errors
def slack_command(use_http: bool, host: str, port: int) -> None:
    """Run the Slack bot: Socket Mode (SLACK_BOT_TOKEN, SLACK_APP_TOKEN), or --http with SLACK_SIGNING_SECRET."""
    from qa.engine import Engine
    from qa.settings import load_settings

    settings = load_settings()
    require_tokens(settings, "bot", "signing" if use_http else "app")
    engine = Engine.open(settings)
    app = build_app(engine, settings)
    info = engine.info()  # loads the index and model now rather than on the first question
    if use_http:
        _require_index(info, settings)
        server = make_http_server(app, host=host, port=port)
        click.echo(
            f"Answering from {_documents(info)} on http://{host}:{server.server_port}{EVENTS_PATH}; Ctrl-C stops.",
            err=True,
        )
        try:
            server.serve_forever()
        finally:
            server.server_close()
        return
    _run_socket_mode(socket_mode_handler(app, settings), info, settings)


def _require_index(info: dict[str, Any], settings: Settings) -> None:
    """A bot that would tell every user "nothing is indexed" is better not started (checked after the tokens)."""
    if not info["chunks"]:
        raise IndexMissingError(
            f"No index yet in {settings.describe_store()}. Run `qa ingest {settings.seeds_dir}`, then start `qa slack`."
        )


def _documents(info: dict[str, Any]) -> str:
    count = int(info.get("documents") or 0)
    return f"{count} document{'' if count == 1 else 's'}"


def _run_socket_mode(handler: SocketModeHandler, info: dict[str, Any], settings: Settings) -> None:
    from slack_sdk.errors import SlackApiError

    try:
        handler.connect()  # type: ignore[no-untyped-call]
    except SlackApiError as exc:
        raise ConfigError(
            f"Slack refused SLACK_APP_TOKEN ({exc.response.get('error')}). Use {_TOKENS['app'][2]}."
        ) from exc
    try:
        _require_index(info, settings)
    except IndexMissingError:
        handler.close()  # type: ignore[no-untyped-call]
        raise
    click.echo(f"Answering from {_documents(info)} in Socket Mode; Ctrl-C stops.", err=True)
    try:
        threading.Event().wait()
    finally:
        handler.close()  # type: ignore[no-untyped-call]

