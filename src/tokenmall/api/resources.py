"""Resource endpoints for every SPEC §4 command: a table of routes, each turning the path and a
JSON body into one command and saying who may send it (docs/security.md has the same table in
words). Admin tokens may do everything. Money enters only through the integration token (the
mall's back end, which knows what was paid); a consumer's SP moves only on the consumer's own
token or a payment code it issued; consumer and merchant tokens act only on their own account."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from tokenmall.api.schemas import AMOUNT_FIELDS, field_error
from tokenmall.core.errors import ErrorCode
from tokenmall.services.tokens import Principal, Role

Command = dict[str, Any]
INVALID_COMMAND, INVALID_AMOUNT = str(ErrorCode.INVALID_COMMAND), str(ErrorCode.INVALID_AMOUNT)
# Who may send a command: None if `who` may, else why not (the 403's detail).
Permission = Callable[[Principal, Command], str | None]
PAYMENT_CODE_OP = "payment_code"  # issues a payment code; not a ledger command
BATCH_APPROVE_OP = "approve_withdrawals"  # one approve_withdrawal command per id (批量审核)
NOT_ONE_COMMAND = (PAYMENT_CODE_OP, BATCH_APPROVE_OP)  # routes whose body is no command


def admin(who: Principal, _command: Command) -> str | None:
    return None if who.role is Role.ADMIN else "only an admin token may do this"


def back_end(who: Principal, _command: Command) -> str | None:
    """The admin, or the mall's back end (integration): what states that money moved."""
    if who.role in (Role.ADMIN, Role.INTEGRATION):
        return None
    return "only the mall's back end (an integration token) or an admin may do this"


def _own(who: Principal, command: Command, role: Role, field_name: str) -> str | None:
    if who.role is Role.ADMIN:
        return None
    if who.role is role and command.get(field_name) == who.account:
        return None
    return f"this token may act only for its own account (a {role} token, {field_name!r})"


def consumer_self(who: Principal, command: Command) -> str | None:
    """The consumer whose account the command names as `user`."""
    return _own(who, command, Role.CONSUMER, "user")


def consumer_only_self(who: Principal, command: Command) -> str | None:
    """The consumer itself, not even an admin: consent that only the payer can give."""
    if who.role is Role.CONSUMER and command.get("user") == who.account:
        return None
    return "only the consumer's own token may issue its payment codes"


def merchant_self(who: Principal, command: Command) -> str | None:
    return _own(who, command, Role.MERCHANT, "merchant")


def agent_self(who: Principal, command: Command) -> str | None:
    return _own(who, command, Role.AGENT, "agent")


def reviewer(who: Principal, _command: Command) -> str | None:
    """Withdrawal review (提现审核): the finance team, or an admin."""
    if who.role in (Role.ADMIN, Role.FINANCE):
        return None
    return "only a finance or admin token may review withdrawals"


def payout_reporter(who: Principal, _command: Command) -> str | None:
    """A payout's outcome: the payment channel's integration (the back end), finance by hand,
    or an admin. It says money left, or came back: like a payment, not a consumer's to say."""
    if who.role in (Role.ADMIN, Role.FINANCE, Role.INTEGRATION):
        return None
    return "only the back end, a finance or an admin token may report a payout's outcome"


def giver_self(who: Principal, command: Command) -> str | None:
    """A gift of an item: the consumer giving it (`from`)."""
    return _own(who, command, Role.CONSUMER, "from")


def registrar(self_check: Permission) -> Permission:
    """Registration: the admin, the mall's back end (sign-up), or the account's own token."""

    def may(who: Principal, command: Command) -> str | None:
        return None if who.role is Role.INTEGRATION else self_check(who, command)

    return may


def seller_self(who: Principal, command: Command) -> str | None:
    if "merchant" in command:
        return merchant_self(who, command)
    return consumer_self(who, command)


def order_party(who: Principal, command: Command) -> str | None:
    """A cash order says money was received: only the back end (or admin) may say so. An SP
    order spends a consumer's SP: the consumer pays from its own token (主扫), or a merchant
    charges it with the consumer's payment code (被扫, checked by the caller)."""
    if command.get("pay", "cash") != "stable":
        return back_end(who, command)
    if who.role is Role.MERCHANT:
        return merchant_self(who, command)
    if who.role is Role.INTEGRATION:
        return "the back end cannot spend a consumer's SP (its own token or payment code can)"
    return consumer_self(who, command)


