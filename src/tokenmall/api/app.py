"""The Litestar application. Thin: authenticate, decode, hand the command to the ledger's writer
process, answer. Every error is application/problem+json.

Command endpoints (every POST and PUT) are plain ASGI handlers inside Litestar's router: they
read the headers and the body straight from the ASGI messages and answer with two `send` calls.
Litestar's request and response objects cost about as much CPU as the whole durable commit of
an order (docs/http-api.md); reads keep them, and /openapi.json describes both kinds.
"""

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, Literal

from litestar import Litestar, Request, Response, asgi, get
from litestar.enums import MediaType
from litestar.exceptions import HTTPException
from litestar.handlers import ASGIRouteHandler, HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.params import Parameter
from litestar.types import Receive, Scope, Send

from tokenmall import __version__
from tokenmall.api import openapi as openapi_schema_module
from tokenmall.api.edge import Edge, note_request
from tokenmall.api.limits import Limits
from tokenmall.api.login_links import login_link_handlers
from tokenmall.api.payouts import payout_handlers
from tokenmall.api.problems import (
    PROBLEM_JSON,
    STATUS_OF_CODE,
    Problem,
    make_problem,
    problem,
    retry_later,
    unauthorized,
)
from tokenmall.api.resources import (
    BATCH_APPROVE_OP,
    PAYMENT_CODE_OP,
    ROUTES,
    Refusal,
    Route,
    command_of,
    mount_prefixes,
)
from tokenmall.api.schemas import KEY_CHARS_MAX
from tokenmall.core.canonical import canonical_json
from tokenmall.core.fields import ID_CHARS_MAX
from tokenmall.core.units import MONEY_DECIMALS, Fen, format_fen, parse_scaled
from tokenmall.jsonl import decode_command
from tokenmall.ledger.ledger import DUPLICATE_PAYMENT, Submission
from tokenmall.ledger.store import Store, StoreError
from tokenmall.ledger.views import read_state
from tokenmall.ledger.writer import LedgerClosed, WriterBusy, WriterClient, WriterStopped
from tokenmall.payouts.dispatcher import Dispatcher, DispatchSettings
from tokenmall.payouts.store import PayoutStore
from tokenmall.services import queries
from tokenmall.services.payment_codes import (
    TTL_DEFAULT_S,
    CodeRefused,
    PaymentCodes,
    TooManyCodes,
)
from tokenmall.services.rate_limit import RateLimiter
from tokenmall.services.tokens import ACCOUNT_KIND_OF_ROLE, Principal, Role, find_principal
from tokenmall.web.app import PAGE_PREFIXES, page_not_found, web_routers
from tokenmall.web.pages import Web

READ_ANY = (Role.ADMIN, Role.INTEGRATION, Role.FINANCE)  # roles that read any account
# A withdrawal's end decided by a person (or the back end) through the API: allowed only while
# no payout channel holds it (payouts/store.py), so money on its way is never returned.
BY_HAND_OPS = {
    "reject_withdrawal": "rejected",
    "complete_withdrawal": "paid",
    "fail_withdrawal": "failed",
}

BODY_BYTES_MAX = 64 * 1024
PRINCIPALS_CACHED_MAX = 10_000
# A token is looked up again at most this long after the last look: a revoked token stops
# working within it, without a restart (the issue asks for 1 s).
PRINCIPAL_TTL_S = 0.5
JSON = b"application/json"
COMMANDS_PATH = "/v1/commands"

Answer = tuple[int, bytes] | Problem  # (status, JSON body) of a success, or the problem


