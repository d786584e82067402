"""Independent reference model of the tokenmall rules (shared/SPEC.md v2 + docs/decisions.md).

This module is written for differential testing of the real engine, so it is deliberately
simple and slow and shares no code with ``src/``: every price and intermediate value is an exact
``Fraction``, money is an ``int`` of fen, EP an ``int`` of 1e-8 units, water-filling is the literal
round-based loop of SPEC §4, forced exits are found by scanning every consumer (SPEC §5) and levels
are recomputed for every consumer after every applied command.

A command is validated completely before anything is mutated, so a rejected command changes
nothing (SPEC §4: "applies completely or is rejected ... and changes nothing").

Public entry points:

* ``replay_reference(lines, params_overrides)`` -> the canonical state v2 dict of SPEC §7.
* ``run_reference(lines, params_overrides)`` -> the full ``Ledger``, including the totals that are
  kept for the money-conservation invariant but never printed.
* ``canonical_state(ledger)`` (v2), ``canonical_state_v1(ledger)`` (the v1 format, for the
  ``*.expected-v1.json`` goldens) and ``canonical_json(state)`` (the golden files' bytes).
* ``check_invariants(ledger, previous_price)`` -> the SPEC §6 problems (empty when all hold);
  ``replay_with_invariants(lines, params_overrides)`` checks them after every line.

Readings of SPEC v2 taken here where it is silent or ambiguous (the most conservative one: no
value from nothing, the price never falls, money never leaves without a record):

R1. The id check "wherever it appears" covers the command's top-level fields only (not keys
    nested inside ``set_params``'s ``params``, which are parameter names).
R2. The null rule covers the op's own fields (required and optional: ``pay``, ``merchant``,
    ``region``, ``until``, ``referrer``...). A null in a field the op does not have is an unknown
    extra and ignored, unless its name is an id field (then R1 makes it ``invalid_command``).
R3. The ``item`` check (a string of at most 80 code points) is op-dependent: only
    gift_collectible and use_collectible check it; like other unknown extras it is ignored
    elsewhere. Likewise ``region`` outside order / register_agent, ``until`` outside
    register_agent and ``edition`` outside issue_collection.
R4. ``sell`` may name only ``user`` or ``merchant``: a sell naming only ``agent`` (agents hold
    no EP) is ``invalid_command``, as is one naming several of user / merchant / agent.
R5. JSON integers of more than 40 digits stay "out of every range" (decisions.md 27): an
    ``until`` or ``edition`` written with one is ``invalid_command``, and a params file's
    ``collectible_lock_days`` must be 0..3650 anyway.
R6. ``gift_collectible`` with a ``from`` that is no account (or not a consumer) is
    ``not_owner`` (owners are always consumers); a ``to`` that is a merchant or agent is
    ``unknown_user``; ``use_collectible`` by a ``user`` that is no consumer is ``not_owner``.
R7. ``unknown_user`` / ``unknown_merchant`` / ``unknown_agent`` in withdraw are by kind: a
    ``user`` naming a merchant is ``unknown_user``. A referrer must be a consumer (an agent is
    ``unknown_referrer``, as a merchant is by decisions.md 19).
R8. ``locked`` is judged with the ``collectible_lock_days`` in force at the time of the gift
    (a set_params changes it for items already held), as the formula is written.
R9. An agent may be frozen or unfrozen after it ended, and may withdraw its cash after it ended
    ("its cash stays withdrawable"). ``register_agent`` with ``until`` < the current day is
    applied (the agent simply never earns).
R10. A commission that rounds to 0 fen is not paid and not remembered by the order; a refund
    takes back only commissions actually paid, in province, city, district order, each
    ``min(commission, cash)``: money already withdrawing or withdrawn is not taken back.
R11. Commissions are paid inside the order, before the levels and forced exits that follow
    every command (they touch no EP, so this cannot change an outcome).
R12. The daily withdrawal total is per account id and counts every applied ``withdraw`` of the
    day whatever became of it (SPEC §2 says so); a set_params changing ``withdraw_daily_max``
    mid-day is compared against the total so far.
R13. Withdrawal ids, order ids, collection ids and account ids are separate namespaces: a
    withdrawal may reuse an order's id (SPEC §4 "Structure checks").
R14. Claiming with an empty supply uses the last defined price (SPEC §11); a claim never costs
    0 EP since ``value`` > 0 and the ceiling rounds up.
R15. ``check_invariants`` also checks that dividends paid + carry + leftovers equal the
    dividend funds set aside, and that every withdrawal names an existing account and every
    item a claimed serial of its collection.

"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

__all__ = [
    "Agent",
    "CommandRejectedError",
    "Consumer",
    "Ledger",
    "Merchant",
    "Params",
    "canonical_json",
    "canonical_state",
    "canonical_state_v1",
    "check_invariants",
    "replay_reference",
    "replay_with_invariants",
    "run_reference",
]

FEN_PER_CNY = 100
UNITS_PER_EP = 10**8
MONEY_PLACES = 2
EP_PLACES = 8
MAX_ID_CHARS = 64  # SPEC §4: ids are strings of 1-64 characters
MAX_DECIMAL_CHARS = 64  # decisions.md 7: a limit on every decimal input
MAX_LINE_BYTES = 64 * 1024  # decisions.md 26
MAX_JSON_INT_DIGITS = 40  # longer JSON integers are out of every range anyway
MAX_GRANT_DAYS = 3650
MAX_REFERRAL_LEVELS = 2
MAX_LEVELS = 20
JSON_WHITESPACE = " \t\r\n"  # RFC 8259 whitespace: what makes a line "blank"
PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # [0-9] is ASCII only, used with fullmatch

INVALID_COMMAND = "invalid_command"
INVALID_AMOUNT = "invalid_amount"
INVALID_PARAMS = "invalid_params"
REMAINDER_MODES = ("carry", "pool", "platform")

MAX_AGENT_LEVELS = 3  # SPEC §2 agent_rates: province, city, district
MAX_LOCK_DAYS = 3650
MAX_EDITION = 1_000_000
MAX_ITEM_CHARS = 80
ID_PUNCTUATION = frozenset("_-.:@")
DISTRICT_CODE = re.compile(r"[0-9]{6}")  # ASCII digits only; used with fullmatch
AGENT_REGION = re.compile(r"[0-9]{2}(?:[0-9]{2}){0,2}")  # 2, 4 or 6 ASCII digits

DEFAULT_PARAMS: dict[str, Any] = {
    "initial_price": "1",
    "contribution_rate": "0.30",
    "buyer_share": "0.70",
    "referral_rates": ["0", "0"],
    "total_issuance": "100000000",
    "sell_fee_rate": "0.10",
    "quota_multiple": "2",
    "exit_enabled": True,
    "dividend_rate": "0.20",
    "level_dividend_rate": "0.10",
    "level_thresholds": [
        "100",
        "300",
        "1000",
        "3000",
        "10000",
        "30000",
        "100000",
        "300000",
        "1000000",
        "3000000",
    ],
    "dividend_remainder": "carry",
    "withdraw_min": "1.00",
    "withdraw_daily_max": "50000.00",
    "withdraw_review_above": "0.00",
    "agent_rates": ["0", "0", "0"],
    "collectible_lock_days": 30,
}


class CommandRejectedError(Exception):
    """A command is rejected with one error code (SPEC §4, §7)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    """A validated parameter set (SPEC §2); EP quantities in 1e-8 units, money in fen."""

    initial_price: Fraction
    contribution_rate: Fraction
    buyer_share: Fraction
    referral_rates: tuple[Fraction, ...]
    total_issuance: int
    sell_fee_rate: Fraction
    quota_multiple: Fraction
    exit_enabled: bool
    dividend_rate: Fraction
    level_dividend_rate: Fraction
    level_thresholds: tuple[int, ...]
    dividend_remainder: str
    withdraw_min: int = 100
    withdraw_daily_max: int = 5_000_000
    withdraw_review_above: int = 0
    agent_rates: tuple[Fraction, ...] = (Fraction(0), Fraction(0), Fraction(0))
    collectible_lock_days: int = 30


