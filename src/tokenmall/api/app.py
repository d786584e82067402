"""The Litestar application. Thin: authenticate, decode, hand the command to the ledger's writer
process, answer. Every error is application/problem+json.

Command endpoints (every POST and PUT) are plain ASGI handlers inside Litestar's router: they
read the headers and the body straight from the ASGI messages and answer with two `send` calls.
Litestar's request and response objects cost about as much CPU as the whole durable commit of
an order (docs/http-api.md); reads keep them, and /openapi.json describes both kinds.
"""

import asyncio
import json
from collections.abc import Callable
from typing import Any

from litestar import Litestar, Request, Response, asgi, get
from litestar.exceptions import HTTPException
from litestar.handlers import ASGIRouteHandler, HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.params import Parameter
from litestar.types import Receive, Scope, Send

from tokenmall import __version__
from tokenmall.api import openapi as openapi_schema
from tokenmall.api import reads
from tokenmall.api.problems import PROBLEM_JSON, STATUS_OF_CODE, Problem, make_problem, problem
from tokenmall.api.resources import ROUTES, Refusal, Route, command_of, mount_prefixes
from tokenmall.api.tokens import Principal, Role, find_principal
from tokenmall.api.writer import WriterClient
from tokenmall.core.canonical import canonical_json
from tokenmall.ledger.group_commit import LedgerClosed
from tokenmall.ledger.ledger import Submission
from tokenmall.ledger.store import Store, StoreError
from tokenmall.ledger.views import read_state
from tokenmall.replay import decode_command

BODY_BYTES_MAX = 64 * 1024
PRINCIPALS_CACHED_MAX = 10_000
JSON = b"application/json"
COMMANDS_PATH = "/v1/commands"

Answer = tuple[int, bytes] | Problem  # (status, JSON body) of a success, or the problem