class Api:
    """What the handlers need: the writer's client, a read-only store, the limits, the live
    payment codes, the rate limiter and a token cache."""

    def __init__(self, client: WriterClient, store: Store, limits: Limits) -> None:
        self.client = client
        self.store = store
        self.limits = limits
        self.payouts = PayoutStore(store)
        self.codes = PaymentCodes()
        self.limiter = RateLimiter(limits.rates_per_s)
        # token -> (when it was looked up, monotonic; its principal; its expiry, POSIX time)
        self._principals: dict[str, tuple[float, Principal | None, float | None]] = {}

    def principal(self, scope: Scope) -> Principal | Problem:
        """Who sent the request, or the 401 or 429 to answer. Every request is counted against
        its token's rate."""
        header = raw_header(scope, b"authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return unauthorized("send Authorization: Bearer <token>")
        now_s = time.monotonic()
        cached = self._principals.get(token)
        if cached is None or now_s - cached[0] > PRINCIPAL_TTL_S:
            if len(self._principals) >= PRINCIPALS_CACHED_MAX:
                self._principals.clear()
            principal = find_principal(self.store, token)
            expires_s = None if principal is None else principal.expires_at_s
            cached = self._principals[token] = (now_s, principal, expires_s)
        _, found, expires_s = cached
        if found is None:
            return unauthorized("unknown or revoked token", "invalid_token")
        note_request(token=found.token_id)
        if expires_s is not None and time.time() >= expires_s:
            return unauthorized(f"token {found.token_id} has expired", "invalid_token")
        wait_s = self.limiter.wait_s(found.token_id, found.role)
        if wait_s:
            return retry_later(429, "rate_limited", "too many requests for this token", wait_s)
        return found

    async def submit(
        self, who: Principal, command: dict[str, Any], key: str | None, created: bool
    ) -> Answer:
        """Commit the command as `who` (its key scoped to `who`'s token), or say why not."""
        code = command.pop("payment_code", None)
        scoped = None if key is None else f"{who.token_id}/{key}"
        if code is not None:  # a merchant charging SP: the code says for whom, and spends
            try:
                consent = self.codes.spend(code, who.token_id, key, order_fen(command) or 0)
            except CodeRefused as refused:
                return make_problem(403, "payment_code_refused", str(refused))
            if command.setdefault("user", consent.user) != consent.user:
                self.codes.unspend(code, who.token_id, key)
                return make_problem(403, "payment_code_refused", "the code is another consumer's")
            command["consent"] = consent.as_json()
        op = command.get("op")  # any JSON value, in a raw command
        by_hand = isinstance(op, str) and op in BY_HAND_OPS and isinstance(command.get("id"), str)
        if by_hand:
            held = await asyncio.to_thread(self.payouts.claim_by_hand, command["id"], who.actor)
            if held is not None:
                return make_problem(
                    409,
                    "payout_in_progress",
                    f"the {held.channel} channel holds this withdrawal ({held.state}"
                    f"{', batch ' + held.batch if held.batch else ''}): its outcome comes "
                    "from that channel",
                )
        answer, committed = await self._commit(who, command, scoped, created)
        if code is not None and not committed:
            self.codes.unspend(code, who.token_id, key)  # the consumer's code still works
        if by_hand:
            await asyncio.to_thread(self._after_by_hand, command, answer)
        return answer

    def _after_by_hand(self, command: dict[str, Any], answer: Answer) -> None:
        """A person's decision applied: the withdrawal is done; refused: let it go again."""
        if isinstance(answer, Problem):
            self.payouts.release_by_hand(command["id"])
            return
        outcome = BY_HAND_OPS[command["op"]]
        self.payouts.finish(command["id"], outcome, command.get("reference"))

    async def _commit(
        self, who: Principal, command: dict[str, Any], key: str | None, created: bool
    ) -> tuple[Answer, bool]:
        """The answer, and False if the command certainly was not journaled."""
        try:
            submission = Submission.decoded(command, key, who.actor)
        except ValueError as error:
            return make_problem(422, "invalid_command", str(error)), False
        try:
            result = await self.client.submit(submission)
        except WriterBusy as error:
            return retry_later(503, "unavailable", str(error), 1), False
        except WriterStopped as error:  # the batch may or may not have committed
            return make_problem(503, "unavailable", str(error)), True
        except (StoreError, LedgerClosed) as error:  # nothing of the batch was applied
            return make_problem(503, "unavailable", str(error)), False
        if result.ok and result.seq is not None:
            body = b'{"seq":%d,"outcome":"ok","replayed":%s}' % (
                result.seq,
                b"true" if result.replayed else b"false",
            )
            return ((201 if created and not result.replayed else 200), body), True
        status = STATUS_OF_CODE.get(result.outcome, 409)
        if result.seq is not None:
            detail = "the rules rejected the command"
        elif result.outcome == DUPLICATE_PAYMENT:
            detail = "an applied order took this payment_id already: a payment is credited once"
        else:
            detail = "the key names another command"
        problem_ = make_problem(
            status, result.outcome, detail, seq=result.seq, replayed=result.replayed
        )
        return problem_, result.seq is not None

    async def approve_all(self, who: Principal, ids: list[str], key: str | None) -> Answer:
        """Approve withdrawals at once (批量审核): one approve_withdrawal command and journal
        entry each, submitted together, so the writer commits them in as few transactions as
        its batches allow. The answer lists each one's outcome, in the order asked; with an
        Idempotency-Key, each command's key is that key and its withdrawal id, so a retry
        of the same request gives the same results and approves nothing twice."""
        scoped = None if key is None else f"{who.token_id}/{key}"
        answers = await asyncio.gather(
            *(
                self._commit(
                    who,
                    {"op": "approve_withdrawal", "id": withdrawal_id},
                    None if scoped is None else f"{scoped}/{withdrawal_id}",
                    created=False,
                )
                for withdrawal_id in ids
            )
        )
        results = []
        for withdrawal_id, (answer, _) in zip(ids, answers, strict=True):
            status, body = (answer.status, answer.body) if isinstance(answer, Problem) else answer
            found = json.loads(body)
            results.append(
                {
                    "id": withdrawal_id,
                    "status": status,
                    "outcome": found.get("outcome", found.get("code")),
                    "seq": found.get("seq"),
                }
            )
        approved = sum(1 for result in results if result["outcome"] == "ok")
        answer_body = {"approved": approved, "refused": len(results) - approved, "results": results}
        return 200, json.dumps(answer_body, separators=(",", ":")).encode()

    async def issue_code(self, who: Principal, body: dict[str, Any]) -> Answer:
        """A payment code for the consumer `who` (who must exist), valid `expires_in` s."""
        user = str(body["user"])
        found = await self.query("account", user)
        if isinstance(found, Problem):
            return found
        if found is None or found["kind"] != "consumer":
            return make_problem(404, "unknown_user", f"no consumer {user!r}")
        max_fen = parse_money(body["max_amount"]) if "max_amount" in body else None
        try:
            issued = self.codes.issue(
                user, who.token_id, int(body.get("expires_in", TTL_DEFAULT_S)), max_fen
            )
        except TooManyCodes as error:
            return retry_later(503, "unavailable", str(error), 1)
        answer = {
            "code": issued.code,
            "user": issued.user,
            "expires_in": issued.expires_in_s,
            "expires_at": issued.expires_at,
            "max_amount": None if max_fen is None else format_fen(max_fen),
        }
        return 201, json.dumps(answer, separators=(",", ":")).encode()

    async def query(self, name: str, *arguments: Any) -> Any | Problem:
        """What the writer's engine answers (a committed state), or 503."""
        try:
            return await self.client.query(name, *arguments)
        except WriterBusy as error:
            return retry_later(503, "unavailable", str(error), 1)
        except (StoreError, LedgerClosed) as error:
            return make_problem(503, "unavailable", str(error))


def parse_money(text: object) -> Fen | None:
    return parse_scaled(text, MONEY_DECIMALS)


def order_fen(command: dict[str, Any]) -> Fen | None:
    """An order's amount in fen, if it is a well-formed amount."""
    return parse_money(command.get("amount"))


def order_problem(
    who: Principal, command: dict[str, Any], limits: Limits, resource: bool
) -> Problem | None:
    """What the API refuses in an order before the rules see it: an amount over the largest
    single order, a cash order from the back end without its payment_id, payment fields that
    do not fit the way it is paid, a merchant's SP charge without a payment code, and (at
    /v1/orders, whose schema says so) no buyer. A raw command is left to the rules."""
    amount_fen = order_fen(command)
    if amount_fen is not None and amount_fen > limits.order_max_fen:
        largest = format_fen(limits.order_max_fen)
        return make_problem(422, "order_too_large", f"the largest single order is {largest}")
    if resource and "user" not in command and "payment_code" not in command:
        return make_problem(422, "invalid_command", "missing field 'user'")
    if who.role is Role.ADMIN:
        return None
    if command.get("pay", "cash") != "stable":
        if "payment_code" in command:
            return make_problem(422, "invalid_command", "payment_code is for SP orders")
        if "payment_id" not in command:
            return make_problem(
                422, "invalid_command", "a cash order names its payment: missing 'payment_id'"
            )
        return None
    if "payment_id" in command:
        return make_problem(422, "invalid_command", "payment_id names a cash payment")
    if who.role is Role.MERCHANT:
        if "payment_code" not in command:
            return make_problem(
                403,
                "forbidden",
                "a merchant charges SP only with the consumer's payment code (付款码)",
            )
        return None
    if "payment_code" in command:
        return make_problem(422, "invalid_command", "payment_code is for merchant tokens")
    return None


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
    status, body, media, extra = (
        (answer.status, answer.body, PROBLEM_JSON.encode(), answer.headers)
        if isinstance(answer, Problem)
        else (*answer, JSON, ())
    )
    headers = [(b"content-type", media), (b"content-length", b"%d" % len(body))]
    headers += [(name.lower().encode(), value.encode()) for name, value in extra]
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
        refusal = route.may(who, resource_command)
        if refusal is not None:
            return make_problem(403, "forbidden", refusal)
        if route.op == PAYMENT_CODE_OP:
            return await api.issue_code(who, resource_command)
        command = resource_command
    key = raw_header(scope, b"idempotency-key")
    if key is not None and not 0 < len(key) <= KEY_CHARS_MAX:
        return make_problem(
            422, "invalid_command", f"an Idempotency-Key has 1-{KEY_CHARS_MAX} characters"
        )
    if route is not None and route.op == BATCH_APPROVE_OP:
        return await api.approve_all(who, command["ids"], key)
    if command.get("op") == "order":
        refused = order_problem(who, command, api.limits, resource=route is not None)
        if refused is not None:
            return refused
    return await api.submit(who, command, key, created=route is not None and route.created)


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
                else not_allowed({"POST"})
            )
        elif not matches:
            answer = make_problem(404, "not_found", f"no endpoint {path}")
        elif (chosen := next((m for m in matches if m[0].method == method), None)) is None:
            answer = not_allowed({route.method for route, _ in matches})
        else:
            route, parameters = chosen
            scope["path_params"] = parameters
            answer = await command_answer(api, scope, receive, route)
        await send_answer(send, answer)

    return handler


