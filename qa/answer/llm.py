"""The generative answerer: OpenAI or any OpenAI-compatible server through llama-index, citations checked.

The model writes the prose; `qa` keeps the provenance. Every `[n]` the model writes is checked
against the passages it was shown: markers naming no passage are removed, the others are
renumbered in order of first use, and each becomes a `Citation` whose quote is the sentence of
that passage that best matches the answer sentence citing it, so `source_text[start:end] == quote`
holds exactly as in extractive mode. The same `CitationFilter` rewrites streamed deltas and whole
completions, so the streamed text adds up to the final answer.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from qa.answer import Attempt, Question, Search, record_attempt
from qa.answer.followup import user_turns
from qa.errors import ConfigError, LLMAuthError, LLMError, LLMUnavailableError
from qa.prompts import NO_ANSWER, Message, PromptSet
from qa.settings import Settings
from qa.terms import TermStats, lexical_terms, stemmer
from qa.text import STOPWORDS, normalize, sentence_spans, words
from qa.types import MARKER, Answer, Chunk, Citation, UnsupportedSentence, marker_numbers

if TYPE_CHECKING:
    from llama_index.core.llms import LLM

    from qa.passages import Passages

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
# What a model writes as a marker: "[2]", "[1, 3]", "[1; 3]", and the "[Passage 2]" / "[source 1 and 2]"
# small models like to write. Only raw model text is read with it: CitationFilter rewrites each one
# to an answer marker (`qa.types.MARKER`, "[1]" or "[1, 3]") or drops it.
_LABEL = r"(?:(?:passages?|sources?|docs?|documents?)\s*)?"
_MARKER = re.compile(
    r"\[\s*" + _LABEL + r"\d{1,4}(?:\s*(?:,|;|and|&)\s*" + _LABEL + r"\d{1,4})*\s*\]", re.IGNORECASE
)
_PARTIAL_MARKER = re.compile(r"\[[\w\s,;&]*\Z")
_MAX_MARKER = 40  # characters: a "[" open longer than this is prose, not a citation
_ABSTAIN_CUES = ("documents don't cover", "documents do not cover", "documents don't say", "documents do not say")


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)


def server_url(settings: Settings, *, shown: bool = False) -> str:
    """The LLM server's base URL; `shown=True` drops a `user:password@` part, for messages, logs and `qa info`."""
    url = (settings.llm_base_url or OPENAI_BASE_URL).rstrip("/")
    if shown and "@" in url:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return url


def make_llm(settings: Settings) -> LLM:
    """A llama-index chat LLM for the configured server; retries and timeouts live in its `openai` client.

    The `openai` client retries 429/5xx/timeouts `llm_retries` times with exponential backoff and
    honours `Retry-After`; llama-index's own retry layer is off (`max_retries=0`) so the two don't multiply.
    """
    try:
        import openai
        from llama_index.llms.openai import OpenAI
        from llama_index.llms.openai_like import OpenAILike
    except ImportError as exc:
        raise ConfigError(f"LLM mode needs the `llm` extra ({exc.name} is missing): run `pip install -e '.[llm]'` or `make install`.") from exc
    if settings.llm_base_url:
        # A key for our own server never goes to OpenAI's, and OPENAI_API_KEY never goes to a third-party URL.
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "not-needed"
    else:
        secret = settings.openai_api_key or settings.llm_api_key
        key = secret.get_secret_value() if secret else ""
    base_url = server_url(settings)
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [_cap_timeouts], "response": [_bound_body]}
    client = openai.OpenAI(
        base_url=base_url, api_key=key, timeout=settings.llm_timeout, max_retries=max(settings.llm_retries, 0),
        http_client=openai.DefaultHttpxClient(event_hooks=hooks),
    )
    common: dict[str, Any] = {
        "model": settings.llm_model,
        "api_key": key,
        "api_base": base_url,
        "api_version": "",
        "timeout": settings.llm_timeout,
        "max_retries": 0,
        "openai_client": client,
    }
    if not settings.llm_base_url:
        try:
            llm = OpenAI(**common)
            llm.metadata  # noqa: B018 - raises for a model name llama-index doesn't know
            return llm
        except ValueError as exc:
            if "Responses API" in str(exc):
                raise ConfigError(f"QA_LLM_MODEL={settings.llm_model} only works with OpenAI's Responses API; choose a chat model such as gpt-4o-mini.") from exc
    return OpenAILike(**common, is_chat_model=True, context_window=32_768)


