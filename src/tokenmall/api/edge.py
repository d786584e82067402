"""The outermost ASGI layer: one access-log line per request, and the headers every answer
carries.

Access log (logger "tokenmall.access", INFO): time, token id ("-" when none was valid), method,
path, status and latency, e.g.
    2026-11-30T15:23:00.123456Z tk_3f9ac2e1b7d0 POST /v1/orders 201 3.1ms
Never the token, the query string or the body.

Headers: `X-Content-Type-Options: nosniff` on everything (a JSON answer is never run as a
script or page), and `Cache-Control: no-store` on every answer of the API: balances and
statements must not sit in a shared cache.
"""

import logging
import time
from contextvars import ContextVar
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Send

from tokenmall.ledger.ledger import timestamp, utc_now

ACCESS_LOG = logging.getLogger("tokenmall.access")
ALWAYS = [(b"x-content-type-options", b"nosniff")]
NO_STORE = [(b"cache-control", b"no-store")]
# The pages' own CSS, scripts and vendored libraries change only with a release.
CACHED = [(b"cache-control", b"public, max-age=3600")]
PATH_CHARS_LOGGED_MAX = 200

# What handlers learn about a request that the access log should say (the token's id). A dict
# set per request: handlers that run in a thread get a copy of the context, but the same dict.
_notes: ContextVar[dict[str, str] | None] = ContextVar("tokenmall_request_notes", default=None)


def note_request(**notes: str) -> None:
    found = _notes.get()
    if found is not None:
        found.update(notes)


class Edge:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: start-up and shutdown
            await self.app(scope, receive, send)  # type: ignore[arg-type]
            return
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]  # before a mount rewrites the path
        notes: dict[str, str] = {}
        status = 0
        if path.startswith("/static/"):
            extra = ALWAYS + CACHED
        else:
            extra = ALWAYS + (NO_STORE if path != "/openapi.json" else [])

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]  # ours to change
            await send(message)

        context = _notes.set(notes)
        try:
            await self.app(scope, receive, send_with_headers)  # type: ignore[arg-type]
        finally:
            _notes.reset(context)
            if ACCESS_LOG.isEnabledFor(logging.INFO):
                _log(method, path, notes, status, time.perf_counter() - started)


def _log(method: str, path: str, notes: dict[str, str], status: int, elapsed_s: float) -> None:
    if len(path) > PATH_CHARS_LOGGED_MAX:
        path = path[:PATH_CHARS_LOGGED_MAX] + "…"
    ACCESS_LOG.info(
        "%s %s %s %s %d %.1fms",
        timestamp(utc_now()),
        notes.get("token", "-"),
        method,
        path.encode("unicode_escape").decode("ascii"),  # one line, whatever the path holds
        status,
        elapsed_s * 1000,
    )
