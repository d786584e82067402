"""Read models of the ledger (tokenmall.ledger.projections): each account's statement and the
daily price history, written by the writer in the same transaction as the journal entries.

The oracle is independent of the projector: a plain Engine replays the journaled commands and,
after each one, every account's balances are compared with those before it. Every account whose
balances changed (including one forced out, 出局, that the command did not name) must get exactly
one line at that entry, holding its balances after it; no other line may exist. Each settle_day
must give one price day holding the state right after it.

Tests that touch a store run on SQLite and PostgreSQL (the `db_url` fixture), except the two
Hypothesis properties (the shared command strategy, and a mostly valid economy with referrals,
refunds and forced exits), which run on SQLite only to stay fast; the fixed scenarios and a
600-command stream with cascading exits run the same checks on both backends.
"""

import itertools
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import SETUP, commands, param_overrides
from tests.support import day_totals
from tests.support.day_totals import DayReference
from tests.support.workload import MixGenerator
from tokenmall.core.accounts import AGENT_FIELDS, CONSUMER_FIELDS, MERCHANT_FIELDS
from tokenmall.core.canonical import canonical_state
from tokenmall.core.engine import Engine
from tokenmall.core.params import Params
from tokenmall.core.units import format_fen
from tokenmall.ledger import ledger as ledger_module
from tokenmall.ledger.audit import verify
from tokenmall.ledger.ledger import IDEMPOTENCY_CONFLICT, Ledger, Result, Settings, Submission
from tokenmall.ledger.projections import (
    DAY_SUMS,
    DayTotals,
    PriceDayRow,
    balances_of,
    decode_balances,
    format_balances,
    format_changes,
)
from tokenmall.ledger.store import MIGRATIONS, Store, resolve_url
from tokenmall.ledger.views import open_reader
from tokenmall.services import queries as reads

Command = dict[str, Any]
Balances = tuple[int, ...]
LineKey = tuple[str, int]  # (account, seq)
Line = tuple[str, str]  # (op, balances text)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SCENARIO_PARAMS = Params().with_overrides(
    {"referral_rates": ["0.10", "0.05"], "level_thresholds": ["20", "30"]}
)


# -- the oracle -------------------------------------------------------------------------------


def account_balances(engine: Engine, account: str) -> Balances:
    """The stored field order (CONSUMER_FIELDS / MERCHANT_FIELDS), read through the account
    objects rather than through the projector."""
    consumer = engine.consumers.get(account)
    if consumer is not None:
        return (
            consumer.ep,
            consumer.sp,
            consumer.locked_sp,
            consumer.quota,
            consumer.level,
            consumer.cash_out,
            consumer.goods,
            consumer.dividends,
            int(consumer.exited),
            consumer.cash,
            consumer.withdrawing,
            consumer.withdrawn,
            int(consumer.frozen),
        )
    merchant = engine.merchants.get(account)
    if merchant is not None:
        return (
            merchant.ep,
            merchant.sp,
            merchant.cash_out,
            merchant.cash,
            merchant.withdrawing,
            merchant.withdrawn,
            int(merchant.frozen),
        )
    agent = engine.agents[account]
    return (
        agent.commissions,
        agent.cash,
        agent.withdrawing,
        agent.withdrawn,
        int(agent.frozen),
        int(agent.ended),
    )


def every_balance(engine: Engine) -> dict[str, Balances]:
    names = [*engine.consumers, *engine.merchants, *engine.agents]
    return {name: account_balances(engine, name) for name in names}


def encode(balances: Balances) -> str:
    return ",".join(str(value) for value in balances)


@dataclass
class Expected:
    """What the read models must hold after `journaled` (entry i+1 is journaled[i])."""

    engine: Engine
    lines: dict[LineKey, Line] = field(default_factory=dict)
    days: list[PriceDayRow] = field(default_factory=list)
    outcomes: dict[int, str] = field(default_factory=dict)
    states: list[dict[str, Balances]] = field(default_factory=list)  # after each entry
    # The day totals of the whole journal (all of it is of one day, or the rows add up to it)
    totals: DayTotals = field(default_factory=lambda: DayTotals("all"))
    reference: DayReference | None = None


def expected_read_models(journaled: Sequence[Command], params: Params) -> Expected:
    engine = Engine(params)
    expected = Expected(engine, reference=DayReference(engine))
    assert expected.reference is not None
    previous = every_balance(engine)
    for seq, command in enumerate(journaled, start=1):
        day, day_sales, dividends_paid = engine.day, engine.day_sales, engine.dividends_paid
        code = expected.reference.apply(command, seq, expected.totals)
        expected.outcomes[seq] = "ok" if code is None else str(code)
        current = every_balance(engine)
        if code is not None:
            assert current == previous  # a rejected command changes nothing
        for account, balances in current.items():
            if previous.get(account) != balances:
                expected.lines[(account, seq)] = (str(command["op"]), encode(balances))
        if code is None and command.get("op") == "settle_day":
            state = canonical_state(engine, [])
            expected.days.append(
                PriceDayRow(
                    day,
                    seq,
                    state["price"],
                    state["pool"],
                    state["supply"],
                    format_fen(day_sales),
                    format_fen(engine.dividends_paid - dividends_paid),
                    state["cash_owed"],
                    state["sp_outstanding"],
                    engine.exits,
                )
            )
        expected.states.append(current)
        previous = current
    return expected


# -- reading what the writer stored ------------------------------------------------------------


class Tables(NamedTuple):
    lines: dict[LineKey, Line]
    days: list[PriceDayRow]
    projected_seq: int
    head_seq: int
    outcomes: dict[int, str]
    totals: DayTotals  # the day_totals rows added up (their seq ranges checked to abut)