# The answer's deadline (a time.monotonic() value), set in the thread that makes the request: the
# client's hooks cap every timeout to what is left of it and cut a body still arriving after it, so
# the request's thread ends soon after the answer gave up on it (retries included).
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("qa_llm_deadline", default=None)


def _cap_timeouts(request: Any) -> None:
    import httpx

    deadline = _DEADLINE.get()
    if deadline is None:
        return
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpx.ReadTimeout("the answer's deadline (QA_LLM_DEADLINE) has passed", request=request)
    timeout = dict(request.extensions.get("timeout") or {})
    for key in ("connect", "read", "write", "pool"):
        value = timeout.get(key)
        timeout[key] = left if value is None else min(value, left)
    request.extensions["timeout"] = timeout


def _bound_body(response: Any) -> None:
    deadline = _DEADLINE.get()
    if deadline is not None:
        response.stream = _deadline_stream_type()(response.stream, deadline, response.request)


@functools.cache
def _deadline_stream_type() -> type:
    import httpx

    class DeadlineStream(httpx.SyncByteStream):
        """A response body that stops with a ReadTimeout at the deadline, however steadily its bytes arrive."""

        def __init__(self, inner: Any, deadline: float, request: httpx.Request) -> None:
            self.inner, self.deadline, self.request = inner, deadline, request

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self.inner:
                if time.monotonic() > self.deadline:
                    raise httpx.ReadTimeout("the answer's deadline (QA_LLM_DEADLINE) has passed", request=self.request)
                yield chunk

        def close(self) -> None:
            self.inner.close()

    return DeadlineStream


def _is_timeout(exc: BaseException) -> bool:
    import httpx
    import openai

    return isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException))


# -- citations ------------------------------------------------------------------------------

SupportFn = Callable[[int, str], tuple[int, float]]


@dataclass
class CitationFilter:
    """Rewrites model text as it arrives: valid `[n]` markers renumbered, invalid ones dropped.

    A citation is a passage *and* the sentence of it that supports the answer sentence the marker
    closes (chosen by `support` when the marker arrives), numbered in order of first use; the same
    passage cited for two different facts can therefore become two numbers with two quotes.
    Whitespace is held back until the next visible character shows whether it is needed (it is
    dropped before a removed marker and at either end), so the `feed()` outputs add up to `text`.
    """

    passages: int
    support: SupportFn | None = None
    text: str = ""
    order: list[tuple[int, int]] = field(default_factory=list)  # (passage 1-based, sentence index), by first use
    scores: dict[tuple[int, int], float] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    dropped_at: list[int] = field(default_factory=list)  # where in `text` each dropped marker stood
    raw: str = ""
    _pending: str = ""
    _space: str = ""

    def feed(self, delta: str) -> str:
        """Take the next piece of model text; return the cleaned text that is now certain."""
        self.raw += delta
        self._pending += delta
        return self._drain(final=False)

    def finish(self) -> str:
        """Flush what is left at the end of the completion."""
        out = self._drain(final=True)
        self._space = ""
        return out

    def _drain(self, *, final: bool) -> str:
        out: list[str] = []
        buf = self._pending
        i = 0
        while i < len(buf):
            ch = buf[i]
            if ch.isspace():
                self._space += ch
                i += 1
                continue
            if ch == "[":
                match = _MARKER.match(buf, i)
                if match is None and not final and _PARTIAL_MARKER.match(buf, i) and len(buf) - i < _MAX_MARKER:
                    break  # could still become a marker: wait for the next delta
                if match is not None:
                    kept = self._map(match.group(0))
                    if kept:
                        self._emit(out, kept)
                    else:
                        self.dropped.append(match.group(0))
                        self.dropped_at.append(len(self.text))
                        self._space = ""
                    i = match.end()
                    continue
            self._emit(out, ch)
            i += 1
        self._pending = buf[i:]
        return "".join(out)

    def _emit(self, out: list[str], piece: str) -> None:
        if self.text:
            piece = self._space + piece
        self._space = ""
        out.append(piece)
        self.text += piece

    def _claim(self) -> str:
        """The answer sentence the next marker closes: the last sentence written so far, markers removed."""
        spans = sentence_spans(self.text)
        last = self.text[spans[-1][0] : spans[-1][1]] if spans else ""
        return " ".join(_MARKER.sub(" ", last).split())

    def _map(self, marker: str) -> str:
        kept: list[int] = []
        claim: str | None = None
        for n in marker_numbers(marker):
            if not 1 <= n <= self.passages:
                continue
            if claim is None:
                claim = self._claim()
            si, score = self.support(n, claim) if self.support else (0, 0.0)
            key = (n, si)
            if key not in self.order:
                self.order.append(key)
                self.scores[key] = score
            m = self.order.index(key) + 1
            if m not in kept:
                kept.append(m)
        return "[" + ", ".join(str(m) for m in kept) + "]" if kept else ""