def not_allowed(methods: set[str]) -> Problem:
    allowed = ", ".join(sorted(methods))
    return make_problem(405, "method_not_allowed", f"use {allowed}", (("Allow", allowed),))


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

    def account_reader(request: Request[Any, Any, Any], account_id: str) -> Principal | Problem:
        """The admin, the back end and finance read any account; other tokens only their own."""
        who = api.principal(request.scope)
        if isinstance(who, Problem):
            return who
        if who.role not in READ_ANY and who.account != account_id:
            return make_problem(403, "forbidden", "a token may read only its own account")
        return who

    def kind_problem(who: Principal, kind: str, account_id: str) -> Problem | None:
        """A consumer token reads a consumer account, a merchant token a merchant's: a token
        made for an id before someone registered it as the other kind reads nothing."""
        expected = ACCOUNT_KIND_OF_ROLE.get(who.role)
        if expected is not None and kind != expected:
            return make_problem(403, "forbidden", f"{account_id!r} is not a {expected} account")
        return None

    @get("/v1/market")
    async def get_market(request: Request[Any, Any, Any]) -> Response[Any]:
        """Price, pool, supply, unissued EP, SP outstanding and its backing (any token)."""
        return await public_query(request, "market")

    @get("/v1/accounts/{account_id:str}")
    async def get_account(request: Request[Any, Any, Any], account_id: str) -> Response[Any]:
        """An account's balances (admin, integration, or the account's own token)."""
        who = account_reader(request, account_id)
        if isinstance(who, Problem):
            return who.response()
        found = await api.query("account", account_id)
        if found is None:
            return problem(404, "unknown_account", f"no account {account_id!r}")
        if isinstance(found, Problem):
            return found.response()
        refused = kind_problem(who, found["kind"], account_id)
        return refused.response() if refused is not None else Response(found)

    @get("/v1/accounts/{account_id:str}/statement")
    async def get_statement(
        request: Request[Any, Any, Any],
        account_id: str,
        after: int = Parameter(
            default=0, ge=0, le=queries.SEQ_MAX, description="the last seq already seen"
        ),
        limit: int = Parameter(default=100, ge=1, le=queries.PAGE_MAX),
    ) -> Response[Any]:
        """Every change to an account's balances, by journal entry, oldest first, with who
        submitted it (admin, integration, or the account's own token). Continue with `after` =
        the page's `next_after`."""
        who = account_reader(request, account_id)
        if isinstance(who, Problem):
            return who.response()
        page = await asyncio.to_thread(queries.statement, api.store, account_id, after, limit)
        if page is None:
            return problem(404, "unknown_account", f"no account {account_id!r}")
        refused = kind_problem(who, page["kind"], account_id)
        return refused.response() if refused is not None else Response(page)

    @get("/v1/market/history")
    async def get_price_history(
        request: Request[Any, Any, Any],
        after_day: int = Parameter(
            default=-1, ge=-1, le=queries.SEQ_MAX, description="the last day already seen"
        ),
        limit: int = Parameter(default=100, ge=1, le=queries.PAGE_MAX),
    ) -> Response[Any]:
        """The price at each daily settlement (any token), and the day in progress."""
        who = api.principal(request.scope)
        if isinstance(who, Problem):
            return who.response()
        history = await asyncio.to_thread(queries.price_history, api.store, after_day, limit)
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

    return [
        get_market,
        get_account,
        get_statement,
        get_price_history,
        get_top_holders,
        get_levels,
    ]