def same_totals(tables: Tables, expected: Expected) -> bool:
    assert expected.reference is not None
    return day_totals.same_totals(tables.totals, expected.totals, expected.reference)


@contextmanager
def reader(url: str) -> Iterator[Store]:
    store = open_reader(resolve_url(url))
    try:
        yield store
    finally:
        store.close()


def unstored(account: str) -> str:
    """The inverse of projections.stored_account."""
    return re.sub(r"\\(.)", lambda match: "\x00" if match[1] == "0" else match[1], account)


def read_tables(url: str, page: int = 3) -> Tables:
    """Every statement line as the store gives it out (dividend lines derived from the
    settlements' blocks), read in pages of `page` lines, so that every page boundary is
    crossed: the balances before a page are folded from the blocks too."""
    with reader(url) as store, store.reading() as connection:
        accounts = connection.execute(
            sa.text("SELECT DISTINCT account FROM statement_lines")
        ).scalars()
        line_rows: list[tuple[str, int, str, str]] = []
        for stored in accounts:
            account, after = unstored(str(stored)), 0
            while True:
                _, got = Store.statement(connection, account, after, page)
                line_rows.extend((stored, seq, op, text) for seq, _, _, op, text in got)
                if len(got) < page:
                    break
                after = got[-1][0]
        day_rows = connection.execute(
            sa.text(
                "SELECT day, seq, price, pool, supply, sales, dividends, cash_owed, "
                "sp_outstanding, exits FROM price_days ORDER BY day"
            )
        ).all()
        outcome_rows = connection.execute(sa.text("SELECT seq, outcome FROM journal")).all()
        day_rows_totals = connection.execute(sa.text("SELECT day FROM day_totals ORDER BY day"))
        per_day = [Store.day_totals(connection, str(day)) for (day,) in day_rows_totals]
        projected = Store.projected_seq(connection)
        head_seq, _ = Store.head(connection)
    lines: dict[LineKey, Line] = {}
    for account, seq, op, balances in line_rows:
        key = (str(account), int(seq))
        assert key not in lines
        lines[key] = (str(op), str(balances))
    days = [
        PriceDayRow._make([int(row[0]), int(row[1]), *map(str, row[2:9]), int(row[9])])
        for row in day_rows
    ]
    outcomes = {int(seq): str(outcome) for seq, outcome in outcome_rows}
    totals = DayTotals("all")
    for row in per_day:
        assert row.first_seq == (1 if totals.last_seq is None else totals.last_seq + 1)
        totals.first_seq = 1
        totals.last_seq = row.last_seq
        for name in DAY_SUMS:
            setattr(totals, name, getattr(totals, name) + getattr(row, name))
    return Tables(lines, days, projected, head_seq, outcomes, totals)


def statement_page(store: Store, account: str, after_seq: int, limit: int) -> dict[str, Any]:
    page = reads.statement(store, account, after_seq, limit)
    assert page is not None, f"no statement for {account}"
    return page


def lines_by_seq(lines: dict[LineKey, Line]) -> dict[int, list[str]]:
    """{seq: sorted accounts with a line at it}."""
    out: dict[int, list[str]] = {}
    for account, seq in sorted(lines, key=lambda key: (key[1], key[0])):
        out.setdefault(seq, []).append(account)
    return out


def account_lines(lines: dict[LineKey, Line], account: str) -> list[tuple[int, str, str]]:
    return sorted((seq, op, text) for (name, seq), (op, text) in lines.items() if name == account)


def check_statement_properties(tables: Tables, engine: Engine) -> None:
    """The properties a statement must have whatever the rules: the last line of every account
    is its balances now; each later line differs from the one before it; seqs strictly increase
    and name accepted entries; the read models cover the whole journal."""
    assert tables.projected_seq == tables.head_seq
    accounts = {account for account, _ in tables.lines}
    assert accounts == {*engine.consumers, *engine.merchants, *engine.agents}
    for account in accounts:
        lines = account_lines(tables.lines, account)
        seqs = [seq for seq, _, _ in lines]
        assert seqs == sorted(set(seqs))
        assert all(tables.outcomes[seq] == "ok" for seq in seqs)
        assert lines[0][1] in ("register", "register_merchant", "register_agent")  # its opening
        texts = [text for _, _, text in lines]
        assert all(before != after for before, after in itertools.pairwise(texts))
        last = decode_balances(texts[-1])
        current = balances_of(engine, account)
        assert current is not None
        assert tuple(last.values()) == current == account_balances(engine, account)
        fields: tuple[str, ...] = (
            CONSUMER_FIELDS if account in engine.consumers else MERCHANT_FIELDS
        )
        fields = AGENT_FIELDS if account in engine.agents else fields
        assert tuple(last) == fields


# -- running commands --------------------------------------------------------------------------