@dataclass(frozen=True)
class Route:
    method: Literal["POST", "PUT"]
    path: str  # Litestar path; its parameters become command fields
    op: str
    summary: str
    may: Permission
    created: bool = False  # 201 instead of 200
    body: tuple[str, ...] = ()  # the command's fields the body may hold ("op" always may)
    required: tuple[str, ...] = ()
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+):str\}", r"(?P<\1>[^/]+)", self.path)
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters, if `path` is this route's."""
        found = self.pattern.match(path)
        return None if found is None else found.groupdict()

    @property
    def path_fields(self) -> tuple[str, ...]:
        return tuple(part[1:].split(":")[0] for part in self.path.split("/") if part[:1] == "{")


ROUTES = (
    Route(
        "POST",
        "/v1/consumers",
        "register",
        "Register a consumer (with a referrer)",
        registrar(consumer_self),
        created=True,
        body=("user", "referrer"),
        required=("user",),
    ),
    Route(
        "POST",
        "/v1/merchants",
        "register_merchant",
        "Register a merchant",
        registrar(merchant_self),
        created=True,
        body=("merchant",),
        required=("merchant",),
    ),
    Route(
        "POST",
        "/v1/orders",
        "order",
        "Place an order: cash (back end, with payment_id) or SP (the consumer, or a merchant "
        "with the consumer's payment code)",
        order_party,
        created=True,
        body=("id", "user", "amount", "pay", "merchant", "region", "payment_id", "payment_code"),
        required=("id", "amount"),
    ),
    Route(
        "POST",
        "/v1/orders/{order:str}/refund",
        "refund",
        "Refund a cash order of today",
        back_end,
    ),
    Route(
        "POST",
        "/v1/consumers/{user:str}/payment-codes",
        PAYMENT_CODE_OP,
        "Issue a one-use payment code (付款码) a merchant can charge SP with",
        consumer_only_self,
        created=True,
        body=("max_amount", "expires_in"),
    ),
    Route(
        "POST",
        "/v1/consumers/{user:str}/sell",
        "sell",
        "Sell EP back to the platform",
        seller_self,
        body=("points",),
        required=("points",),
    ),
    Route(
        "POST",
        "/v1/merchants/{merchant:str}/sell",
        "sell",
        "Sell a merchant's EP",
        seller_self,
        body=("points",),
        required=("points",),
    ),
    Route(
        "POST",
        "/v1/consumers/{user:str}/redeem",
        "redeem",
        "Exchange EP for goods",
        consumer_self,
        body=("points",),
        required=("points",),
    ),
    Route(
        "POST",
        "/v1/consumers/{user:str}/convert",
        "convert",
        "Convert EP to SP",
        consumer_self,
        body=("points",),
        required=("points",),
    ),
    Route(
        "POST",
        "/v1/merchants/{merchant:str}/redeem",
        "merchant_redeem",
        "Turn a merchant's SP into EP at par",
        merchant_self,
        body=("amount",),
        required=("amount",),
    ),
    Route(
        "POST",
        "/v1/consumers/{user:str}/grants",
        "grant_stable",
        "Grant locked SP",
        admin,
        created=True,
        body=("amount", "days"),
        required=("amount", "days"),
    ),
    Route(
        "PUT",
        "/v1/params",
        "set_params",
        "Change parameters (SPEC §2)",
        admin,
        body=("params",),
        required=("params",),
    ),
    Route("POST", "/v1/settlements", "settle_day", "Run the daily settlement", admin),
    # SPEC v2 §9: withdrawals (提现) and their review, frozen accounts
    *(
        Route(
            "POST",
            f"/v1/{kind}s/{{{field_name}:str}}/withdrawals",
            "withdraw",
            f"Request a withdrawal of the {kind}'s cash (申请提现)",
            may,
            created=True,
            body=("id", "amount", "payee"),
            required=("id", "amount", "payee"),
        )
        for kind, field_name, may in (
            ("consumer", "user", consumer_self),
            ("merchant", "merchant", merchant_self),
            ("agent", "agent", agent_self),
        )
    ),
    Route(
        "POST",
        "/v1/withdrawals/{id:str}/approve",
        "approve_withdrawal",
        "Approve a requested withdrawal (审核通过)",
        reviewer,
    ),
    Route(
        "POST",
        "/v1/withdrawals/approve",
        BATCH_APPROVE_OP,
        "Approve up to 500 withdrawals at once (批量审核): one journal entry each, a result each",
        reviewer,
        body=("ids",),
        required=("ids",),
    ),
    Route(
        "POST",
        "/v1/withdrawals/{id:str}/reject",
        "reject_withdrawal",
        "Reject a withdrawal with a reason, which the journal keeps (驳回); the money goes back",
        reviewer,
        body=("reason",),
        required=("reason",),
    ),
    Route(
        "POST",
        "/v1/withdrawals/{id:str}/complete",
        "complete_withdrawal",
        "Report an approved withdrawal paid, with the channel's transfer number (打款成功)",
        payout_reporter,
        body=("reference",),
        required=("reference",),
    ),
    Route(
        "POST",
        "/v1/withdrawals/{id:str}/fail",
        "fail_withdrawal",
        "Report an approved withdrawal's transfer failed (打款失败); the money goes back",
        payout_reporter,
        body=("reason",),
    ),
    Route(
        "POST",
        "/v1/risk/freeze",
        "freeze",
        "Freeze an account (冻结)",
        admin,
        body=("account",),
        required=("account",),
    ),
    Route(
        "POST",
        "/v1/risk/unfreeze",
        "unfreeze",
        "Unfreeze an account (解冻)",
        admin,
        body=("account",),
        required=("account",),
    ),
    # SPEC v2 §10: regional agents
    Route(
        "POST",
        "/v1/agents",
        "register_agent",
        "Register a regional agent (区域代理) for a province, city or district",
        admin,
        created=True,
        body=("agent", "region", "until"),
        required=("agent", "region"),
    ),
    Route("POST", "/v1/agents/{agent:str}/end", "end_agent", "End an agent's term", admin),
    # SPEC v2 §11: digital collectibles
    Route(
        "POST",
        "/v1/collections",
        "issue_collection",
        "Issue a collection of numbered items (数字藏品)",
        admin,
        created=True,
        body=("collection", "edition", "value"),
        required=("collection", "edition", "value"),
    ),
    Route(
        "POST",
        "/v1/collections/{collection:str}/claims",
        "claim_collectible",
        "Claim the collection's next item for EP",
        consumer_self,
        created=True,
        body=("user",),
        required=("user",),
    ),
    Route(
        "POST",
        "/v1/items/{item:str}/gift",
        "gift_collectible",
        "Gift an item held long enough to another consumer (转赠)",
        giver_self,
        body=("from", "to"),
        required=("from", "to"),
    ),
    Route(
        "POST",
        "/v1/items/{item:str}/use",
        "use_collectible",
        "Use an item's right, once (核销)",
        consumer_self,
        body=("user",),
        required=("user",),
    ),
)


