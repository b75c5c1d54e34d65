"""Per-client rate limits for the HTTP front ends: a token bucket per client, and an ASGI middleware.

`RateLimiter(per_minute, burst).allow(client)` says whether `client` (an address, a user) may make
one more request now, and if not, how many seconds until it may. `RateLimitMiddleware` applies one
to chosen paths of any ASGI app (the chat page's Gradio app, the HTTP API), answering 429 with
`Retry-After` past it. Memory stays bounded however many clients there are: idle buckets are
forgotten, and at most `max_clients` are kept.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BUSY_MESSAGE = "The server is busy: too many requests from you. Wait {seconds} s, then retry."


class RateLimiter:
    """A token bucket per client: `burst` requests at once, refilled at `per_minute` a minute. 0 turns it off."""

    def __init__(
        self, per_minute: float, burst: int, *, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(int(burst), 1)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, updated)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allow(self, client: str) -> tuple[bool, float]:
        """(True, 0) and one token spent, or (False, seconds until a token is back)."""
        if not self.enabled:
            return True, 0.0
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - updated) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[client] = (tokens, now)  # most recently seen last
            self._forget(now)
        return (True, 0.0) if allowed else (False, (1.0 - tokens) / self.rate)

    def _forget(self, now: float) -> None:
        full_after = self.burst / self.rate  # an idle bucket is full again: forgetting it changes nothing
        while self._buckets:
            client, (_, updated) = next(iter(self._buckets.items()))
            if now - updated < full_after and len(self._buckets) <= self.max_clients:
                break
            del self._buckets[client]


class RateLimitMiddleware:
    """ASGI middleware: requests whose path starts with one of `paths` are rate-limited per client address."""

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter, paths: Sequence[str], methods: Sequence[str] = ("POST",)) -> None:
        self.app = app
        self.limiter = limiter
        self.paths = tuple(paths)
        self.methods = {m.upper() for m in methods}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope.get("type") == "http"
            and scope.get("method", "").upper() in self.methods
            and str(scope.get("path", "")).startswith(self.paths)
        ):
            allowed, wait = self.limiter.allow(client_key(scope))
            if not allowed:
                await _too_many(send, wait)
                return
        await self.app(scope, receive, send)


def client_key(scope: Scope) -> str:
    """The client's address as the server saw it (a proxy's X-Forwarded-For is not trusted)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _too_many(send: Send, wait: float) -> None:
    seconds = max(1, math.ceil(wait))
    message = BUSY_MESSAGE.format(seconds=seconds)
    body = json.dumps({"detail": message, "error": message}).encode()  # Gradio's page shows `detail`
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", str(seconds).encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