def _is_abstention(text: str) -> bool:
    folded = normalize(text)
    return folded.startswith(normalize(NO_ANSWER).rstrip(".")) or any(cue in folded for cue in _ABSTAIN_CUES)


class Support:
    """Finds, in a cited passage, the sentence that best supports an answer sentence.

    Score in [0, 1]: the idf-weighted share of the claim's key terms the sentence contains, plus a
    little for how much of the sentence the claim uses; the sentence's retrieval similarity to the
    question breaks ties (and decides alone when the claim shares no term, e.g. a paraphrase).
    """

    def __init__(self, passages: Passages) -> None:
        self.passages = passages
        self.stats: TermStats = passages.stats
        self.stemmer = stemmer()

    def __call__(self, passage: int, claim: str) -> tuple[int, float]:
        index = passage - 1
        sentences = self.passages[index].sentences
        wanted = set(lexical_terms(claim, self.stemmer))
        total = sum(self.stats.idf(t) for t in wanted) or 1.0
        best, best_score, best_rank = 0, 0.0, -math.inf
        for sentence in sentences:
            shared = wanted & sentence.terms
            score = 0.85 * sum(self.stats.idf(t) for t in shared) / total + 0.15 * len(shared) / max(len(sentence.terms), 1)
            rank = score + 0.001 * sentence.dense
            if rank > best_rank:
                best, best_score, best_rank = sentence.index, score, rank
        return best, best_score


def build_answer(cite: CitationFilter, chunks: Sequence[Chunk], *, question: str, mode: str) -> Answer:
    """The final `Answer` from cleaned model text: citations with provenance, abstention, grounding."""
    text = cite.text.strip()
    if not text:
        reason = "an answer citing no passage it was given" if cite.raw.strip() else "an empty completion"
        raise LLMUnavailableError(f"the model returned {reason}")
    citations: list[Citation] = []
    for m, (passage, si) in enumerate(cite.order, start=1):
        citations.append(chunks[passage - 1].cite(m, si, cite.scores.get((passage, si), 0.0)))
    abstained = not citations and _is_abstention(text)
    if cite.dropped:
        log.debug("dropped citation markers naming no retrieved passage: %s", " ".join(cite.dropped))
    lead = len(cite.text) - len(cite.text.lstrip())
    flagged, claims = ([], 0) if abstained else check_sentences(text, citations, dropped_at=[p - lead for p in cite.dropped_at])
    # "Mostly uncited": more than half of the answer's claims lack a citation that backs them.
    grounded = abstained or (bool(citations) and 2 * len(flagged) <= claims)
    return Answer(
        text=text, citations=citations, abstained=abstained, mode=mode, grounded=grounded, question=question,
        unsupported_sentences=flagged,
    )


# -- sentence-level grounding ------------------------------------------------------------------

