"""The Litestar application. Thin: authenticate, decode, hand the command to the ledger's
group committer, answer. Every error is application/problem+json."""

from collections.abc import Callable
from typing import Any

from litestar import Litestar, Request, Response, get, post, route
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.params import Parameter

from tokenmall import __version__
from tokenmall.api import openapi as openapi_schema
from tokenmall.api import reads
from tokenmall.api.problems import STATUS_OF_CODE, problem
from tokenmall.api.resources import ROUTES, Route, command_of
from tokenmall.api.tokens import Principal, Role, find_principal
from tokenmall.core.canonical import canonical_json
from tokenmall.core.engine import Engine
from tokenmall.ledger.group_commit import GroupCommitter, LedgerClosed
from tokenmall.ledger.ledger import Submission
from tokenmall.ledger.store import StoreError
from tokenmall.ledger.views import read_state
from tokenmall.replay import decode_command

BODY_BYTES_MAX = 64 * 1024
PRINCIPALS_CACHED_MAX = 10_000


class Api:
    """What the handlers need: the committer (and through it the ledger) and a token cache."""

    def __init__(self, committer: GroupCommitter) -> None:
        self.committer = committer
        self.store = committer.ledger.store
        self._principals: dict[str, Principal] = {}

    def principal(self, request: Request[Any, Any, Any]) -> Principal | Response[bytes]:
        header = raw_header(request, b"authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return problem(401, "unauthorized", "send Authorization: Bearer <token>")
        found = self._principals.get(token)
        if found is None:
            found = find_principal(self.store, token)
            if found is None:
                return problem(401, "unauthorized", "unknown token")
            if len(self._principals) >= PRINCIPALS_CACHED_MAX:
                self._principals.clear()
            self._principals[token] = found
        return found

    async def submit(
        self, command: dict[str, Any], request: Request[Any, Any, Any], created: bool
    ) -> Response[Any]:
        try:
            submission = Submission.decoded(command, raw_header(request, b"idempotency-key"))
        except ValueError as error:
            return problem(422, "invalid_command", str(error))
        try:
            result = await self.committer.submit_prepared_async(submission)
        except (StoreError, LedgerClosed) as error:
            return problem(503, "unavailable", str(error))
        if result.ok:
            body = {"seq": result.seq, "outcome": "ok", "replayed": result.replayed}
            return Response(body, status_code=201 if created and not result.replayed else 200)
        status = STATUS_OF_CODE.get(result.outcome, 409)
        detail = "the rules rejected the command" if result.seq else "the key names another command"
        return problem(status, result.outcome, detail, seq=result.seq, replayed=result.replayed)


def raw_header(request: Request[Any, Any, Any], name: bytes) -> str | None:
    """A request header straight from the ASGI scope (lower-case name): cheaper than building
    Litestar's header map on the hot path of every command."""
    for header, value in request.scope["headers"]:
        if header == name:
            return str(value.decode("latin-1"))
    return None


def resource_handler(api: Api, resource: Route) -> HTTPRouteHandler:
    @route(
        resource.path,
        http_method=[resource.method],
        status_code=201 if resource.created else 200,
        operation_id=f"{resource.op}_{resource.method}_{resource.path}",
        summary=resource.summary,
    )
    async def handler(request: Request[Any, Any, Any]) -> Response[Any]:
        who = api.principal(request)
        if isinstance(who, Response):
            return who
        body = await json_object(request, empty_is_ok=True)
        if not isinstance(body, dict):
            return body
        command = command_of(resource, body, dict(request.path_params))
        if isinstance(command, str):
            return problem(422, "invalid_command", command)
        if not resource.may(who, command):
            return problem(403, "forbidden", f"this token may not {resource.op} for that account")
        return await api.submit(command, request, created=resource.created)

    return handler


async def json_object(
    request: Request[Any, Any, Any], empty_is_ok: bool = False
) -> dict[str, Any] | Response[bytes]:
    """The body as one JSON object (strict JSON, as replay reads it), or the problem."""
    body = await request.body()
    if empty_is_ok and not body.strip():
        return {}
    command = decode_command(body) if len(body) <= BODY_BYTES_MAX else None
    if not isinstance(command, dict):
        return problem(400, "invalid_command", "the body must be one JSON object")
    return command


def read_handlers(api: Api) -> list[HTTPRouteHandler]:
    """GET endpoints of the market, accounts, statements and rankings."""
    ledger = api.committer.ledger

    def public_read(
        request: Request[Any, Any, Any], read: Callable[[Engine], Any]
    ) -> Response[Any]:
        """A read any valid token may make, of a committed state."""
        who = api.principal(request)
        if isinstance(who, Response):
            return who
        with ledger.read_lock:
            return Response(read(ledger.engine))

    @get("/v1/market", sync_to_thread=True)
    def get_market(request: Request[Any, Any, Any]) -> Response[Any]:
        """Price, pool, supply, unissued EP, SP outstanding and its backing (any token)."""
        return public_read(request, reads.market)

    @get("/v1/accounts/{account_id:str}", sync_to_thread=True)
    def get_account(request: Request[Any, Any, Any], account_id: str) -> Response[Any]:
        """An account's balances (admin, or the account's own token)."""
        who = api.principal(request)
        if isinstance(who, Response):
            return who
        if who.role is not Role.ADMIN and who.account != account_id:
            return problem(403, "forbidden", "a token may read only its own account")
        with ledger.read_lock:
            found = reads.account(ledger.engine, account_id)
        if found is None:
            return problem(404, "unknown_account", f"no account {account_id!r}")
        return Response(found)

    @get("/v1/accounts/{account_id:str}/statement", sync_to_thread=True)
    def get_statement(
        request: Request[Any, Any, Any],
        account_id: str,
        after: int = Parameter(default=0, ge=0, description="the last seq already seen"),
        limit: int = Parameter(default=100, ge=1, le=reads.PAGE_MAX),
    ) -> Response[Any]:
        """Every change to an account's balances, by journal entry, oldest first (admin, or the
        account's own token). Continue with `after` = the page's `next_after`."""
        who = api.principal(request)
        if isinstance(who, Response):
            return who
        if who.role is not Role.ADMIN and who.account != account_id:
            return problem(403, "forbidden", "a token may read only its own account")
        with ledger.read_lock:
            kind = reads.account_kind(ledger.engine, account_id)
        if kind is None:
            return problem(404, "unknown_account", f"no account {account_id!r}")
        return Response(reads.statement(api.store, account_id, kind, after, limit))

    @get("/v1/market/history", sync_to_thread=True)
    def get_price_history(
        request: Request[Any, Any, Any],
        after_day: int = Parameter(default=-1, ge=-1, description="the last day already seen"),
        limit: int = Parameter(default=100, ge=1, le=reads.PAGE_MAX),
    ) -> Response[Any]:
        """The price at each daily settlement (any token), and the day in progress."""
        who = api.principal(request)
        if isinstance(who, Response):
            return who
        history = reads.price_history(api.store, after_day, limit)
        with ledger.read_lock:
            history["today"] = reads.today(ledger.engine)
        return Response(history)

    @get("/v1/holders/top", sync_to_thread=True)
    def get_top_holders(request: Request[Any, Any, Any]) -> Response[Any]:
        """股东排行: the ten consumers holding the most EP (any token)."""
        return public_read(request, reads.top_holders)

    @get("/v1/levels", sync_to_thread=True)
    def get_levels(request: Request[Any, Any, Any]) -> Response[Any]:
        """Each level's EP threshold and how many consumers reached it (any token)."""
        return public_read(request, reads.levels)

    return [get_market, get_account, get_statement, get_price_history, get_top_holders, get_levels]


def create_app(committer: GroupCommitter, on_shutdown: Callable[[], None]) -> Litestar:
    api = Api(committer)

    @get("/healthz", sync_to_thread=False)
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "head": committer.ledger.head_seq}

    @post("/v1/commands", status_code=200)
    async def post_command(request: Request[Any, Any, Any]) -> Response[Any]:
        """One SPEC command as JSON (admin). `Idempotency-Key` makes a retry safe."""
        who = api.principal(request)
        if isinstance(who, Response):
            return who
        if who.role is not Role.ADMIN:
            return problem(403, "forbidden", "only an admin token may post raw commands")
        command = await json_object(request)
        if not isinstance(command, dict):
            return command
        return await api.submit(command, request, created=False)

    @get("/v1/state", sync_to_thread=True)
    def state(request: Request[Any, Any, Any]) -> Response[Any]:
        """The canonical state of SPEC §7 (admin), read from the store: one consistent view,
        never the writer's engine in the middle of a batch."""
        who = api.principal(request)
        if isinstance(who, Response):
            return who
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
        return problem(error.status_code, "http_error", str(error.detail))

    def internal_problem(_request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
        return problem(500, "internal_error", type(error).__name__)

    resources = [resource_handler(api, resource) for resource in ROUTES]
    return Litestar(
        route_handlers=[
            openapi,
            healthz,
            post_command,
            state,
            *read_handlers(api),
            *resources,
        ],
        exception_handlers={HTTPException: http_problem, Exception: internal_problem},
        request_max_body_size=BODY_BYTES_MAX,
        openapi_config=OpenAPIConfig(title="tokenmall", version=__version__),
        on_shutdown=[on_shutdown],
    )