def money_out_handlers(api: Api) -> list[HTTPRouteHandler]:
    """GET endpoints of SPEC v2's read models: the withdrawals list and item provenance."""

    @get("/v1/withdrawal-list")
    async def get_withdrawal_list(
        request: Request[Any, Any, Any],
        status: Literal["requested", "approved", "rejected", "paid", "failed"] | None = None,
        account: str | None = Parameter(default=None, min_length=1, max_length=ID_CHARS_MAX),
        day: str | None = Parameter(
            default=None,
            pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            description="the UTC day they were requested, 2026-11-30",
        ),
        after: int = Parameter(
            default=0, ge=0, le=queries.SEQ_MAX, description="the last requested_seq seen"
        ),
        limit: int = Parameter(default=100, ge=1, le=queries.PAGE_MAX),
    ) -> Response[Any]:
        """Withdrawals as they stand, filtered by status, account and day (提现审核 queue):
        admin, finance and the back end see all; a consumer, merchant or agent token its own."""
        who = api.principal(request.scope)
        if isinstance(who, Problem):
            return who.response()
        if who.role not in READ_ANY:
            if who.account is None or account not in (None, who.account):
                return problem(403, "forbidden", "a token may list only its own withdrawals")
            account = who.account
        page = await asyncio.to_thread(
            queries.withdrawal_list,
            api.store,
            status=status,
            account=account,
            day=day,
            after=after,
            limit=limit,
        )
        return Response(page)

    @get("/v1/item-provenance/{item:str}")
    async def get_item_provenance(request: Request[Any, Any, Any], item: str) -> Response[Any]:
        """Every owner of a collectible, with the journal entry that moved it: admin, finance
        and the back end, or a consumer that held it."""
        who = api.principal(request.scope)
        if isinstance(who, Problem):
            return who.response()
        found = await asyncio.to_thread(queries.provenance, api.store, item)
        if found is None:
            return problem(404, "unknown_item", f"no item {item!r}")
        held = {move["account"] for move in found["moves"]}
        if who.role not in READ_ANY and not (who.role is Role.CONSUMER and who.account in held):
            return problem(403, "forbidden", "only a consumer that held the item may read it")
        return Response(found)

    return [get_withdrawal_list, get_item_provenance]