class StepClock:
    """A clock that moves one second each time the writer reads it (once per batch)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def execute_in_batches(
    ledger: Ledger, commands_: Sequence[Command], sizes: Sequence[int]
) -> list[Result]:
    start, batch, results = 0, 0, []
    while start < len(commands_):
        size = sizes[batch % len(sizes)]
        chunk = commands_[start : start + size]
        results += ledger.execute([Submission.of(command) for command in chunk])
        start, batch = start + size, batch + 1
    return results


def order(order_id: str, user: str, amount: str, **extra: str) -> Command:
    return {"op": "order", "id": order_id, "user": user, "amount": amount, **extra}


SETTLE: Command = {"op": "settle_day"}
SCENARIO: list[Command] = [
    {"op": "register", "user": "alice"},  # 1
    {"op": "register", "user": "bob", "referrer": "alice"},  # 2
    {"op": "register", "user": "carol", "referrer": "bob"},  # 3
    {"op": "register", "user": "dave"},  # 4
    {"op": "register", "user": "erin"},  # 5
    {"op": "register_merchant", "merchant": "shop"},  # 6
    order("o1", "alice", "100.00"),  # 7: alice 21 EP, quota 200, level 1
    order("o2", "bob", "100.00"),  # 8: bob 14.7 EP; alice +2.1 EP (referrer)
    {"op": "set_params", "params": {"quota_multiple": "0.25"}},  # 9: changes no account
    order("o3", "dave", "100.00"),  # 10: dave 13.23 EP, quota 25.00
    {"op": "set_params", "params": {"quota_multiple": "2"}},  # 11
    # 12: the price rises to 2.1123: dave's 13.23 EP are worth 27.9 >= 25.00: he is forced out
    order("o4", "erin", "300.00"),
    order("o5", "carol", "50.00"),  # 13: carol; bob and alice as referrers
    {"op": "refund", "order": "o5"},  # 14: takes the EP back from carol, bob and alice
    {"op": "sell", "user": "carol", "points": "1"},  # 15: insufficient_points
    {"op": "grant_stable", "user": "carol", "amount": "10.01", "days": 2},  # 16
    SETTLE,  # 17 (day 0): dividends to alice, bob, erin; carol's first release
    order("o6", "bob", "5.00", pay="stable", merchant="shop"),  # 18: bob and shop only
    {"op": "merchant_redeem", "merchant": "shop", "amount": "5.00"},  # 19
    SETTLE,  # 20 (day 1): carol's last release, nothing else changes
    SETTLE,  # 21 (day 2): no account changes
]
SCENARIO_LINES = {
    1: ["alice"],
    2: ["bob"],
    3: ["carol"],
    4: ["dave"],
    5: ["erin"],
    6: ["shop"],
    7: ["alice"],
    8: ["alice", "bob"],
    10: ["dave"],
    12: ["dave", "erin"],
    13: ["alice", "bob", "carol"],
    14: ["alice", "bob", "carol"],
    16: ["carol"],
    17: ["alice", "bob", "carol", "erin"],
    18: ["bob", "shop"],
    19: ["shop"],
    20: ["carol"],
}
SCENARIO_SIZES = [1, 4, 2, 7, 3]


def run_scenario(url: str, extra: Sequence[Command] = ()) -> tuple[Expected, list[Result]]:
    stream = [*SCENARIO, *extra]
    with Ledger.open(url, Settings(clock=StepClock()), SCENARIO_PARAMS) as ledger:
        results = execute_in_batches(ledger, stream, SCENARIO_SIZES)
        assert ledger.head_seq == len(stream)
    return expected_read_models(stream, SCENARIO_PARAMS), results


# A mostly valid economy: every consumer active from the start (so orders grant referrers EP),
# refunds of orders that exist, a low quota multiple now and then (forced exits, some of
# consumers the command does not name), vesting, merchants, and a few commands of any kind.
ECON_USERS = ["u0", "u1", "u2", "u3", "u4", "u5"]
ECON_SETUP: list[Command] = [
    {"op": "register", "user": "u0"},
    {"op": "register", "user": "u1", "referrer": "u0"},
    {"op": "register", "user": "u2", "referrer": "u1"},
    {"op": "register", "user": "u3", "referrer": "u2"},
    {"op": "register", "user": "u4", "referrer": "u0"},
    {"op": "register", "user": "u5"},
    {"op": "register_merchant", "merchant": "m0"},
    {"op": "register_merchant", "merchant": "m1"},
    # everyone active (quota > 0) from the start, so that orders grant referrers EP
    *(
        {"op": "order", "id": f"w{i}", "user": user, "amount": f"{40 + 30 * i}.00"}
        for i, user in enumerate(["u0", "u1", "u2", "u3", "u4", "u5"])
    ),
]
_user = st.sampled_from(ECON_USERS)
_merchant = st.sampled_from(["m0", "m1"])
_money = st.integers(100, 50_000).map(lambda fen: f"{fen // 100}.{fen % 100:02d}")
_points = st.sampled_from(["0.5", "1", "3", "10", "all"])
# ("order", ...) steps get their ids from their position; ("refund", n) refunds an earlier order
_step = st.one_of(
    st.tuples(st.just("order"), _user, _money),
    st.tuples(st.just("order"), _user, _money),
    st.tuples(st.just("order"), _user, _money),
    st.tuples(st.just("stable"), _user, _merchant, st.sampled_from(["1.00", "5.00", "20.00"])),
    st.tuples(st.just("refund"), st.integers(0, 30)),
    st.tuples(st.just("sell"), _user, _points),
    st.tuples(st.just("sell_merchant"), _merchant, _points),
    st.tuples(st.just("redeem"), _user, _points),
    st.tuples(st.just("convert"), _user, _points),
    st.tuples(st.just("merchant_redeem"), _merchant, st.sampled_from(["1.00", "5.00"])),
    st.tuples(st.just("grant_stable"), _user, _money, st.integers(1, 3)),
    st.tuples(st.just("quota"), st.sampled_from(["0.3", "0.5", "1", "2"])),
    st.tuples(st.just("settle_day")),
    st.tuples(st.just("settle_day")),
    st.tuples(st.just("any"), commands),
)


def _command(step: tuple[Any, ...], orders: list[str]) -> Command:
    kind, *rest = step
    if kind == "order":
        orders.append(f"o{len(orders)}")
        return {"op": "order", "id": orders[-1], "user": rest[0], "amount": rest[1]}
    if kind == "stable":
        orders.append(f"o{len(orders)}")
        user, merchant, amount = rest
        return {
            "op": "order",
            "id": orders[-1],
            "user": user,
            "amount": amount,
            "pay": "stable",
            "merchant": merchant,
        }
    if kind == "refund":
        return {"op": "refund", "order": orders[-1 - rest[0] % len(orders)] if orders else "none"}
    if kind in ("sell", "redeem", "convert"):
        return {"op": kind, "user": rest[0], "points": rest[1]}
    if kind == "sell_merchant":
        return {"op": "sell", "merchant": rest[0], "points": rest[1]}
    if kind == "merchant_redeem":
        return {"op": kind, "merchant": rest[0], "amount": rest[1]}
    if kind == "grant_stable":
        return {"op": kind, "user": rest[0], "amount": rest[1], "days": rest[2]}
    if kind == "quota":
        return {"op": "set_params", "params": {"quota_multiple": rest[0]}}
    if kind == "settle_day":
        return {"op": "settle_day"}
    command: Command = rest[0]
    return command


def _economy_commands(steps: list[tuple[Any, ...]]) -> list[Command]:
    orders: list[str] = []
    return [_command(step, orders) for step in steps]


economy = st.lists(_step, min_size=10, max_size=40).map(_economy_commands)


# -- 1. property: random commands in uneven batches --------------------------------------------


KEYS = ["k0", "k1", "k2"]


@settings(max_examples=30, deadline=None)
@given(
    overrides=param_overrides,
    keyed=st.lists(
        st.tuples(commands, st.one_of(st.none(), st.none(), st.sampled_from(KEYS))), max_size=35
    ),
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=5),
    snapshot_every=st.integers(1, 20),
)
def test_random_batches_give_exactly_the_changed_accounts(
    tmp_path_factory: pytest.TempPathFactory,
    overrides: dict[str, Any],
    keyed: list[tuple[Command, str | None]],
    sizes: list[int],
    snapshot_every: int,
) -> None:
    """SQLite only (speed): the scenarios below run the same checks on both backends."""
    # referral grants on unless the example sets its own rates: more accounts per order
    params = Params().with_overrides({"referral_rates": ["0.10", "0.05"], **overrides})
    url = f"sqlite:///{tmp_path_factory.mktemp('statements') / 'ledger.db'}"
    stream: list[tuple[Command, str | None]] = [(command, None) for command in SETUP] + keyed
    # a key's first command is journaled; a later one with it is replayed or refused
    journaled: list[Command] = []
    keys_seen: set[str] = set()
    for command, key in stream:
        if key is not None and key in keys_seen:
            continue
        journaled.append(command)
        if key is not None:
            keys_seen.add(key)
    expected = expected_read_models(journaled, params)

    with Ledger.open(url, Settings(snapshot_every=snapshot_every), params) as ledger:
        start, batch = 0, 0
        while start < len(stream):
            chunk = stream[start : start + sizes[batch % len(sizes)]]
            ledger.execute([Submission.of(command, key) for command, key in chunk])
            start, batch = start + len(chunk), batch + 1
            with ledger.store.reading() as connection:
                assert Store.projected_seq(connection) == ledger.head_seq
        engine = ledger.engine
        tables = read_tables(url)
        check_statement_properties(tables, engine)
    assert tables.head_seq == len(journaled)
    assert tables.outcomes == expected.outcomes
    assert tables.lines == expected.lines
    assert tables.days == expected.days
    assert same_totals(tables, expected)


@settings(max_examples=25, deadline=None)
@given(
    stream=economy,
    quota_multiple=st.sampled_from(["0.3", "0.5", "1", "2"]),
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=5),
)
def test_random_economy_gives_exactly_the_changed_accounts(
    tmp_path_factory: pytest.TempPathFactory,
    stream: list[Command],
    quota_multiple: str,
    sizes: list[int],
) -> None:
    """SQLite only (speed), like the property above."""
    params = Params().with_overrides(
        {
            "referral_rates": ["0.10", "0.05"],
            "quota_multiple": quota_multiple,
            "level_thresholds": ["5", "20", "60"],
        }
    )
    url = f"sqlite:///{tmp_path_factory.mktemp('economy') / 'ledger.db'}"
    journaled = [*ECON_SETUP, *stream]
    with Ledger.open(url, Settings(snapshot_every=10), params) as ledger:
        execute_in_batches(ledger, journaled, sizes)
        tables = read_tables(url)
        check_statement_properties(tables, ledger.engine)
    expected = expected_read_models(journaled, params)
    assert tables.outcomes == expected.outcomes
    assert tables.lines == expected.lines
    assert tables.days == expected.days
    assert same_totals(tables, expected)


# -- 2. a scenario with every kind of change ---------------------------------------------------


def test_scenario_lines_name_exactly_the_changed_accounts(db_url: str) -> None:
    expected, results = run_scenario(db_url)
    assert [result.outcome for result in results] == [
        "insufficient_points" if seq == 15 else "ok" for seq in range(1, 22)
    ]
    tables = read_tables(db_url)
    assert lines_by_seq(tables.lines) == SCENARIO_LINES
    assert lines_by_seq(expected.lines) == SCENARIO_LINES  # the oracle agrees with the comments
    assert tables.lines == expected.lines
    with Ledger.open(db_url) as ledger:
        check_statement_properties(tables, ledger.engine)
    ops = {seq: op for (_, seq), (op, _) in tables.lines.items()}
    assert ops == {seq: str(SCENARIO[seq - 1]["op"]) for seq in SCENARIO_LINES}

    def balances(account: str, seq: int) -> dict[str, int]:
        return decode_balances(tables.lines[(account, seq)][1])

    # the registration line: all zero
    assert balances("dave", 4) == dict.fromkeys(CONSUMER_FIELDS, 0)
    assert balances("shop", 6) == dict.fromkeys(MERCHANT_FIELDS, 0)
    # dave, forced out by erin's order, which did not name him
    assert balances("dave", 10) == {
        **dict.fromkeys(CONSUMER_FIELDS, 0),
        "ep": 1_323_000_000,
        "quota": 2_500,
    }
    assert balances("dave", 12) == {
        **dict.fromkeys(CONSUMER_FIELDS, 0),
        "cash_out": 2_470,
        "cash": 2_470,  # owed to him until he withdraws it (SPEC v2)
        "exited": 1,
    }
    # the refund takes the referrers' EP back: alice and bob hold what they held at entry 8
    for account in ("alice", "bob"):
        assert balances(account, 14) == balances(account, 8)
    assert balances("carol", 14) == dict.fromkeys(CONSUMER_FIELDS, 0)
    # vesting: carol, who gets no dividends, is released 5.00 then the remaining 5.01
    assert (balances("carol", 16)["sp"], balances("carol", 16)["locked_sp"]) == (0, 1_001)
    assert (balances("carol", 17)["sp"], balances("carol", 17)["locked_sp"]) == (500, 501)
    assert (balances("carol", 20)["sp"], balances("carol", 20)["locked_sp"]) == (1_001, 0)
    # levels: alice reaches level 1 with her first order, erin level 2
    assert balances("alice", 7)["level"] == 1
    assert balances("erin", 12)["level"] == 2
    # the SP order and the merchant's redemption
    shop_zero = dict.fromkeys(MERCHANT_FIELDS, 0)
    assert balances("shop", 18) == {**shop_zero, "sp": 500}
    assert balances("shop", 19) == {**shop_zero, "ep": 233_577_964}
    assert balances("bob", 18)["sp"] == balances("bob", 17)["sp"] - 500


def test_statement_changes_and_recorded_at(db_url: str) -> None:
    run_scenario(db_url)
    with reader(db_url) as store:
        dave = statement_page(store, "dave", 0, reads.PAGE_MAX)
        shop = statement_page(store, "shop", 0, reads.PAGE_MAX)
        nobody = reads.statement(store, "nobody", 0, 10)
        with store.reading() as connection:
            rows = connection.execute(sa.text("SELECT seq, recorded_at FROM journal")).all()
    recorded = {int(seq): str(at) for seq, at in rows}
    assert dave["account"] == "dave" and dave["kind"] == "consumer"
    assert dave["next_after"] is None
    assert [(line["seq"], line["op"]) for line in dave["lines"]] == [
        (4, "register"),
        (10, "order"),
        (12, "order"),
    ]
    opening, bought, forced_out = dave["lines"]
    assert opening["changes"] == {}
    assert opening["balances"] == {
        "ep": "0.00000000",
        "sp": "0.00",
        "locked_sp": "0.00",
        "quota": "0.00",
        "level": 0,
        "cash_out": "0.00",
        "goods": "0.00",
        "dividends": "0.00",
        "exited": False,
        "cash": "0.00",
        "withdrawing": "0.00",
        "withdrawn": "0.00",
        "frozen": False,
    }
    assert bought["changes"] == {"ep": "+13.23000000", "quota": "+25.00"}
    assert forced_out["changes"] == {
        "ep": "-13.23000000",
        "quota": "-25.00",
        "cash_out": "+24.70",
        "exited": True,
        "cash": "+24.70",
    }
    assert forced_out["balances"]["exited"] is True
    assert forced_out["balances"]["cash_out"] == "24.70"
    assert [line["changes"] for line in shop["lines"]] == [
        {},
        {"sp": "+5.00"},
        {"ep": "+2.33577964", "sp": "-5.00"},
    ]
    assert shop["lines"][-1]["balances"] == {
        "ep": "2.33577964",
        "sp": "0.00",
        "cash_out": "0.00",
        "cash": "0.00",
        "withdrawing": "0.00",
        "withdrawn": "0.00",
        "frozen": False,
    }
    for line in dave["lines"] + shop["lines"]:
        assert line["recorded_at"] == recorded[line["seq"]]
    # one clock tick for the ledger's creation, then one per batch (1, 4, 2, 7, 3 commands):
    # seq 12 is in the 4th batch
    assert dave["lines"][2]["recorded_at"] == "2025-03-01T12:00:05.000000Z"
    assert nobody is None  # no such account


# -- 3. pagination -----------------------------------------------------------------------------


def test_statement_pages_concatenate_to_one_page(db_url: str) -> None:
    run_scenario(db_url)
    kinds = {"alice": "consumer", "bob": "consumer", "carol": "consumer", "shop": "merchant"}
    with reader(db_url) as store:
        for account, kind in kinds.items():
            whole = statement_page(store, account, 0, reads.PAGE_MAX)
            assert (whole["account"], whole["kind"]) == (account, kind)
            assert whole["next_after"] is None
            count = len(whole["lines"])
            for size in range(1, count + 2):
                pages, after = [], 0
                for _ in range(count + 2):  # bounded: a page adds at least one line
                    page = statement_page(store, account, after, size)
                    assert len(page["lines"]) <= size
                    pages.append(page)
                    if page["next_after"] is None:
                        break
                    assert page["next_after"] == page["lines"][-1]["seq"]
                    after = page["next_after"]
                assert pages[-1]["next_after"] is None
                assert all(len(page["lines"]) == size for page in pages[:-1])
                # a full last page is followed by an empty one that ends the statement
                assert len(pages[-1]["lines"]) == (0 if count % size == 0 else count % size)
                assert [line for page in pages for line in page["lines"]] == whole["lines"]

        # a later page's first change is against the line before it, not against zero
        second = statement_page(store, "alice", 7, 2)
        assert [line["seq"] for line in second["lines"]] == [8, 13]
        assert second["next_after"] == 13
        assert second["lines"][0]["changes"] == {"ep": "+2.10000000"}
        after_8 = decode_balances("2310000000,0,0,20000,1,0,0,0,0,0,0,0,0")
        assert second["lines"][0]["changes"] != format_changes({}, after_8)
        # `after` between two of the account's lines: the line before it is at or below it
        middle = statement_page(store, "alice", 10, 1)
        assert [line["seq"] for line in middle["lines"]] == [13]
        assert middle["lines"][0]["changes"] == {"ep": "+0.35505956"}
        # past the end
        assert statement_page(store, "alice", 21, 5)["lines"] == []


# -- 4. price history --------------------------------------------------------------------------


def test_price_days_hold_the_state_right_after_each_settlement(db_url: str) -> None:
    prices: dict[int, tuple[str, str, str]] = {}
    with Ledger.open(db_url, Settings(), SCENARIO_PARAMS) as ledger:
        for command in SCENARIO:  # one at a time: the engine right after each settle
            ledger.execute([Submission.of(command)])
            if command["op"] == "settle_day":
                today = reads.today(ledger.engine)
                prices[ledger.head_seq] = (today["price"], today["pool"], today["supply"])
        final_today = reads.today(ledger.engine)
    expected = expected_read_models(SCENARIO, SCENARIO_PARAMS)
    assert (
        read_tables(db_url).days
        == expected.days
        == [
            # what was owed right after each: dave's exit paid to cash (24.70); SP of the
            # dividends and carol's first release (184.99), then +5.01 released, -5.00
            # redeemed by the shop
            PriceDayRow(
                0,
                17,
                "2.14061289",
                "157.38",
                "73.52100000",
                "600.00",
                "179.99",
                "24.70",
                "184.99",
                1,
            ),
            PriceDayRow(
                1, 20, "2.14061289", "162.38", "75.85677964", "0.00", "0.00", "24.70", "185.00", 1
            ),
            PriceDayRow(
                2, 21, "2.14061289", "162.38", "75.85677964", "0.00", "0.00", "24.70", "185.00", 1
            ),
        ]
    )
    assert {day.seq: (day.price, day.pool, day.supply) for day in expected.days} == prices
    assert final_today == {
        "day": 3,
        "price": "2.14061289",
        "pool": "162.38",
        "supply": "75.85677964",
        "sales": "0.00",
    }


def test_price_history_pages(db_url: str) -> None:
    stream = [SETTLE, order("x1", "alice", "10.00"), SETTLE, SETTLE, SETTLE]
    expected, _ = run_scenario(db_url, stream)
    assert [day.day for day in expected.days] == list(range(7))
    # the market's fields only: what the platform owes is the console's (decision 126)
    assert "cash_owed" not in reads.PUBLIC_DAY_FIELDS
    rows = [{name: getattr(day, name) for name in reads.PUBLIC_DAY_FIELDS} for day in expected.days]
    with reader(db_url) as store:
        whole = reads.price_history(store, -1, reads.PAGE_MAX)
        assert whole == {"days": rows, "next_after_day": None}
        for size in range(1, len(rows) + 2):
            days, after = [], -1
            for _ in range(len(rows) + 2):
                page = reads.price_history(store, after, size)
                days += page["days"]
                if page["next_after_day"] is None:
                    break
                assert page["next_after_day"] == page["days"][-1]["day"]
                after = page["next_after_day"]
            assert days == rows
        assert reads.price_history(store, 4, 10)["days"] == rows[5:]
        assert reads.price_history(store, 6, 10) == {"days": [], "next_after_day": None}
    # days 0-2 are the scenario's; day 4 settled the one order of 10.00 after it
    assert [row["sales"] for row in rows[3:]] == ["0.00", "10.00", "0.00", "0.00"]
    assert [row["seq"] for row in rows[3:]] == [22, 24, 25, 26]


# -- 5. backfill of a ledger made before the read models -----------------------------------------


def long_stream() -> list[Command]:
    """The scenario, then a mix of 600 commands at a low quota multiple: many forced exits,
    most of them of consumers whom the command that set them off did not name."""
    low_quota: Command = {"op": "set_params", "params": {"quota_multiple": "0.5"}}
    return [*SCENARIO, low_quota, *MixGenerator(60, seed=7, settle_every=40).commands(600)]


def forced_out_unnamed(stream: Sequence[Command], expected: Expected) -> int:
    """Lines of consumers forced out by a command that named someone else."""
    count = 0
    for (account, seq), (_, text) in expected.lines.items():
        command = stream[seq - 1]
        balances = decode_balances(text)
        if (
            command["op"] not in ("settle_day", "set_params")
            and account not in (command.get("user"), command.get("merchant"))
            and balances.get("exited") == 1
            and balances["ep"] == 0
            and expected.states[seq - 2][account][-1] == 0  # not exited before
        ):
            count += 1
    return count


def test_long_stream_with_cascading_exits(db_url: str) -> None:
    stream = long_stream()
    with Ledger.open(db_url, Settings(snapshot_every=97), SCENARIO_PARAMS) as ledger:
        execute_in_batches(ledger, stream, [3, 40, 1, 17, 64])
        tables = read_tables(db_url)
        check_statement_properties(tables, ledger.engine)
    expected = expected_read_models(stream, SCENARIO_PARAMS)
    assert forced_out_unnamed(stream, expected) >= 20
    assert tables.outcomes == expected.outcomes
    assert tables.lines == expected.lines
    assert tables.days == expected.days
    assert same_totals(tables, expected)
    assert len(tables.days) == sum(command["op"] == "settle_day" for command in stream)


def test_backfill_rebuilds_the_tables_the_writer_wrote(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = long_stream()
    with Ledger.open(db_url, Settings(snapshot_every=50), SCENARIO_PARAMS) as ledger:
        execute_in_batches(ledger, stream, [3, 40, 1, 17, 64])
    live = read_tables(db_url)
    expected = expected_read_models(stream, SCENARIO_PARAMS)
    assert live.lines == expected.lines
    assert live.days == expected.days
    assert same_totals(live, expected)
    assert live.projected_seq == live.head_seq == len(stream)

    def forget_read_models() -> None:
        with reader(db_url) as store, store.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM statement_lines"))
            connection.execute(sa.text("DELETE FROM price_days"))
            connection.execute(sa.text("UPDATE ledger_head SET projected_seq = 0"))

    forget_read_models()
    emptied = read_tables(db_url)
    assert (emptied.lines, emptied.days, emptied.projected_seq) == ({}, [], 0)
    with Ledger.open(db_url) as ledger:
        assert ledger.head_seq == len(stream)
    assert read_tables(db_url) == live

    # in chunks of 7 entries (each its own commit), and from a fill left half done
    monkeypatch.setattr(ledger_module, "PROJECT_CHUNK_ENTRIES", 7)
    forget_read_models()
    with Ledger.open(db_url):
        pass
    assert read_tables(db_url) == live
    with reader(db_url) as store, store.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM statement_lines WHERE seq > 100"))
        connection.execute(sa.text("DELETE FROM price_days WHERE seq > 100"))
        connection.execute(sa.text("UPDATE ledger_head SET projected_seq = 100"))
    with Ledger.open(db_url) as ledger:
        # and the writer goes on from there
        more = [order("late", "alice", "20.00"), SETTLE]
        execute_in_batches(ledger, more, [2])
    after = read_tables(db_url)
    everything = expected_read_models([*stream, *more], SCENARIO_PARAMS)
    assert after.lines == everything.lines
    assert after.days == everything.days
    assert same_totals(after, everything)
    assert after.projected_seq == after.head_seq == len(stream) + 2
    with reader(db_url) as store:
        report = verify(store)
    assert report.ok, report.problem
    assert report.entries == len(stream) + 2


def test_a_ledger_migrated_from_revision_0002_is_backfilled(db_url: str) -> None:
    stream = long_stream()[:120]
    with Ledger.open(db_url, Settings(snapshot_every=25), SCENARIO_PARAMS) as ledger:
        execute_in_batches(ledger, stream, [9, 2, 30])
    live = read_tables(db_url)
    # really take the ledger back to the schema before the read models
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with reader(db_url) as store, store.engine.begin() as connection:
        config.attributes["connection"] = connection
        alembic_command.downgrade(config, "0002")
    store = Store(resolve_url(db_url), create=False)
    try:
        tables = set(sa.inspect(store.engine).get_table_names())
        with store.engine.connect() as connection:
            head_columns = connection.execute(sa.text("SELECT * FROM ledger_head")).keys()
    finally:
        store.close()
    assert "journal" in tables
    assert not tables & {"statement_lines", "price_days"}
    assert "projected_seq" not in head_columns
    with Ledger.open(db_url) as ledger:  # migrates to 0003, then fills the new tables
        assert ledger.head_seq == len(stream)
    assert read_tables(db_url) == live
    with reader(db_url) as store:
        assert verify(store).ok


# -- 6. rejected commands and replays add no lines ---------------------------------------------


def test_rejected_commands_and_replays_add_no_lines(db_url: str) -> None:
    keyed_order = order("k-o1", "alice", "30.00")
    with Ledger.open(db_url, Settings(), SCENARIO_PARAMS) as ledger:
        execute_in_batches(ledger, SCENARIO, [5])
        before = read_tables(db_url)
        first = ledger.execute(
            [
                Submission.of(keyed_order, "key-1"),
                Submission.of({"op": "sell", "user": "dave", "points": "all"}),  # holds no EP
                Submission.of({"op": "refund", "order": "o1"}),  # a day has passed
                Submission.of({"op": "bogus"}),
                Submission.of(keyed_order, "key-1"),  # replayed within the batch
                Submission.of(order("other", "bob", "1.00"), "key-1"),  # conflict
                Submission.of({"op": "grant_stable", "user": "ghost", "amount": "1", "days": 1}),
            ]
        )
        assert [(r.seq, r.outcome, r.replayed) for r in first] == [
            (22, "ok", False),
            (23, "invalid_amount", False),
            (24, "refund_window_closed", False),
            (25, "unknown_op", False),
            (22, "ok", True),
            (None, IDEMPOTENCY_CONFLICT, False),
            (26, "unknown_user", False),
        ]
        middle = read_tables(db_url)
        added = {key: line for key, line in middle.lines.items() if key not in before.lines}
        assert lines_by_seq(added) == {22: ["alice"]}  # alice has no referrer
        assert middle.projected_seq == middle.head_seq == 26
        # a batch of replays and a conflict only: no entry, no line, the head stays
        again = ledger.execute(
            [Submission.of(keyed_order, "key-1"), Submission.of(SETTLE, "key-1")]
        )
        assert [(r.seq, r.outcome, r.replayed) for r in again] == [
            (22, "ok", True),
            (None, IDEMPOTENCY_CONFLICT, False),
        ]
        assert ledger.head_seq == 26
    assert read_tables(db_url) == middle
    journaled = [
        *SCENARIO,
        keyed_order,
        {"op": "sell", "user": "dave", "points": "all"},
        {"op": "refund", "order": "o1"},
        {"op": "bogus"},
        {"op": "grant_stable", "user": "ghost", "amount": "1", "days": 1},
    ]
    expected = expected_read_models(journaled, SCENARIO_PARAMS)
    assert middle.lines == expected.lines
    assert middle.outcomes == expected.outcomes


# -- the pure helpers ----------------------------------------------------------------------------


def test_format_balances_and_changes() -> None:
    consumer = decode_balances("2100000000,150,0,20000,1,0,7,150,0,0,0,0,0")
    assert consumer == {
        "ep": 2_100_000_000,
        "sp": 150,
        "locked_sp": 0,
        "quota": 20_000,
        "level": 1,
        "cash_out": 0,
        "goods": 7,
        "dividends": 150,
        "exited": 0,
        "cash": 0,
        "withdrawing": 0,
        "withdrawn": 0,
        "frozen": 0,
    }
    assert format_balances(consumer) == {
        "ep": "21.00000000",
        "sp": "1.50",
        "locked_sp": "0.00",
        "quota": "200.00",
        "level": 1,
        "cash_out": "0.00",
        "goods": "0.07",
        "dividends": "1.50",
        "exited": False,
        "cash": "0.00",
        "withdrawing": "0.00",
        "withdrawn": "0.00",
        "frozen": False,
    }
    out = decode_balances("0,150,0,0,3,2470,7,150,1,2470,0,0,1")
    assert format_changes(consumer, out) == {
        "ep": "-21.00000000",
        "quota": "-200.00",
        "level": 2,
        "cash_out": "+24.70",
        "exited": True,
        "cash": "+24.70",
        "frozen": True,
    }
    assert format_changes(out, out) == {}
    merchant = decode_balances("5,500,0,0,0,0,0")
    assert merchant == {**dict.fromkeys(MERCHANT_FIELDS, 0), "ep": 5, "sp": 500}
    agent = decode_balances("700,200,500,0,0,1")
    assert agent == {
        "commissions": 700,
        "cash": 200,
        "withdrawing": 500,
        "withdrawn": 0,
        "frozen": 0,
        "ended": 1,
    }
    assert format_changes({}, agent) == {
        "commissions": "+7.00",
        "cash": "+2.00",
        "withdrawing": "+5.00",
        "ended": True,
    }
    assert format_changes({}, merchant) == {"ep": "+0.00000005", "sp": "+5.00"}
    # Decimal differences of the formatted balances are the formatted changes
    before, after = format_balances(consumer), format_balances(out)
    assert Decimal(after["cash_out"]) - Decimal(before["cash_out"]) == Decimal("24.70")


def test_an_id_with_a_nul_character_from_spec_v1_gets_a_statement(db_url: str) -> None:
    """SPEC v1 took any string of 1-64 characters as an id, so a ledger journaled then may
    hold a NUL (the journal stores it JSON-escaped, "\\u0000"); PostgreSQL text cannot hold
    NUL, so the statement table escapes it. SPEC v2 refuses such an id."""
    odd = "a\x00b"
    with Ledger.open(db_url) as ledger:
        ledger.engine.rules_v1 = True  # as the build before SPEC v2 applied commands
        results = ledger.execute(
            [
                Submission.of({"op": "register", "user": "plain"}),
                Submission.of({"op": "register", "user": odd, "referrer": "plain"}),
                Submission.of(order("o1", odd, "10.00")),
            ]
        )
        assert [result.outcome for result in results] == ["ok", "ok", "ok"]
        head = ledger.head_seq
    with reader(db_url) as store, store.engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE ledger_meta SET spec_v2_from = {head + 1}"))
    with Ledger.open(db_url) as ledger:  # replays those entries as SPEC v1 checked them
        refused = ledger.execute([Submission.of({"op": "register", "user": "b\x00c"})])
        assert [result.outcome for result in refused] == ["invalid_command"]
    with reader(db_url) as store:
        page = statement_page(store, odd, 0, 10)
        assert verify(store).ok
    assert [(line["seq"], line["op"]) for line in page["lines"]] == [(2, "register"), (3, "order")]


def test_pages_after_the_largest_seq_are_empty(db_url: str) -> None:
    run_scenario(db_url)
    with reader(db_url) as store:
        assert reads.price_history(store, 2**63, 10) == {"days": [], "next_after_day": None}
        page = statement_page(store, "alice", 2**63, 10)
    assert (page["lines"], page["next_after"]) == ([], None)


def test_a_deferred_ingest_is_caught_up_by_the_next_writer(tmp_path: Path) -> None:
    """`ingest --defer-read-models` writes no lines and leaves projected_seq behind; the next
    writer without it fills in exactly what a normal ingest writes."""
    scenario = tmp_path / "stream.jsonl"
    scenario.write_text("".join(json.dumps(command) + "\n" for command in long_stream()))

    def ingest(db: Path, *flags: str) -> None:
        command = [sys.executable, "-m", "tokenmall.cli", "ingest", str(scenario), "--db", str(db)]
        done = subprocess.run([*command, *flags], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr

    ingest(tmp_path / "normal.db")
    ingest(tmp_path / "deferred.db", "--defer-read-models")
    normal, deferred = (
        read_tables(str(tmp_path / "normal.db")),
        read_tables(str(tmp_path / "deferred.db")),
    )
    assert normal.projected_seq == normal.head_seq == deferred.head_seq
    assert deferred.lines == {} and deferred.days == [] and deferred.projected_seq == 0
    with Ledger.open(str(tmp_path / "deferred.db")):
        pass
    assert read_tables(str(tmp_path / "deferred.db")) == normal