@dataclass
class Consumer:
    """A consumer account (SPEC §3); money in fen, EP in 1e-8 units."""

    referrer: str | None
    ep: int = 0
    sp: int = 0
    locked_sp: int = 0
    quota: int = 0
    level: int = 0
    cash_out: int = 0
    goods: int = 0
    dividends: int = 0
    exited: bool = False
    cash: int = 0
    withdrawing: int = 0
    withdrawn: int = 0
    frozen: bool = False


@dataclass
class Merchant:
    """A merchant account (SPEC §3): no quota, no level, never force-exited."""

    ep: int = 0
    sp: int = 0
    cash_out: int = 0
    cash: int = 0
    withdrawing: int = 0
    withdrawn: int = 0
    frozen: bool = False


@dataclass
class Agent:
    """A regional agent (SPEC §3, §10): holds money only, no EP or SP."""

    region: str
    until: int | None = None
    ended: bool = False
    commissions: int = 0
    cash: int = 0
    withdrawing: int = 0
    withdrawn: int = 0
    frozen: bool = False


Account = Consumer | Merchant | Agent


@dataclass
class Order:
    """An applied order, kept for duplicate ids and refunds."""

    user: str
    amount: int
    cash: bool
    day: int
    contribution: int = 0
    grants: list[tuple[str, int]] = field(default_factory=list)  # buyer first, then referrers
    quota_granted: int = 0
    refunded: bool = False
    commissions: list[tuple[str, int]] = field(default_factory=list)  # (agent, fen) paid


@dataclass
class Vesting:
    """A grant_stable still releasing (SPEC §4 grant_stable)."""

    user: str
    total: int
    days: int
    released: int = 0  # settlements already done


@dataclass
class Withdrawal:
    """A withdrawal record (SPEC §9)."""

    account: str
    amount: int
    status: str  # requested, approved, rejected, paid, failed
    reference: str | None = None


@dataclass
class Collection:
    """A numbered series of collectibles (SPEC §11)."""

    edition: int
    value: int
    claimed: int = 0


@dataclass
class Item:
    """One serial-numbered collectible, keyed "<collection>#<serial>" (SPEC §11)."""

    owner: str
    acquired_day: int
    gifts: int = 0
    used: bool = False


@dataclass
class Ledger:
    """The whole state. The totals after ``errors`` are kept for invariants only, never printed."""

    raw_params: dict[str, Any]
    params: Params
    last_price: Fraction
    consumers: dict[str, Consumer] = field(default_factory=dict)
    merchants: dict[str, Merchant] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    vestings: list[Vesting] = field(default_factory=list)
    pool: int = 0
    supply: int = 0
    issued: int = 0
    burned: int = 0
    treasury: int = 0
    sp_outstanding: int = 0
    day: int = 0
    day_sales: int = 0
    carry: int = 0
    sales: int = 0
    refunds: int = 0
    contributions: int = 0
    dividends_paid: int = 0
    mint_funding: int = 0
    exits: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    refund_withdrawals: int = 0
    leftover_to_pool: int = 0
    leftover_to_platform: int = 0
    # SPEC v2
    agents: dict[str, Agent] = field(default_factory=dict)
    withdrawals: dict[str, Withdrawal] = field(default_factory=dict)
    collections: dict[str, Collection] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)
    withdrawn_today: dict[str, int] = field(default_factory=dict)  # account -> fen, reset daily
    cash_owed: int = 0
    withdrawn: int = 0
    agent_commissions: int = 0
    dividend_funds: int = 0  # every F1 and F2 set aside, carry excluded (invariants only)


# --------------------------------------------------------------------------------------------
# Exact arithmetic helpers
# --------------------------------------------------------------------------------------------


def _cny(fen: int) -> Fraction:
    return Fraction(fen, FEN_PER_CNY)


def _ep(units: int) -> Fraction:
    return Fraction(units, UNITS_PER_EP)


def _floor_fen(cny: Fraction) -> int:
    return math.floor(cny * FEN_PER_CNY)


def _ceil_fen(cny: Fraction) -> int:
    return math.ceil(cny * FEN_PER_CNY)


def _floor_units(ep: Fraction) -> int:
    return math.floor(ep * UNITS_PER_EP)


def _price(led: Ledger) -> Fraction:
    """P = pool / supply; with no supply, the last price that was defined (SPEC §1)."""
    if led.supply == 0:
        return led.last_price
    return _cny(led.pool) / _ep(led.supply)


def _remember_price(led: Ledger) -> Fraction:
    """Call before an operation that can shrink the supply to 0, so P survives it."""
    led.last_price = _price(led)
    return led.last_price


# --------------------------------------------------------------------------------------------
# Input parsing
# --------------------------------------------------------------------------------------------


def _parse_decimal(raw: object, max_places: int | None) -> Fraction | None:
    """Exact value of a plain decimal JSON string (SPEC §1), or None when it is not one."""
    if not isinstance(raw, str) or len(raw) > MAX_DECIMAL_CHARS:
        return None
    if PLAIN_DECIMAL.fullmatch(raw) is None:
        return None
    whole, _, frac = raw.partition(".")
    # decisions.md 8: the digits written count, so "1.000" has three decimals.
    if max_places is not None and len(frac) > max_places:
        return None
    return Fraction(int(whole + frac), 10 ** len(frac))


def _parse_money(raw: object) -> int:
    """A positive money/SP amount in fen, else invalid_amount."""
    value = _parse_decimal(raw, MONEY_PLACES)
    if value is None or value == 0:
        raise CommandRejectedError(INVALID_AMOUNT)
    return int(value * FEN_PER_CNY)


def _parse_points(raw: object, held: int) -> int:
    """A positive EP quantity in units; "all" means everything held (SPEC §4)."""
    if raw == "all":
        if held == 0:
            raise CommandRejectedError(INVALID_AMOUNT)
        return held
    value = _parse_decimal(raw, EP_PLACES)
    if value is None or value == 0:
        raise CommandRejectedError(INVALID_AMOUNT)
    return int(value * UNITS_PER_EP)


def _is_id(raw: object) -> bool:
    """SPEC §4 [v2]: 1-64 code points, each alphanumeric (str.isalnum) or one of _ - . : @."""
    if not isinstance(raw, str) or not 1 <= len(raw) <= MAX_ID_CHARS:
        return False
    return all(ch.isalnum() or ch in ID_PUNCTUATION for ch in raw)


def _is_json_int(raw: object) -> bool:
    # bool is a subclass of int in Python but true/false are not JSON integers (decisions.md 20).
    return isinstance(raw, int) and not isinstance(raw, bool)


# --------------------------------------------------------------------------------------------
# Parameters (SPEC §2, decisions.md 10-14)
# --------------------------------------------------------------------------------------------


def _param_decimal(raw: dict[str, Any], name: str, max_places: int | None = None) -> Fraction:
    value = _parse_decimal(raw[name], max_places)
    if value is None:
        raise ValueError(f"parameter {name} must be a plain decimal string")
    return value


def _param_list(raw: dict[str, Any], name: str, max_len: int) -> list[object]:
    value = raw[name]
    if not isinstance(value, list) or len(value) > max_len:
        raise ValueError(f"parameter {name} must be an array of at most {max_len} strings")
    return list(value)


def _in_range(value: Fraction, low: Fraction, high: Fraction, name: str) -> Fraction:
    if not low <= value <= high:
        raise ValueError(f"parameter {name} out of range")
    return value


def _parse_rates(raw: dict[str, Any]) -> dict[str, Fraction]:
    """The plain rate parameters, each checked against its SPEC §2 range."""
    one = Fraction(1)
    rates = {
        name: _in_range(_param_decimal(raw, name), Fraction(0), one, name)
        for name in (
            "contribution_rate",
            "buyer_share",
            "sell_fee_rate",
            "dividend_rate",
            "level_dividend_rate",
        )
    }
    if rates["contribution_rate"] == 0:
        raise ValueError("contribution_rate must be > 0")
    if rates["sell_fee_rate"] == 1:
        raise ValueError("sell_fee_rate must be < 1")
    return rates