class CompletedSchema(JsonRenderPlugin):
    """GET /openapi.json (any caller): Litestar's description of the reads, completed with the
    command endpoints from the route table (api/openapi.py); built once, then kept."""

    def __init__(self) -> None:
        super().__init__(path="/", media_type=MediaType.JSON)
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            self._rendered = self.render_json(
                request, openapi_schema_module.complete(openapi_schema)
            )
        return self._rendered


def create_app(
    client: WriterClient,
    store: Store,
    limits: Limits | None = None,
    on_stopped: Callable[[], None] | None = None,
    dispatch: DispatchSettings | None = None,
) -> Edge:
    """The API over a running writer process (`client`) and a read-only `store` of the same
    ledger, behind the edge (access log, security headers). Stopping the app stops the writer
    after everything submitted has committed, then calls `on_stopped`."""
    api = Api(client, store, limits or Limits())
    dispatch = dispatch or DispatchSettings()
    dispatcher = Dispatcher(api.payouts, dispatch, client.submit)

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

    web = Web(api)

    def http_problem(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
        if request.url.path.startswith(PAGE_PREFIXES):  # a person's browser: a page, not JSON
            return page_not_found(web, request, error)
        code = "not_found" if error.status_code == 404 else "bad_request"
        if error.status_code == 405:
            code = "method_not_allowed"
        extra = getattr(error, "extra", None)
        detail = str(error.detail) + (f": {json.dumps(extra)}" if extra else "")
        allowed = (error.headers or {}).get("allow")  # Litestar names the methods on a 405
        headers = (("Allow", allowed),) if allowed else ()
        return make_problem(error.status_code, code, detail, headers).response()

    def internal_problem(_request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
        return problem(500, "internal_error", type(error).__name__)

    async def stop() -> None:
        await dispatcher.stop()  # first: it submits outcomes through the writer's client
        await client.close()
        store.close()
        if on_stopped is not None:
            on_stopped()

    application = Litestar(
        route_handlers=[
            healthz,
            state,
            *read_handlers(api),
            *money_out_handlers(api),
            *payout_handlers(api, dispatch),
            *login_link_handlers(api),
            *web_routers(web),
            *(command_mount(api, prefix) for prefix in (COMMANDS_PATH, *mount_prefixes())),
        ],
        exception_handlers={HTTPException: http_problem, Exception: internal_problem},
        request_max_body_size=BODY_BYTES_MAX,
        # The one schema route is /openapi.json, completed: no /schema pages (they load
        # scripts from a CDN and describe only the Litestar routes).
        openapi_config=OpenAPIConfig(
            title="tokenmall",
            version=__version__,
            path="/openapi.json",
            render_plugins=[CompletedSchema()],
        ),
        on_startup=[client.attach, dispatcher.start],
        on_shutdown=[stop],
    )
    return Edge(application)