class Api:
    """What the handlers need: the writer's client, a read-only store and a token cache."""

    def __init__(self, client: WriterClient, store: Store) -> None:
        self.client = client
        self.store = store
        self._principals: dict[str, Principal] = {}

    def principal(self, scope: Scope) -> Principal | Problem:
        header = raw_header(scope, b"authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return make_problem(401, "unauthorized", "send Authorization: Bearer <token>")
        found = self._principals.get(token)
        if found is None:
            found = find_principal(self.store, token)
            if found is None:
                return make_problem(401, "unauthorized", "unknown token")
            if len(self._principals) >= PRINCIPALS_CACHED_MAX:
                self._principals.clear()
            self._principals[token] = found
        return found

    async def submit(self, command: dict[str, Any], key: str | None, created: bool) -> Answer:
        try:
            submission = Submission.decoded(command, key)
        except ValueError as error:
            return make_problem(422, "invalid_command", str(error))
        try:
            result = await self.client.submit(submission)
        except (StoreError, LedgerClosed) as error:
            return make_problem(503, "unavailable", str(error))
        if result.ok and result.seq is not None:
            body = b'{"seq":%d,"outcome":"ok","replayed":%s}' % (
                result.seq,
                b"true" if result.replayed else b"false",
            )
            return (201 if created and not result.replayed else 200), body
        status = STATUS_OF_CODE.get(result.outcome, 409)
        detail = "the rules rejected the command" if result.seq else "the key names another command"
        return make_problem(
            status, result.outcome, detail, seq=result.seq, replayed=result.replayed
        )

    async def query(self, name: str, *arguments: Any) -> Any | Problem:
        """What the writer's engine answers (a committed state), or 503."""
        try:
            return await self.client.query(name, *arguments)
        except (StoreError, LedgerClosed) as error:
            return make_problem(503, "unavailable", str(error))


def raw_header(scope: Scope, name: bytes) -> str | None:
    """A request header straight from the ASGI scope (lower-case name)."""
    for header, value in scope["headers"]:
        if header == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(scope: Scope, receive: Receive) -> bytes | Problem:
    """The request body, or 413 once it passes BODY_BYTES_MAX (by its length or as it comes)."""
    length = raw_header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > BODY_BYTES_MAX:
        return make_problem(413, "payload_too_large", f"the body is over {BODY_BYTES_MAX} bytes")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return make_problem(400, "invalid_command", "the request ended early")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > BODY_BYTES_MAX:
            return make_problem(
                413, "payload_too_large", f"the body is over {BODY_BYTES_MAX} bytes"
            )
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def json_object(body: bytes, empty_is_ok: bool) -> dict[str, Any] | Problem:
    """The body as one JSON object (strict JSON, as replay reads it), or the problem."""
    if empty_is_ok and not body.strip():
        return {}
    command = decode_command(body)
    if not isinstance(command, dict):
        return make_problem(400, "invalid_command", "the body must be one JSON object")
    return command


async def send_answer(send: Send, answer: Answer) -> None:
    status, body, media = (
        (answer.status, answer.body, PROBLEM_JSON.encode())
        if isinstance(answer, Problem)
        else (*answer, JSON)
    )
    headers = [(b"content-type", media), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def command_answer(api: Api, scope: Scope, receive: Receive, route: Route | None) -> Answer:
    """A resource route's command (or, with no route, POST /v1/commands), authorised and
    committed; each refusal as the problem it is."""
    who = api.principal(scope)
    if isinstance(who, Problem):
        return who
    if route is None and who.role is not Role.ADMIN:
        return make_problem(403, "forbidden", "only an admin token may post raw commands")
    body = await read_body(scope, receive)
    if isinstance(body, Problem):
        return body
    command = json_object(body, empty_is_ok=route is not None)
    if isinstance(command, Problem):
        return command
    if route is not None:
        resource_command = command_of(route, command, scope["path_params"])
        if isinstance(resource_command, Refusal):
            return make_problem(422, resource_command.code, resource_command.detail)
        if not route.may(who, resource_command):
            return make_problem(403, "forbidden", f"this token may not {route.op} for that account")
        command = resource_command
    key = raw_header(scope, b"idempotency-key")
    return await api.submit(command, key, created=route is not None and route.created)


def command_mount(api: Api, prefix: str) -> ASGIRouteHandler:
    """Every command endpoint under `prefix`, as one ASGI mount: Litestar's router cannot give
    path parameters to plain ASGI handlers, so the routes below are matched here."""
    routes = [route for route in ROUTES if route.path.startswith(prefix)]

    @asgi(prefix, is_mount=True, copy_scope=False)
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        sub_path = scope["path"].rstrip("/")
        path, method = prefix + sub_path, scope.get("method")
        matches = [(route, found) for route in routes if (found := route.match(path)) is not None]
        if prefix == COMMANDS_PATH and not sub_path:
            answer = (
                await command_answer(api, scope, receive, None)
                if method == "POST"
                else make_problem(405, "method_not_allowed", "use POST")
            )
        elif not matches:
            answer = make_problem(404, "not_found", f"no endpoint {path}")
        elif (chosen := next((m for m in matches if m[0].method == method), None)) is None:
            answer = make_problem(405, "method_not_allowed", f"use {matches[0][0].method}")
        else:
            route, parameters = chosen
            scope["path_params"] = parameters
            answer = await command_answer(api, scope, receive, route)
        await send_answer(send, answer)

    return handler


def respond(content: Any) -> Response[Any]:
    return content.response() if isinstance(content, Problem) else Response(content)


def read_handlers(api: Api) -> list[HTTPRouteHandler]:
    """GET endpoints of the market, accounts, statements and rankings."""

    async def public_query(request: Request[Any, Any, Any], name: str) -> Response[Any]:
        """A read any valid token may make, of a committed state."""
        who = api.principal(request.scope)
        if isinstance(who, Problem):
            return who.response()
        return respond(await api.query(name))

    def own_account(request: Request[Any, Any, Any], account_id: str) -> Problem | None:
        who = api.principal(request.scope)
        if isinstance(who, Problem):
            return who
        if who.role is not Role.ADMIN and who.account != account_id:
            return make_problem(403, "forbidden", "a token may read only its own account")
        return None

    @get("/v1/market")
    async def get_market(request: Request[Any, Any, Any]) -> Response[Any]:
        """Price, pool, supply, unissued EP, SP outstanding and its backing (any token)."""
        return await public_query(request, "market")

    @get("/v1/accounts/{account_id:str}")
    async def get_account(request: Request[Any, Any, Any], account_id: str) -> Response[Any]:
        """An account's balances (admin, or the account's own token)."""
        refused = own_account(request, account_id)
        if refused is not None:
            return refused.response()
        found = await api.query("account", account_id)
        if found is None:
            return problem(404, "unknown_account", f"no account {account_id!r}")
        return respond(found)

    @get("/v1/accounts/{account_id:str}/statement")
    async def get_statement(
        request: Request[Any, Any, Any],
        account_id: str,
        after: int = Parameter(
            default=0, ge=0, le=reads.SEQ_MAX, description="the last seq already seen"
        ),
        limit: int = Parameter(default=100, ge=1, le=reads.PAGE_MAX),
    ) -> Response[Any]:
        """Every change to an account's balances, by journal entry, oldest first (admin, or the
        account's own token). Continue with `after` = the page's `next_after`."""
        refused = own_account(request, account_id)
        if refused is not None:
            return refused.response()
        page = await asyncio.to_thread(reads.statement, api.store, account_id, after, limit)
        if page is None:
            return problem(404, "unknown_account", f"no account {account_id!r}")
        return Response(page)

    @get("/v1/market/history")
    async def get_price_history(
        request: Request[Any, Any, Any],
        after_day: int = Parameter(
            default=-1, ge=-1, le=reads.SEQ_MAX, description="the last day already seen"
        ),
        limit: int = Parameter(default=100, ge=1, le=reads.PAGE_MAX),
    ) -> Response[Any]:
        """The price at each daily settlement (any token), and the day in progress."""
        who = api.principal(request.scope)
        if isinstance(who, Problem):
            return who.response()
        history = await asyncio.to_thread(reads.price_history, api.store, after_day, limit)
        today = await api.query("today")
        return respond(today if isinstance(today, Problem) else {**history, "today": today})

    @get("/v1/holders/top")
    async def get_top_holders(request: Request[Any, Any, Any]) -> Response[Any]:
        """股东排行: the ten consumers holding the most EP (any token)."""
        return await public_query(request, "top_holders")

    @get("/v1/levels")
    async def get_levels(request: Request[Any, Any, Any]) -> Response[Any]:
        """Each level's EP threshold and how many consumers reached it (any token)."""
        return await public_query(request, "levels")

    return [get_market, get_account, get_statement, get_price_history, get_top_holders, get_levels]


def create_app(
    client: WriterClient, store: Store, on_stopped: Callable[[], None] | None = None
) -> Litestar:
    """The API over a running writer process (`client`) and a read-only `store` of the same
    ledger. Stopping the app stops the writer after everything submitted has committed, then
    calls `on_stopped`."""
    api = Api(client, store)

    @get("/healthz", sync_to_thread=False)
    def healthz() -> Response[Any]:
        if client.stopped is not None:
            return problem(503, "unavailable", client.stopped)
        return Response({"status": "ok", "head": client.head_seq})

    @get("/v1/state", sync_to_thread=True)
    def state(request: Request[Any, Any, Any]) -> Response[Any]:
        """The canonical state of SPEC §7 (admin), read from the store: one consistent view,
        never the writer's engine in the middle of a batch."""
        who = api.principal(request.scope)
        if isinstance(who, Problem):
            return who.response()
        if who.role is not Role.ADMIN:
            return problem(403, "forbidden", "only an admin token may read the whole state")
        return Response(
            canonical_json(read_state(api.store)).encode(), media_type="application/json"
        )

    described: list[dict[str, Any]] = []  # built on first request, then kept

    @get("/openapi.json", include_in_schema=False, sync_to_thread=False)
    def openapi(request: Request[Any, Any, Any]) -> dict[str, Any]:
        """The OpenAPI description of this API."""
        if not described:
            described.append(openapi_schema.complete(request.app.openapi_schema.to_schema()))
        return described[0]

    def http_problem(_request: Request[Any, Any, Any], error: HTTPException) -> Response[bytes]:
        code = "not_found" if error.status_code == 404 else "bad_request"
        if error.status_code == 405:
            code = "method_not_allowed"
        extra = getattr(error, "extra", None)
        detail = str(error.detail) + (f": {json.dumps(extra)}" if extra else "")
        return problem(error.status_code, code, detail)

    def internal_problem(_request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
        return problem(500, "internal_error", type(error).__name__)

    async def stop() -> None:
        await client.close()
        store.close()
        if on_stopped is not None:
            on_stopped()

    return Litestar(
        route_handlers=[
            openapi,
            healthz,
            state,
            *read_handlers(api),
            *(command_mount(api, prefix) for prefix in (COMMANDS_PATH, *mount_prefixes())),
        ],
        exception_handlers={HTTPException: http_problem, Exception: internal_problem},
        request_max_body_size=BODY_BYTES_MAX,
        openapi_config=OpenAPIConfig(title="tokenmall", version=__version__),
        on_startup=[client.attach],
        on_shutdown=[stop],
    )