def _parse_referral_rates(raw: dict[str, Any]) -> tuple[Fraction, ...]:
    rates: list[Fraction] = []
    for item in _param_list(raw, "referral_rates", MAX_REFERRAL_LEVELS):
        value = _parse_decimal(item, None)
        if value is None:
            raise ValueError("referral_rates entries must be plain decimal strings")
        rates.append(_in_range(value, Fraction(0), Fraction(1), "referral_rates"))
    return tuple(rates)


def _parse_thresholds(raw: dict[str, Any]) -> tuple[int, ...]:
    thresholds: list[int] = []
    for item in _param_list(raw, "level_thresholds", MAX_LEVELS):
        value = _parse_decimal(item, EP_PLACES)
        if value is None or value == 0:
            raise ValueError("level_thresholds entries must be positive EP strings")
        units = int(value * UNITS_PER_EP)
        if thresholds and units <= thresholds[-1]:
            raise ValueError("level_thresholds must be strictly ascending")
        thresholds.append(units)
    return tuple(thresholds)


def _param_money(raw: dict[str, Any], name: str, *, positive: bool) -> int:
    """A money parameter (SPEC §2 [v2]): a plain decimal string of at most 2 decimals, in fen."""
    value = _parse_decimal(raw[name], MONEY_PLACES)
    if value is None or (positive and value == 0):
        raise ValueError(f"parameter {name} must be a money string" + (" > 0" if positive else ""))
    return int(value * FEN_PER_CNY)


def _parse_agent_rates(raw: dict[str, Any]) -> tuple[Fraction, ...]:
    rates: list[Fraction] = []
    for item in _param_list(raw, "agent_rates", MAX_AGENT_LEVELS):
        value = _parse_decimal(item, None)
        if value is None or value >= 1:
            raise ValueError("agent_rates entries must be plain decimal strings in [0, 1)")
        rates.append(value)
    return tuple(rates)


def _parse_withdraw_params(raw: dict[str, Any]) -> tuple[int, int, int]:
    minimum = _param_money(raw, "withdraw_min", positive=True)
    daily_max = _param_money(raw, "withdraw_daily_max", positive=True)
    if daily_max < minimum:
        raise ValueError("withdraw_daily_max must be >= withdraw_min")
    review_above = _param_money(raw, "withdraw_review_above", positive=False)
    return minimum, daily_max, review_above


def _parse_lock_days(raw: dict[str, Any]) -> int:
    days = raw["collectible_lock_days"]
    if not _is_json_int(days) or not 0 <= days <= MAX_LOCK_DAYS:
        raise ValueError("collectible_lock_days must be a JSON integer 0..3650")
    return int(days)


def _parse_params(raw: dict[str, Any]) -> Params:
    """Validate a complete raw parameter set; ValueError when invalid."""
    unknown = sorted(set(raw) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(unknown)}")
    initial_price = _param_decimal(raw, "initial_price")
    if initial_price == 0:
        raise ValueError("initial_price must be > 0")
    rates = _parse_rates(raw)
    referral_rates = _parse_referral_rates(raw)
    if rates["buyer_share"] + sum(referral_rates, Fraction(0)) > 1:
        raise ValueError("buyer_share + sum(referral_rates) must be <= 1")
    agent_rates = _parse_agent_rates(raw)
    if rates["contribution_rate"] + sum(agent_rates, Fraction(0)) > 1:
        raise ValueError("contribution_rate + sum(agent_rates) must be <= 1")
    withdraw_min, withdraw_daily_max, withdraw_review_above = _parse_withdraw_params(raw)
    if not isinstance(raw["exit_enabled"], bool):
        raise ValueError("exit_enabled must be a JSON boolean")
    if raw["dividend_remainder"] not in REMAINDER_MODES:
        raise ValueError("dividend_remainder must be carry, pool or platform")
    return Params(
        initial_price=initial_price,
        contribution_rate=rates["contribution_rate"],
        buyer_share=rates["buyer_share"],
        referral_rates=referral_rates,
        total_issuance=int(_param_decimal(raw, "total_issuance", EP_PLACES) * UNITS_PER_EP),
        sell_fee_rate=rates["sell_fee_rate"],
        quota_multiple=_param_decimal(raw, "quota_multiple"),
        exit_enabled=raw["exit_enabled"],
        dividend_rate=rates["dividend_rate"],
        level_dividend_rate=rates["level_dividend_rate"],
        level_thresholds=_parse_thresholds(raw),
        dividend_remainder=raw["dividend_remainder"],
        withdraw_min=withdraw_min,
        withdraw_daily_max=withdraw_daily_max,
        withdraw_review_above=withdraw_review_above,
        agent_rates=agent_rates,
        collectible_lock_days=_parse_lock_days(raw),
    )


def _new_ledger(overrides: dict[str, Any] | None) -> Ledger:
    """Initial state; invalid overrides raise ValueError (the CLI's exit status 2)."""
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise ValueError("parameter overrides must be a JSON object")
    raw = {**DEFAULT_PARAMS, **overrides}
    params = _parse_params(raw)
    return Ledger(raw_params=raw, params=params, last_price=params.initial_price)


# --------------------------------------------------------------------------------------------
# Command shape (SPEC §4, decisions.md 1-6)
# --------------------------------------------------------------------------------------------

# Every field with one of these names must be a valid id wherever it appears, in any command,
# checked before the op itself (SPEC §4 "Structure checks [v2]").
ID_FIELDS = (
    "user",
    "referrer",
    "merchant",
    "agent",
    "account",
    "from",
    "to",
    "id",
    "order",
    "collection",
    "reference",
)
SELLERS = ("user", "merchant", "agent")

# op -> (required fields, optional fields). For sell and withdraw the seller (user / merchant /
# agent) is checked separately. Fields of other ops are unknown extras for this op and are
# ignored (SPEC §4), apart from the global id check above.
SHAPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "register": (("user",), ("referrer",)),
    "register_merchant": (("merchant",), ()),
    "order": (("id", "user", "amount"), ("pay", "merchant", "region")),
    "sell": (("points",), ("user", "merchant")),
    "redeem": (("user", "points"), ()),
    "convert": (("user", "points"), ()),
    "merchant_redeem": (("merchant", "amount"), ()),
    "refund": (("order",), ()),
    "grant_stable": (("user", "amount", "days"), ()),
    "set_params": (("params",), ()),
    "settle_day": ((), ()),
    "withdraw": (("id", "amount"), SELLERS),
    "approve_withdrawal": (("id",), ()),
    "reject_withdrawal": (("id",), ()),
    "complete_withdrawal": (("id", "reference"), ()),
    "fail_withdrawal": (("id",), ()),
    "freeze": (("account",), ()),
    "unfreeze": (("account",), ()),
    "register_agent": (("agent", "region"), ("until",)),
    "end_agent": (("agent",), ()),
    "issue_collection": (("collection", "edition", "value"), ()),
    "claim_collectible": (("user", "collection"), ()),
    "gift_collectible": (("item", "from", "to"), ()),
    "use_collectible": (("item", "user"), ()),
}
# Who may be named as the seller of a sell / withdraw; naming none, several, or one not allowed
# here (an agent selling points) is invalid_command.
SELLER_OPS: dict[str, tuple[str, ...]] = {
    "sell": ("user", "merchant"),
    "withdraw": SELLERS,
}


def _reject_constant(name: str) -> Any:
    # NaN / Infinity / -Infinity are not JSON; Python would accept them by default.
    raise ValueError(f"not JSON: {name}")


def _parse_json_int(text: str) -> int | float:
    # Python refuses int() of more than 4300 digits; such a number is still valid JSON, and is
    # out of every range we check, so it stands in as infinity (a non-integer) instead.
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        return math.inf
    return int(text)