_CLEAN_MARKER = MARKER  # after CitationFilter every marker reads "[1]" or "[1, 3]"
_LEADING_MARKERS = re.compile(r"(?:\s*" + MARKER.pattern + r")+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORDLIKE = re.compile(r"[^\W\d_][\w'’\-]*")
# Capitalised only because they open a sentence: never taken for names.
_OPENERS = STOPWORDS | frozenset(
    """however despite although though additionally furthermore moreover yes overall therefore thus meanwhile while after
    before during since because first second third finally instead still yet later today currently unlike like based given
    according as in on per""".split()
)

_AFTER_OPENERS = frozenset("the a an he she it they we this that these those his her their its in on at and but or if as".split())


def _units(text: str) -> list[tuple[int, int]]:
    """Sentence spans of `text`, a marker that opens a sentence ("… diplomats. [1] Britain …") given back to the one before."""
    units: list[list[int]] = []
    for start, end in sentence_spans(text):
        lead = _LEADING_MARKERS.match(text, start)
        if lead is not None and units:
            units[-1][1] = lead.end()
            start = lead.end()
            while start < end and text[start].isspace():
                start += 1
            if start >= end:
                continue
        units.append([start, end])
    return [(a, b) for a, b in units]


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def key_terms(sentence: str) -> list[str]:
    """The numbers and names in an answer sentence (markers removed), as written."""
    plain = _CLEAN_MARKER.sub(" ", sentence)
    terms = list(dict.fromkeys(_NUMBER.findall(plain)))
    for i, match in enumerate(_WORDLIKE.finditer(plain)):
        word = re.sub(r"['’]s$", "", match.group(0)).strip("'’-")
        if not word or not word[0].isupper():
            continue
        if i == 0 and word.lower() in _OPENERS:
            continue
        if i > 0 and word.lower() in _AFTER_OPENERS:
            continue  # "The", "He", "It" opening a quote or a clause after a colon
        if word not in terms:
            terms.append(word)
    return terms


def _name_in(name: str, vocabulary: set[str]) -> bool:
    folded = normalize(name)
    parts = [p for p in folded.split("-") if p]
    if folded in vocabulary or (len(parts) > 1 and all(p in vocabulary for p in parts)):
        return True
    # "Russian" for a passage's "Russia": the same stem but for a short ending
    if len(folded) >= 5:
        for word in vocabulary:
            common = len(_common_prefix(folded, word))
            if common >= len(folded) - 2 and common >= len(word) - 2 and common >= 4:
                return True
    return False


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]


def missing_terms(sentence: str, passages: Sequence[str]) -> list[str]:
    """Numbers and names of `sentence` that none of `passages` contains: a cheap faithfulness check, no judge."""
    source = " ".join(passages)
    numbers = _numbers(source)
    vocabulary = set(words(source))
    vocabulary |= {w[:-2] for w in vocabulary if w.endswith("'s")}
    missing = []
    for term in key_terms(sentence):
        if term[0].isdigit():
            if term.replace(",", "") not in numbers:
                missing.append(term)
        elif not _name_in(term, vocabulary):
            missing.append(term)
    return missing


def check_sentences(text: str, citations: Sequence[Citation], *, dropped_at: Sequence[int] = ()) -> tuple[list[UnsupportedSentence], int]:
    """The sentences of an LLM answer that no valid citation backs, and how many sentences make claims.

    A sentence is flagged when it has no `[n]` (`uncited`; `invalid_citation` when the only markers it
    had named no passage and were removed), or when a number or name in it appears in none of the
    passages it cites (`not_in_source`). A sentence with no letter or digit makes no claim.
    """
    by_n = {c.n: c.passage or c.quote for c in citations}
    flagged: list[UnsupportedSentence] = []
    claims = 0
    for start, end in _units(text):
        sentence = text[start:end]
        if not any(ch.isalnum() for ch in _CLEAN_MARKER.sub("", sentence)):
            continue
        claims += 1
        cited = [n for marker in _CLEAN_MARKER.finditer(sentence) for n in marker_numbers(marker.group(0))]
        passages = [by_n[n] for n in dict.fromkeys(cited) if n in by_n]
        if not passages:
            reason = "invalid_citation" if any(start < at <= end for at in dropped_at) else "uncited"
            flagged.append(UnsupportedSentence(start, end, sentence, reason))
            continue
        missing = missing_terms(sentence, passages)
        if missing:
            flagged.append(UnsupportedSentence(start, end, sentence, "not_in_source", tuple(missing)))
    return flagged, claims


# -- the answerer ---------------------------------------------------------------------------


class LLMAnswerer:
    """Asks the configured chat model for a cited answer from the retrieved passages."""

    def __init__(self, settings: Settings, prompts: PromptSet | None = None) -> None:
        self.settings = settings
        self.prompts = prompts if prompts is not None else PromptSet.load(settings.prompts_dir)
        self.mode = f"llm:{settings.llm_model}"
        self.server = server_url(settings, shown=True)
        self._llm: LLM | None = None

    @property
    def llm(self) -> LLM:
        return self.load()

    def load(self) -> LLM:
        """The llama-index LLM, made on first use (importing llama-index takes a few seconds)."""
        if self._llm is None:
            self._llm = make_llm(self.settings)
        return self._llm

    # -- the Answerer protocol -------------------------------------------------------------------

    def answer(self, question: Question, search: Search) -> Answer:
        final: Answer | None = None
        for item in self._turn(question, search, stream=False):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    def stream(self, question: Question, search: Search) -> Iterator[str | Answer]:
        """Cleaned text deltas as the model writes them, then the `Answer`; raises LLMError when the model fails."""
        return self._turn(question, search, stream=True)

    def _turn(self, question: Question, search: Search, *, stream: bool) -> Iterator[str | Answer]:
        """Condense a follow-up into a standalone question, retrieve with it, ask the model.

        `QA_LLM_DEADLINE` bounds the whole turn (condensing and answering), however the server
        trickles it. On failure the exception carries what was tried (`attempt_of`): the prompts
        sent and the timings so far.
        """
        attempt = Attempt()
        timings, prompts = attempt.timings, attempt.prompts
        t = time.perf_counter()
        self.load()  # the first call imports llama-index (seconds): not pipeline overhead, not model latency
        if (loaded := _ms(t, time.perf_counter())) > 1:
            timings["llm_load_ms"] = loaded
        started = time.perf_counter()
        deadline = time.monotonic() + self.settings.llm_deadline
        query, llm_started = question.text, None
        try:
            if user_turns(question.history):
                t = time.perf_counter()
                prompts["condense"] = self.prompts.condense_messages(question.text, list(question.history))
                query = self.condense(prompts["condense"], fallback=question.text, deadline=deadline)
                timings["condense_ms"] = _ms(t, time.perf_counter())
            passages = search(query)
            t1 = time.perf_counter()
            prompts["answer"] = self.answer_messages(query, passages.chunks)
            llm_started = time.perf_counter()
            timings["retrieve_ms"] = passages.retrieve_ms
            timings["prompt_ms"] = _ms(t1, llm_started)
            # Overhead before the first token that is ours, not the model's: everything but LLM calls.
            timings["pipeline_ms"] = round(_ms(started, llm_started) - timings.get("condense_ms", 0.0), 2)
            answer: Answer | None = None
            for item in self.generate(query, passages, stream=stream, messages=prompts["answer"], deadline=deadline):
                if isinstance(item, Answer):
                    answer = item
                    continue
                if "first_token_ms" not in timings:
                    timings["first_token_ms"] = _ms(started, time.perf_counter())
                yield item
            assert answer is not None
        except BaseException as exc:
            if llm_started is not None:
                timings["llm_ms"] = _ms(llm_started, time.perf_counter())
            record_attempt(exc, attempt)
            raise
        done = time.perf_counter()
        timings["llm_ms"] = _ms(llm_started, done)
        timings["total_ms"] = _ms(started, done)
        yield replace(
            answer, question=question.text, retrieval_query=query, retrieved=passages.chunks, prompts=prompts, timings=timings
        )

    def answer_messages(self, question: str, chunks: Sequence[Chunk]) -> list[Message]:
        return self.prompts.answer_messages(question, chunks)

    def generate(
        self,
        question: str,
        passages: Passages,
        *,
        stream: bool = True,
        messages: list[Message] | None = None,
        deadline: float | None = None,
    ) -> Iterator[str | Answer]:
        """Yield cleaned text deltas, then the `Answer` to `question` from `passages`; raises LLMError when the model fails.

        `deadline` (a `time.monotonic()` value) bounds the whole completion, however the server trickles it.
        """
        chunks = passages.chunks
        if messages is None:
            messages = self.answer_messages(question, chunks)
        cite = CitationFilter(len(chunks), support=Support(passages))
        with self._translate_errors():
            for delta in self._complete(messages, stream=stream, deadline=deadline):
                out = cite.feed(delta)
                if out:
                    yield out
        tail = cite.finish()
        if tail:
            yield tail
        answer = build_answer(cite, chunks, question=question, mode=self.mode)
        yield replace(answer, prompts={"answer": messages}, retrieval_query=passages.query, retrieved=chunks)

    def condense(self, messages: list[Message], *, fallback: str, deadline: float | None = None) -> str:
        """The standalone question the model wrote for `messages`, or `fallback` if it wrote nothing usable."""
        with self._translate_errors():
            text = "".join(self._complete(messages, stream=False, deadline=deadline))
        line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
        line = re.sub(r"^(standalone question|question)\s*:\s*", "", line, flags=re.IGNORECASE).strip().strip("\"'“”‘’`").strip()
        if not line or len(line) > self.settings.max_question_chars:
            log.debug("condensing produced nothing usable (%r); retrieving with the question as asked", text[:80])
            return fallback
        return line

    def _complete(self, messages: list[Message], *, stream: bool, deadline: float | None = None) -> Iterator[str]:
        """The model's text for `messages`; past `deadline` an LLMUnavailableError, at once.

        `QA_LLM_TIMEOUT` bounds each read, so a server that keeps sending (a stream that never ends, a
        byte every few seconds) would hold the answer forever. The request runs in a worker thread
        that this generator waits on only until the deadline; the worker then stops at its next read
        (closing the stream), or when that read times out.
        """
        if deadline is None:
            yield from self._request(messages, stream=stream)
            return
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()

        def work() -> None:
            _DEADLINE.set(deadline)
            parts = self._request(messages, stream=stream)
            try:
                for part in parts:
                    if stop.is_set():
                        break
                    events.put(("delta", part))
                events.put(("end", None))
            except BaseException as exc:  # handed to the waiting generator, which raises it
                events.put(("error", exc))
            finally:
                parts.close()

        worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="qa-llm-request", daemon=True)
        worker.start()
        try:
            while True:
                try:
                    kind, value = events.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty as exc:
                    raise self._past_deadline() from exc
                if kind == "delta":
                    yield value
                elif kind == "error":
                    if time.monotonic() >= deadline - 0.05 and _is_timeout(value):
                        raise self._past_deadline() from value  # a read cut short by the deadline's own cap
                    raise value
                else:
                    return
        finally:
            stop.set()

    def _past_deadline(self) -> LLMUnavailableError:
        limit = self.settings.llm_deadline
        return LLMUnavailableError(f"{self.server} sent no complete answer within {limit:g}s (QA_LLM_DEADLINE)")

    def _request(self, messages: list[Message], *, stream: bool) -> Generator[str, None, None]:
        from llama_index.core.llms import ChatMessage

        chat = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        if stream:
            for part in self.llm.stream_chat(chat):
                if part.delta:
                    yield str(part.delta)
            return
        response = self.llm.chat(chat)
        content = response.message.content
        if content is not None and not isinstance(content, str):
            raise TypeError(f"completion content is {type(content).__name__}, not text")
        yield content or ""

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """openai/httpx failures become one-line LLMErrors that name the server and what to check."""
        import httpx
        import openai
        import pydantic

        server, tries = self.server, max(self.settings.llm_retries, 0) + 1
        try:
            yield
        except LLMError:
            raise
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            name = "QA_LLM_API_KEY" if self.settings.llm_base_url else "OPENAI_API_KEY"
            raise LLMAuthError(f"{server} refused the API key (HTTP {exc.status_code}); check {name}") from exc
        except openai.APITimeoutError as exc:
            raise LLMUnavailableError(f"no reply from {server} within {self.settings.llm_timeout:g}s, {tries} attempts") from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailableError(f"can't reach {server}") from exc
        except openai.NotFoundError as exc:
            raise LLMUnavailableError(f"{server} has no model {self.settings.llm_model!r} (HTTP 404); check QA_LLM_MODEL") from exc
        except openai.RateLimitError as exc:
            raise LLMUnavailableError(f"{server} is rate-limiting (HTTP 429), {tries} attempts") from exc
        except openai.APIStatusError as exc:
            detail = f"HTTP {exc.status_code}" + (f", {tries} attempts" if exc.status_code >= 500 else "")
            raise LLMUnavailableError(f"{server} failed ({detail})") from exc
        except httpx.HTTPError as exc:
            raise LLMUnavailableError(f"the connection to {server} broke mid-answer ({type(exc).__name__})") from exc
        except (openai.APIError, pydantic.ValidationError, TypeError, KeyError, IndexError, AttributeError, ValueError) as exc:
            log.debug("malformed completion", exc_info=True)
            raise LLMUnavailableError(f"{server} sent a malformed completion ({type(exc).__name__})") from exc