def mount_prefixes() -> list[str]:
    """The first two segments of every route ("/v1/consumers"): one ASGI mount each."""
    return sorted({"/".join(route.path.split("/")[:3]) for route in ROUTES})


class Refusal(NamedTuple):
    """Why a body is refused before it reaches the ledger: a SPEC error code and a message."""

    code: str
    detail: str


def command_of(route: Route, body: Command, path_params: dict[str, Any]) -> Command | Refusal:
    """The command a request asks for, or why its body is malformed."""
    refusal = body_refusal(route, body, path_params)
    if refusal is not None:
        return Refusal(INVALID_COMMAND, refusal) if isinstance(refusal, str) else refusal
    return {**body, **path_params, "op": route.op}


def body_refusal(route: Route, body: Command, path_params: dict[str, Any]) -> Refusal | str | None:
    """What is wrong with a body, by the route's schema (api/schemas.py), or None."""
    if "op" in body and body["op"] != route.op:
        return f'"op" must be {route.op!r} here (or left out)'
    for name, value in path_params.items():
        if name in body and body[name] != value:
            return f"{name!r} differs between the path and the body"
    for name, value in body.items():
        if name == "op" or name in path_params:
            continue
        if name not in route.body:
            return f"unknown field {name!r} (this endpoint takes {', '.join(route.body) or 'none'})"
        error = field_error(name, value, route.op)
        if error is not None:
            return Refusal(INVALID_AMOUNT if name in AMOUNT_FIELDS else INVALID_COMMAND, error)
    missing = [name for name in route.required if name not in body]
    if missing:
        return f"missing field {missing[0]!r}"
    return None