def _decode_line(line: str) -> object:
    """The JSON value of one line; invalid_command for anything that is not JSON text."""
    try:
        encoded_len = len(line.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates, e.g. undecodable bytes via surrogateescape
        raise CommandRejectedError(INVALID_COMMAND) from None
    if encoded_len > MAX_LINE_BYTES:
        raise CommandRejectedError(INVALID_COMMAND)
    try:
        value = json.loads(line, parse_constant=_reject_constant, parse_int=_parse_json_int)
        # A \ud800-style escape gives a lone surrogate: not a Unicode string, so not valid text.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError, UnicodeEncodeError):
        raise CommandRejectedError(INVALID_COMMAND) from None
    return value


def _check_shape(value: object) -> tuple[str, dict[str, Any]]:
    """Structure checks, in SPEC §4's order: object and op, ids anywhere, unknown_op, the rest."""
    if not isinstance(value, dict) or value.get("op") is None:
        raise CommandRejectedError(INVALID_COMMAND)  # not an object, op missing or null
    if any(name in value and not _is_id(value[name]) for name in ID_FIELDS):
        raise CommandRejectedError(INVALID_COMMAND)  # whatever the op, even one it ignores
    op = value["op"]
    if not isinstance(op, str) or op not in SHAPES:
        raise CommandRejectedError("unknown_op")
    required, optional = SHAPES[op]
    if any(name not in value for name in required):
        raise CommandRejectedError(INVALID_COMMAND)
    if any(value.get(name, 0) is None for name in required + optional):
        raise CommandRejectedError(INVALID_COMMAND)  # null counts as present and is invalid
    if op in SELLER_OPS:
        named = [name for name in SELLERS if name in value]
        if len(named) != 1 or named[0] not in SELLER_OPS[op]:
            raise CommandRejectedError(INVALID_COMMAND)  # whose money would be a guess
    _check_values(op, value)
    return op, value


def _check_values(op: str, value: dict[str, Any]) -> None:
    """The op-dependent structural value checks of SPEC §4 [v2] (all invalid_command)."""
    if op in ("gift_collectible", "use_collectible"):
        item = value["item"]
        if not isinstance(item, str) or len(item) > MAX_ITEM_CHARS:
            raise CommandRejectedError(INVALID_COMMAND)
    if op == "order" and "region" in value and not _is_ascii_code(value["region"], DISTRICT_CODE):
        raise CommandRejectedError(INVALID_COMMAND)  # checked on stable orders too
    if op == "register_agent":
        if not _is_ascii_code(value["region"], AGENT_REGION):
            raise CommandRejectedError(INVALID_COMMAND)
        if "until" in value and not (_is_json_int(value["until"]) and value["until"] >= 0):
            raise CommandRejectedError(INVALID_COMMAND)
    if op == "issue_collection":
        edition = value["edition"]
        if not (_is_json_int(edition) and 1 <= edition <= MAX_EDITION):
            raise CommandRejectedError(INVALID_COMMAND)
    if op == "gift_collectible" and value["from"] == value["to"]:
        raise CommandRejectedError(INVALID_COMMAND)


def _is_ascii_code(raw: object, pattern: re.Pattern[str]) -> bool:
    return isinstance(raw, str) and pattern.fullmatch(raw) is not None


# --------------------------------------------------------------------------------------------
# Lookups
# --------------------------------------------------------------------------------------------


def _consumer(led: Ledger, user: str) -> Consumer:
    found = led.consumers.get(user)
    if found is None:
        raise CommandRejectedError("unknown_user")
    return found


def _merchant(led: Ledger, merchant: object) -> Merchant:
    found = led.merchants.get(merchant) if isinstance(merchant, str) else None
    if found is None:
        raise CommandRejectedError("unknown_merchant")
    return found


def _agent(led: Ledger, agent: str) -> Agent:
    found = led.agents.get(agent)
    if found is None:
        raise CommandRejectedError("unknown_agent")
    return found


def _any_account(led: Ledger, account: str) -> Account | None:
    """Consumers, merchants and agents share one namespace of ids (SPEC §3)."""
    return led.consumers.get(account) or led.merchants.get(account) or led.agents.get(account)


def _not_frozen(*accounts: Account) -> None:
    if any(account.frozen for account in accounts):
        raise CommandRejectedError("account_frozen")


def _credit_cash(led: Ledger, account: Account, fen: int) -> None:
    """Money the platform now owes the account (SPEC §3 [v2] cash)."""
    account.cash += fen
    led.cash_owed += fen


# --------------------------------------------------------------------------------------------
# Accounts
# --------------------------------------------------------------------------------------------


def _op_register(led: Ledger, cmd: dict[str, Any]) -> None:
    user: str = cmd["user"]
    if _any_account(led, user) is not None:
        raise CommandRejectedError("duplicate_account")
    referrer: str | None = cmd.get("referrer")
    if referrer is not None and referrer not in led.consumers:
        # merchants and agents cannot refer (decisions.md 19)
        raise CommandRejectedError("unknown_referrer")
    led.consumers[user] = Consumer(referrer=referrer)


def _op_register_merchant(led: Ledger, cmd: dict[str, Any]) -> None:
    merchant: str = cmd["merchant"]
    if _any_account(led, merchant) is not None:
        raise CommandRejectedError("duplicate_account")
    led.merchants[merchant] = Merchant()


def _op_freeze(led: Ledger, cmd: dict[str, Any]) -> None:
    _set_frozen(led, cmd["account"], frozen=True)


def _op_unfreeze(led: Ledger, cmd: dict[str, Any]) -> None:
    _set_frozen(led, cmd["account"], frozen=False)


def _set_frozen(led: Ledger, account_id: str, *, frozen: bool) -> None:
    account = _any_account(led, account_id)
    if account is None:
        raise CommandRejectedError("unknown_account")
    if account.frozen == frozen:
        raise CommandRejectedError("invalid_state")
    account.frozen = frozen


# --------------------------------------------------------------------------------------------
# Orders and refunds
# --------------------------------------------------------------------------------------------


def _op_order(led: Ledger, cmd: dict[str, Any]) -> None:
    order_id: str = cmd["id"]
    if order_id in led.orders:
        raise CommandRejectedError("duplicate_order")
    buyer = _consumer(led, cmd["user"])
    amount = _parse_money(cmd["amount"])
    pay = cmd.get("pay", "cash")
    if not isinstance(pay, str) or pay not in ("cash", "stable"):
        raise CommandRejectedError("invalid_payment")
    if pay == "stable":
        _stable_order(led, cmd, buyer, amount)
    else:
        _cash_order(led, cmd, buyer, amount)


def _stable_order(led: Ledger, cmd: dict[str, Any], buyer: Consumer, amount: int) -> None:
    """SP moves to the merchant; no EP, quota, sales or contribution."""
    merchant = _merchant(led, cmd.get("merchant"))
    _not_frozen(buyer, merchant)
    if buyer.sp < amount:
        raise CommandRejectedError("insufficient_stable")
    buyer.sp -= amount
    merchant.sp += amount
    led.orders[cmd["id"]] = Order(user=cmd["user"], amount=amount, cash=False, day=led.day)


def _order_recipients(led: Ledger, user: str) -> list[tuple[str, Fraction]]:
    """Buyer, then each active referrer up the chain with a positive rate (decisions.md 18)."""
    recipients = [(user, led.params.buyer_share)]
    referrer_id = led.consumers[user].referrer
    for rate in led.params.referral_rates:
        if referrer_id is None:
            break
        referrer = led.consumers[referrer_id]
        if rate > 0 and referrer.quota > 0:
            recipients.append((referrer_id, rate))
        referrer_id = referrer.referrer  # an inactive referrer is skipped, not the chain
    return recipients


def _cash_order(led: Ledger, cmd: dict[str, Any], buyer: Consumer, amount: int) -> None:
    price = _price(led)
    contribution = _floor_fen(_cny(amount) * led.params.contribution_rate)
    order = Order(
        user=cmd["user"], amount=amount, cash=True, day=led.day, contribution=contribution
    )
    for user, share in _order_recipients(led, cmd["user"]):
        want = _floor_units(_cny(contribution) * share / price)
        granted = min(want, led.params.total_issuance - led.issued)  # cap: nothing past it
        led.consumers[user].ep += granted
        led.supply += granted
        led.issued += granted
        order.grants.append((user, granted))
    led.pool += contribution
    order.quota_granted = _floor_fen(_cny(amount) * led.params.quota_multiple)
    buyer.quota += order.quota_granted
    buyer.exited = False
    led.day_sales += amount
    led.sales += amount
    led.contributions += contribution
    if "region" in cmd:
        _pay_commissions(led, cmd["region"], order)  # after everything else (SPEC §4 order)
    led.orders[cmd["id"]] = order


def _region_agent(led: Ledger, region: str) -> tuple[str, Agent] | None:
    """The agent that has not ended holding exactly ``region`` (at most one: region_taken)."""
    for agent_id, agent in sorted(led.agents.items()):
        if not agent.ended and agent.region == region:
            return agent_id, agent
    return None


def _pay_commissions(led: Ledger, region: str, order: Order) -> None:
    """SPEC §10: province R[:2], city R[:4], district R[:6], each at its agent_rates entry."""
    rates = led.params.agent_rates
    for index, length in enumerate((2, 4, 6)):
        rate = rates[index] if index < len(rates) else Fraction(0)  # missing entries are 0
        if rate <= 0:
            continue
        found = _region_agent(led, region[:length])
        if found is None:
            continue
        agent_id, agent = found
        if agent.until is not None and led.day > agent.until:
            continue
        commission = _floor_fen(_cny(order.amount) * rate)
        if commission <= 0:
            continue
        _credit_cash(led, agent, commission)
        agent.commissions += commission
        led.agent_commissions += commission
        order.commissions.append((agent_id, commission))


def _op_refund(led: Ledger, cmd: dict[str, Any]) -> None:
    order = led.orders.get(cmd["order"])
    if order is None:
        raise CommandRejectedError("unknown_order")
    if not order.cash or order.refunded:
        raise CommandRejectedError("not_refundable")
    if order.day != led.day:
        raise CommandRejectedError("refund_window_closed")
    buyer = led.consumers[order.user]
    if buyer.ep < order.grants[0][1]:
        raise CommandRejectedError("points_already_used")
    price = _remember_price(led)  # P before; stays P if the reclaim empties the supply
    for user, granted in order.grants:
        holder = led.consumers[user]
        reclaimed = min(granted, holder.ep)  # referrers give back only what they still hold
        holder.ep -= reclaimed
        led.supply -= reclaimed
        led.issued -= reclaimed
    # Withdraw only what keeps the remaining supply backed at P (decisions.md 17).
    spare = max(0, led.pool - _ceil_fen(price * _ep(led.supply)))
    withdrawn = min(order.contribution, spare)
    led.pool -= withdrawn
    led.refund_withdrawals += withdrawn
    buyer.quota -= min(buyer.quota, order.quota_granted)
    led.day_sales -= order.amount
    led.refunds += order.amount
    for agent_id, commission in order.commissions:
        # Frozen and ended agents alike; what they no longer hold the platform carries.
        agent = led.agents[agent_id]
        take = min(commission, agent.cash)
        agent.cash -= take
        led.cash_owed -= take
        agent.commissions -= take
        led.agent_commissions -= take
    order.refunded = True


# --------------------------------------------------------------------------------------------
# Selling, redeeming, converting
# --------------------------------------------------------------------------------------------


def _sell(led: Ledger, holder: Consumer | Merchant, qty: int) -> None:
    """The buy-back rule of SPEC §4 sell; also used by forced exits (SPEC §5)."""
    price = _remember_price(led)
    payout = _floor_fen(_ep(qty) * price * (1 - led.params.sell_fee_rate))
    led.pool -= payout  # the fee simply stays in the pool
    led.supply -= qty
    led.burned += qty
    holder.ep -= qty
    holder.cash_out += payout
    _credit_cash(led, holder, payout)  # SPEC v2: the payout is owed to the seller
    if isinstance(holder, Consumer):
        holder.quota -= min(holder.quota, payout)


def _op_sell(led: Ledger, cmd: dict[str, Any]) -> None:
    # Exactly one of user / merchant is present (checked in _check_shape).
    holder: Consumer | Merchant = (
        _consumer(led, cmd["user"]) if "user" in cmd else _merchant(led, cmd["merchant"])
    )
    _not_frozen(holder)
    qty = _parse_points(cmd["points"], holder.ep)
    if qty > holder.ep:
        raise CommandRejectedError("insufficient_points")
    _sell(led, holder, qty)


def _points_of_consumer(led: Ledger, cmd: dict[str, Any]) -> tuple[Consumer, int]:
    """The shared validation of redeem and convert ("errors as for sell")."""
    consumer = _consumer(led, cmd["user"])
    _not_frozen(consumer)
    qty = _parse_points(cmd["points"], consumer.ep)
    if qty > consumer.ep:
        raise CommandRejectedError("insufficient_points")
    return consumer, qty


def _op_redeem(led: Ledger, cmd: dict[str, Any]) -> None:
    consumer, qty = _points_of_consumer(led, cmd)
    price = _remember_price(led)
    value = _floor_fen(_ep(qty) * price)
    consumer.ep -= qty
    led.supply -= qty  # burned; the pool is unchanged, so the price rises
    led.burned += qty
    consumer.goods += value
    consumer.quota -= min(consumer.quota, value)


def _op_convert(led: Ledger, cmd: dict[str, Any]) -> None:
    consumer, qty = _points_of_consumer(led, cmd)
    stable = _floor_fen(_ep(qty) * _price(led))
    consumer.ep -= qty
    led.treasury += qty  # still circulating: supply unchanged
    consumer.sp += stable
    led.sp_outstanding += stable
    consumer.quota -= min(consumer.quota, stable)


def _op_merchant_redeem(led: Ledger, cmd: dict[str, Any]) -> None:
    merchant = _merchant(led, cmd["merchant"])
    _not_frozen(merchant)
    amount = _parse_money(cmd["amount"])
    if merchant.sp < amount:
        raise CommandRejectedError("insufficient_stable")
    price = _price(led)
    qty = _floor_units(_cny(amount) / price)
    if qty == 0:
        raise CommandRejectedError(INVALID_AMOUNT)
    from_treasury = min(qty, led.treasury)
    minted = qty - from_treasury
    if minted > led.params.total_issuance - led.issued:
        raise CommandRejectedError("issuance_exhausted")
    funding = _ceil_fen(_ep(minted) * price)  # the platform backs new EP so P does not fall
    led.treasury -= from_treasury
    led.supply += minted
    led.issued += minted
    led.pool += funding
    led.mint_funding += funding
    merchant.ep += qty
    merchant.sp -= amount
    led.sp_outstanding -= amount


# --------------------------------------------------------------------------------------------
# Vesting and parameters
# --------------------------------------------------------------------------------------------


def _op_grant_stable(led: Ledger, cmd: dict[str, Any]) -> None:
    consumer = _consumer(led, cmd["user"])
    amount = _parse_money(cmd["amount"])
    days = cmd["days"]
    if not _is_json_int(days) or not 1 <= days <= MAX_GRANT_DAYS:
        raise CommandRejectedError(INVALID_AMOUNT)
    consumer.locked_sp += amount
    led.vestings.append(Vesting(user=cmd["user"], total=amount, days=days))


def _op_set_params(led: Ledger, cmd: dict[str, Any]) -> None:
    changes = cmd["params"]
    if not isinstance(changes, dict) or "initial_price" in changes:
        raise CommandRejectedError(
            INVALID_PARAMS
        )  # initial_price is fixed after start (decisions.md 12)
    merged = {**led.raw_params, **changes}
    try:
        params = _parse_params(merged)
    except ValueError:
        raise CommandRejectedError(INVALID_PARAMS) from None
    if params.total_issuance < led.issued:
        raise CommandRejectedError(INVALID_PARAMS)
    led.raw_params = merged
    led.params = params


# --------------------------------------------------------------------------------------------
# Settlement (SPEC §4 settle_day)
# --------------------------------------------------------------------------------------------


def _water_fill(fund: int, weights: dict[str, int], caps: dict[str, int]) -> dict[str, int]:
    """SPEC §4 water-filling, literally: recompute shares each round, drop all capped at once."""
    paid: dict[str, int] = {}
    active = dict(weights)
    remaining = Fraction(fund)
    while active:
        total_weight = sum(active.values())
        shares = {uid: remaining * w / total_weight for uid, w in active.items()}
        capped = [uid for uid, share in shares.items() if share >= caps[uid]]
        if not capped:
            for uid, share in shares.items():
                paid[uid] = math.floor(share)
            break
        for uid in capped:
            paid[uid] = caps[uid]
            remaining -= caps[uid]
            del active[uid]
    return paid


def _pay_dividends(led: Ledger, fund: int, weights: dict[str, int]) -> int:
    """Water-fill ``fund`` over ``weights`` with quotas as caps, credit as SP; return paid."""
    caps = {uid: led.consumers[uid].quota for uid in weights}
    total = 0
    for uid, paid in _water_fill(fund, weights, caps).items():
        consumer = led.consumers[uid]
        consumer.sp += paid
        consumer.quota -= paid
        consumer.dividends += paid
        led.sp_outstanding += paid
        led.dividends_paid += paid
        total += paid
    return total


def _pay_level_fund(led: Ledger, fund: int) -> int:
    """Split the level fund into L equal parts, level j shared by everyone at level >= j."""
    levels = len(led.params.level_thresholds)
    if levels == 0:
        return 0  # no parts: all of F2 is leftover (decisions.md 14)
    part = fund // levels
    paid = 0
    for j in range(1, levels + 1):
        # Quotas as reduced so far; EP not required (decisions.md 23).
        eligible = {
            uid: 1 for uid, c in sorted(led.consumers.items()) if c.level >= j and c.quota > 0
        }
        paid += _pay_dividends(led, part, eligible)
    return paid


def _dispose_leftover(led: Ledger, leftover: int) -> None:
    mode = led.params.dividend_remainder
    led.carry = leftover if mode == "carry" else 0
    if mode == "pool":
        led.pool += leftover
        led.leftover_to_pool += leftover
    elif mode == "platform":
        led.leftover_to_platform += leftover


def _release_vestings(led: Ledger) -> None:
    """One release per grant, in the order the grants were applied (decisions.md 21)."""
    for vesting in led.vestings:
        vesting.released += 1
        per_day = vesting.total // vesting.days
        if vesting.released == vesting.days:
            amount = vesting.total - per_day * (vesting.days - 1)  # the last takes the rest
        else:
            amount = per_day
        consumer = led.consumers[vesting.user]
        consumer.locked_sp -= amount
        consumer.sp += amount
        led.sp_outstanding += amount
    led.vestings = [v for v in led.vestings if v.released < v.days]


def _op_settle_day(led: Ledger, cmd: dict[str, Any]) -> None:
    del cmd  # settle_day has no fields
    net = _cny(led.day_sales)
    holding_fund = _floor_fen(net * led.params.dividend_rate) + led.carry
    holders = {uid: c.ep for uid, c in sorted(led.consumers.items()) if c.quota > 0 and c.ep > 0}
    paid = _pay_dividends(led, holding_fund, holders)
    level_fund = _floor_fen(net * led.params.level_dividend_rate)
    paid += _pay_level_fund(led, level_fund)
    led.dividend_funds += holding_fund - led.carry + level_fund  # fresh money set aside today
    _dispose_leftover(led, holding_fund + level_fund - paid)
    _release_vestings(led)
    led.withdrawn_today.clear()  # SPEC §9: after step 5
    led.day_sales = 0
    led.day += 1


# --------------------------------------------------------------------------------------------
# Withdrawals (SPEC §9)
# --------------------------------------------------------------------------------------------


def _seller(led: Ledger, cmd: dict[str, Any]) -> tuple[str, Account]:
    """The one account named by user / merchant / agent (checked in _check_shape)."""
    if "user" in cmd:
        return cmd["user"], _consumer(led, cmd["user"])
    if "merchant" in cmd:
        return cmd["merchant"], _merchant(led, cmd["merchant"])
    return cmd["agent"], _agent(led, cmd["agent"])


def _op_withdraw(led: Ledger, cmd: dict[str, Any]) -> None:
    withdrawal_id: str = cmd["id"]
    if withdrawal_id in led.withdrawals:
        raise CommandRejectedError("duplicate_withdrawal")
    account_id, account = _seller(led, cmd)
    _not_frozen(account)
    amount = _parse_money(cmd["amount"])
    params = led.params
    if amount < params.withdraw_min:
        raise CommandRejectedError("below_minimum")
    if amount > account.cash:
        raise CommandRejectedError("insufficient_cash")
    today = led.withdrawn_today.get(account_id, 0)
    if today + amount > params.withdraw_daily_max:
        raise CommandRejectedError("over_daily_limit")
    account.cash -= amount
    account.withdrawing += amount  # cash_owed unchanged: still owed until paid
    led.withdrawn_today[account_id] = today + amount
    status = "approved" if amount <= params.withdraw_review_above else "requested"
    led.withdrawals[withdrawal_id] = Withdrawal(account=account_id, amount=amount, status=status)


def _withdrawal(led: Ledger, cmd: dict[str, Any], allowed: tuple[str, ...]) -> Withdrawal:
    found = led.withdrawals.get(cmd["id"])
    if found is None:
        raise CommandRejectedError("unknown_withdrawal")
    if found.status not in allowed:
        raise CommandRejectedError("invalid_state")
    return found


def _withdrawal_account(led: Ledger, withdrawal: Withdrawal) -> Account:
    account = _any_account(led, withdrawal.account)
    assert account is not None  # accounts are never removed
    return account


def _op_approve_withdrawal(led: Ledger, cmd: dict[str, Any]) -> None:
    _withdrawal(led, cmd, ("requested",)).status = "approved"


def _give_back(led: Ledger, withdrawal: Withdrawal, status: str) -> None:
    """Rejected or failed: the money is withdrawable again (cash_owed unchanged)."""
    account = _withdrawal_account(led, withdrawal)
    account.withdrawing -= withdrawal.amount
    account.cash += withdrawal.amount
    withdrawal.status = status


def _op_reject_withdrawal(led: Ledger, cmd: dict[str, Any]) -> None:
    _give_back(led, _withdrawal(led, cmd, ("requested", "approved")), "rejected")


def _op_fail_withdrawal(led: Ledger, cmd: dict[str, Any]) -> None:
    _give_back(led, _withdrawal(led, cmd, ("approved",)), "failed")


def _op_complete_withdrawal(led: Ledger, cmd: dict[str, Any]) -> None:
    withdrawal = _withdrawal(led, cmd, ("approved",))
    account = _withdrawal_account(led, withdrawal)
    account.withdrawing -= withdrawal.amount
    account.withdrawn += withdrawal.amount
    led.cash_owed -= withdrawal.amount
    led.withdrawn += withdrawal.amount
    withdrawal.status = "paid"
    withdrawal.reference = cmd["reference"]


# --------------------------------------------------------------------------------------------
# Regional agents (SPEC §10)
# --------------------------------------------------------------------------------------------


def _op_register_agent(led: Ledger, cmd: dict[str, Any]) -> None:
    agent_id: str = cmd["agent"]
    if _any_account(led, agent_id) is not None:
        raise CommandRejectedError("duplicate_account")
    region: str = cmd["region"]
    if _region_agent(led, region) is not None:
        raise CommandRejectedError("region_taken")
    until = cmd.get("until")
    led.agents[agent_id] = Agent(region=region, until=None if until is None else int(until))


def _op_end_agent(led: Ledger, cmd: dict[str, Any]) -> None:
    agent = _agent(led, cmd["agent"])
    if agent.ended:
        raise CommandRejectedError("invalid_state")
    agent.ended = True  # its cash stays withdrawable


# --------------------------------------------------------------------------------------------
# Digital collectibles (SPEC §11)
# --------------------------------------------------------------------------------------------


def _op_issue_collection(led: Ledger, cmd: dict[str, Any]) -> None:
    collection_id: str = cmd["collection"]
    if collection_id in led.collections:
        raise CommandRejectedError("duplicate_collection")
    value = _parse_money(cmd["value"])
    led.collections[collection_id] = Collection(edition=int(cmd["edition"]), value=value)


def _op_claim_collectible(led: Ledger, cmd: dict[str, Any]) -> None:
    consumer = _consumer(led, cmd["user"])
    _not_frozen(consumer)
    collection = led.collections.get(cmd["collection"])
    if collection is None:
        raise CommandRejectedError("unknown_collection")
    if collection.claimed >= collection.edition:
        raise CommandRejectedError("sold_out")
    price = _price(led)
    qty = math.ceil(_cny(collection.value) / price * UNITS_PER_EP)  # rounding favours the pool
    if consumer.ep < qty:
        raise CommandRejectedError("insufficient_points")
    _remember_price(led)  # the burn may empty the supply
    consumer.ep -= qty
    led.supply -= qty  # burned, the pool unchanged (as for redeem)
    led.burned += qty
    consumer.quota -= min(consumer.quota, collection.value)
    consumer.goods += collection.value
    collection.claimed += 1
    item_id = f"{cmd['collection']}#{collection.claimed}"
    led.items[item_id] = Item(owner=cmd["user"], acquired_day=led.day)


def _held_item(led: Ledger, item_id: str, holder: str) -> Item:
    item = led.items.get(item_id)
    if item is None:
        raise CommandRejectedError("unknown_item")
    if item.owner != holder:
        raise CommandRejectedError("not_owner")
    return item


def _op_gift_collectible(led: Ledger, cmd: dict[str, Any]) -> None:
    item = _held_item(led, cmd["item"], cmd["from"])
    giver = led.consumers[cmd["from"]]  # owners are consumers
    receiver = _consumer(led, cmd["to"])
    _not_frozen(giver, receiver)
    if item.used:
        raise CommandRejectedError("already_used")
    if led.day < item.acquired_day + led.params.collectible_lock_days:
        raise CommandRejectedError("locked")
    item.owner = cmd["to"]
    item.acquired_day = led.day
    item.gifts += 1


def _op_use_collectible(led: Ledger, cmd: dict[str, Any]) -> None:
    item = _held_item(led, cmd["item"], cmd["user"])
    _not_frozen(led.consumers[cmd["user"]])
    if item.used:
        raise CommandRejectedError("already_used")
    item.used = True


# --------------------------------------------------------------------------------------------
# After every applied command (SPEC §5)
# --------------------------------------------------------------------------------------------


def _update_levels(led: Ledger) -> None:
    for consumer in led.consumers.values():
        reached = sum(1 for t in led.params.level_thresholds if t <= consumer.ep)
        consumer.level = max(consumer.level, reached)  # levels only rise


def _next_exit(led: Ledger) -> str | None:
    """Linear scan: the consumer due to exit with the smallest quota/ep, ties by id."""
    price = _price(led)
    best: tuple[Fraction, str] | None = None
    for uid, consumer in led.consumers.items():
        if consumer.ep > 0 and _ep(consumer.ep) * price >= _cny(consumer.quota):
            key = (Fraction(consumer.quota, consumer.ep), uid)
            if best is None or key < best:
                best = key
    return None if best is None else best[1]


def _run_forced_exits(led: Ledger) -> None:
    if not led.params.exit_enabled:
        return
    while (uid := _next_exit(led)) is not None:
        consumer = led.consumers[uid]
        _sell(led, consumer, consumer.ep)  # each exit raises P; rescan from scratch
        consumer.quota = 0
        consumer.exited = True
        led.exits += 1


# --------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------

HANDLERS: dict[str, Callable[[Ledger, dict[str, Any]], None]] = {
    "register": _op_register,
    "register_merchant": _op_register_merchant,
    "order": _op_order,
    "sell": _op_sell,
    "redeem": _op_redeem,
    "convert": _op_convert,
    "merchant_redeem": _op_merchant_redeem,
    "refund": _op_refund,
    "grant_stable": _op_grant_stable,
    "set_params": _op_set_params,
    "settle_day": _op_settle_day,
    "withdraw": _op_withdraw,
    "approve_withdrawal": _op_approve_withdrawal,
    "reject_withdrawal": _op_reject_withdrawal,
    "complete_withdrawal": _op_complete_withdrawal,
    "fail_withdrawal": _op_fail_withdrawal,
    "freeze": _op_freeze,
    "unfreeze": _op_unfreeze,
    "register_agent": _op_register_agent,
    "end_agent": _op_end_agent,
    "issue_collection": _op_issue_collection,
    "claim_collectible": _op_claim_collectible,
    "gift_collectible": _op_gift_collectible,
    "use_collectible": _op_use_collectible,
}


def _apply_line(led: Ledger, line: str) -> None:
    """Apply one command line completely, or raise CommandRejectedError having changed nothing."""
    op, cmd = _check_shape(_decode_line(line))
    HANDLERS[op](led, cmd)
    _update_levels(led)
    _run_forced_exits(led)


def _is_blank(line: str) -> bool:
    return line.strip(JSON_WHITESPACE) == ""


def run_reference(lines: list[str], params_overrides: dict[str, Any] | None = None) -> Ledger:
    """Replay the lines and return the full ledger (internal totals included)."""
    if any("\x00" in line for line in lines):
        raise ValueError("binary garbage: input contains a NUL byte")  # decisions.md 26
    led = _new_ledger(params_overrides)
    for number, line in enumerate(lines, start=1):  # physical 1-based lines (decisions.md 25)
        if _is_blank(line):
            continue
        try:
            _apply_line(led, line)
        except CommandRejectedError as rejected:
            led.errors.append((number, rejected.code))
    return led


# --------------------------------------------------------------------------------------------
# Invariants (SPEC §6)
# --------------------------------------------------------------------------------------------


def _all_accounts(led: Ledger) -> dict[str, Account]:
    return {**led.consumers, **led.merchants, **led.agents}


def _balance_problems(led: Ledger) -> list[str]:
    problems: list[str] = []
    if led.pool < 0:
        problems.append(f"pool is negative: {led.pool}")
    for name in ("supply", "issued", "burned", "treasury", "sp_outstanding", "carry"):
        if getattr(led, name) < 0:
            problems.append(f"{name} is negative")
    for account_id, account in _all_accounts(led).items():
        for name in ("ep", "sp", "locked_sp", "quota", "cash", "withdrawing", "withdrawn"):
            if getattr(account, name, 0) < 0:
                problems.append(f"{account_id}.{name} is negative")
    return problems


def _point_problems(led: Ledger) -> list[str]:
    problems: list[str] = []
    held = sum(c.ep for c in led.consumers.values()) + sum(m.ep for m in led.merchants.values())
    if led.supply != held + led.treasury:
        problems.append("supply != sum of ep + treasury")
    if led.issued != led.supply + led.burned:
        problems.append("issued != supply + burned")
    if led.issued > led.params.total_issuance:
        problems.append("issued > total_issuance")
    sp = sum(c.sp for c in led.consumers.values()) + sum(m.sp for m in led.merchants.values())
    if led.sp_outstanding != sp:
        problems.append("sp_outstanding != sum of sp")
    return problems


def _money_problems(led: Ledger) -> list[str]:
    problems: list[str] = []
    cash_out = sum(c.cash_out for c in led.consumers.values())
    cash_out += sum(m.cash_out for m in led.merchants.values())
    expected_pool = (
        led.contributions
        + led.mint_funding
        - cash_out
        - led.refund_withdrawals
        + led.leftover_to_pool
    )
    if led.pool != expected_pool:
        problems.append(f"money conservation: pool {led.pool} != {expected_pool}")
    spent = led.dividends_paid + led.carry + led.leftover_to_pool + led.leftover_to_platform
    if spent != led.dividend_funds:
        problems.append("dividends paid + leftovers != dividend funds set aside")
    return problems


def _cash_problems(led: Ledger) -> list[str]:
    """SPEC §6 [v2]: what each account was credited is cash + withdrawing + withdrawn."""
    problems: list[str] = []
    pending: dict[str, int] = {}
    for withdrawal in led.withdrawals.values():
        if withdrawal.status in ("requested", "approved"):
            pending[withdrawal.account] = pending.get(withdrawal.account, 0) + withdrawal.amount
    accounts = _all_accounts(led)
    for account_id, account in accounts.items():
        credited = account.commissions if isinstance(account, Agent) else account.cash_out
        if credited != account.cash + account.withdrawing + account.withdrawn:
            problems.append(f"{account_id}: credited != cash + withdrawing + withdrawn")
        if account.withdrawing != pending.get(account_id, 0):
            problems.append(f"{account_id}: withdrawing != its open withdrawals")
    if led.cash_owed != sum(a.cash + a.withdrawing for a in accounts.values()):
        problems.append("cash_owed != sum of cash + withdrawing")
    if led.withdrawn != sum(a.withdrawn for a in accounts.values()):
        problems.append("withdrawn != sum of withdrawn")
    if led.agent_commissions != sum(a.commissions for a in led.agents.values()):
        problems.append("agent_commissions != sum of commissions")
    if any(w.account not in accounts for w in led.withdrawals.values()):
        problems.append("a withdrawal names no account")
    return problems


def _collectible_problems(led: Ledger) -> list[str]:
    problems: list[str] = []
    for collection_id, collection in led.collections.items():
        if not 0 <= collection.claimed <= collection.edition:
            problems.append(f"collection {collection_id}: claimed outside 0..edition")
        serials = {f"{collection_id}#{n}" for n in range(1, collection.claimed + 1)}
        if any(item_id not in led.items for item_id in serials):
            problems.append(f"collection {collection_id}: a claimed item is missing")
    for item_id, item in led.items.items():
        if item.owner not in led.consumers:
            problems.append(f"item {item_id}: owner is not a consumer")
        collection_id, _, serial = item_id.rpartition("#")
        claimed = led.collections[collection_id].claimed if collection_id in led.collections else 0
        if not 1 <= int(serial) <= claimed:
            problems.append(f"item {item_id}: not a claimed serial of its collection")
    return problems


def check_invariants(led: Ledger, previous_price: Fraction | None = None) -> list[str]:
    """Every SPEC §6 invariant that one state can show; an empty list when all hold.

    ``previous_price`` (the price before the last command) adds "P never decreases".
    "An item is used at most once" holds by construction (``used`` is a flag that
    use_collectible refuses to set twice).
    """
    problems = _balance_problems(led)
    problems += _point_problems(led)
    problems += _money_problems(led)
    problems += _cash_problems(led)
    problems += _collectible_problems(led)
    if previous_price is not None and _price(led) < previous_price:
        problems.append(f"price fell from {previous_price} to {_price(led)}")
    return problems


def replay_with_invariants(
    lines: list[str], params_overrides: dict[str, Any] | None = None
) -> tuple[Ledger, list[tuple[int, str]]]:
    """Replay like ``run_reference``, checking every invariant after every line."""
    led = _new_ledger(params_overrides)
    problems: list[tuple[int, str]] = [(0, p) for p in check_invariants(led)]
    for number, line in enumerate(lines, start=1):
        if _is_blank(line):
            continue
        before = _price(led)
        try:
            _apply_line(led, line)
        except CommandRejectedError as rejected:
            led.errors.append((number, rejected.code))
        problems += [(number, p) for p in check_invariants(led, before)]
    return led, problems


# --------------------------------------------------------------------------------------------
# Canonical state (SPEC §7)
# --------------------------------------------------------------------------------------------


def _fixed(scaled: int, places: int) -> str:
    """An integer count of 10**-places printed with exactly ``places`` decimals."""
    sign = "-" if scaled < 0 else ""  # never expected; printed honestly if it happens
    whole, frac = divmod(abs(scaled), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}"


def _money(fen: int) -> str:
    return _fixed(fen, MONEY_PLACES)


def _points(units: int) -> str:
    return _fixed(units, EP_PLACES)


def _price_text(price: Fraction) -> str:
    return _fixed(math.floor(price * UNITS_PER_EP + Fraction(1, 2)), EP_PLACES)  # half-up


def _money_fields(account: Account) -> dict[str, Any]:
    """The four SPEC v2 fields every account prints."""
    return {
        "cash": _money(account.cash),
        "withdrawing": _money(account.withdrawing),
        "withdrawn": _money(account.withdrawn),
        "frozen": account.frozen,
    }


def _user_state_v1(consumer: Consumer) -> dict[str, Any]:
    return {
        "ep": _points(consumer.ep),
        "sp": _money(consumer.sp),
        "locked_sp": _money(consumer.locked_sp),
        "quota": _money(consumer.quota),
        "level": consumer.level,
        "cash_out": _money(consumer.cash_out),
        "goods": _money(consumer.goods),
        "dividends": _money(consumer.dividends),
        "exited": consumer.exited,
    }


def _merchant_state_v1(merchant: Merchant) -> dict[str, Any]:
    return {
        "ep": _points(merchant.ep),
        "sp": _money(merchant.sp),
        "cash_out": _money(merchant.cash_out),
    }


def _agent_state(agent: Agent) -> dict[str, Any]:
    return {
        "region": agent.region,
        "until": agent.until,
        "ended": agent.ended,
        "commissions": _money(agent.commissions),
        **_money_fields(agent),
    }


def _withdrawal_state(withdrawal: Withdrawal) -> dict[str, Any]:
    return {
        "account": withdrawal.account,
        "amount": _money(withdrawal.amount),
        "status": withdrawal.status,
        "reference": withdrawal.reference,
    }


def _collection_state(collection: Collection) -> dict[str, Any]:
    return {
        "edition": collection.edition,
        "value": _money(collection.value),
        "claimed": collection.claimed,
    }


def _item_state(item: Item) -> dict[str, Any]:
    return {
        "owner": item.owner,
        "acquired_day": item.acquired_day,
        "gifts": item.gifts,
        "used": item.used,
    }


def _sorted_value(obj: Any) -> Any:
    if isinstance(obj, dict):
        return _sorted_keys(obj)
    if isinstance(obj, list):
        return [_sorted_value(entry) for entry in obj]
    return obj


def _sorted_keys(obj: dict[str, Any]) -> dict[str, Any]:
    """Every object's keys sorted by code point, recursively (Python str order is code point)."""
    return {key: _sorted_value(obj[key]) for key in sorted(obj)}


def canonical_state_v1(led: Ledger) -> dict[str, Any]:
    """The SPEC v1 §7 state object (the tests/golden/*.expected-v1.json files)."""
    return _sorted_keys(
        {
            "price": _price_text(_price(led)),
            "pool": _money(led.pool),
            "supply": _points(led.supply),
            "issued": _points(led.issued),
            "burned": _points(led.burned),
            "treasury": _points(led.treasury),
            "unissued": _points(led.params.total_issuance - led.issued),
            "day": led.day,
            "day_sales": _money(led.day_sales),
            "carry": _money(led.carry),
            "sp_outstanding": _money(led.sp_outstanding),
            "sales": _money(led.sales),
            "refunds": _money(led.refunds),
            "contributions": _money(led.contributions),
            "dividends_paid": _money(led.dividends_paid),
            "mint_funding": _money(led.mint_funding),
            "exits": led.exits,
            "users": {uid: _user_state_v1(c) for uid, c in led.consumers.items()},
            "merchants": {mid: _merchant_state_v1(m) for mid, m in led.merchants.items()},
            "errors": [{"line": number, "code": code} for number, code in led.errors],
        }
    )


def canonical_state(led: Ledger) -> dict[str, Any]:
    """The SPEC v2 §7 canonical state: every object's keys sorted, every map sorted by id.

    ``canonical_json`` gives the exact bytes of the golden files.
    """
    state = canonical_state_v1(led)
    state.update(
        {
            "cash_owed": _money(led.cash_owed),
            "withdrawn": _money(led.withdrawn),
            "agent_commissions": _money(led.agent_commissions),
            "agents": {aid: _agent_state(a) for aid, a in led.agents.items()},
            "withdrawals": {wid: _withdrawal_state(w) for wid, w in led.withdrawals.items()},
            "collections": {cid: _collection_state(c) for cid, c in led.collections.items()},
            "items": {iid: _item_state(i) for iid, i in led.items.items()},
        }
    )
    for uid, consumer in led.consumers.items():
        state["users"][uid].update(_money_fields(consumer))
    for mid, merchant in led.merchants.items():
        state["merchants"][mid].update(_money_fields(merchant))
    return _sorted_keys(state)


def canonical_json(state: dict[str, Any]) -> str:
    """The golden files' bytes (decisions.md 29): indent 1, sorted keys, ASCII, a newline."""
    return json.dumps(state, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def replay_reference(
    lines: list[str], params_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Replay scenario lines and return the canonical state of SPEC §7.

    Raises ValueError for invalid ``params_overrides`` (and for a NUL byte in the input, which
    the CLI treats as binary garbage with exit status 2).
    """
    return canonical_state(run_reference(lines, params_overrides))
