"""Snapshots: the engine's complete state as a JSON-ready dict, and back.

The canonical state of SPEC §7 leaves out what the rules still need (order records for refunds
and duplicate ids, vesting schedules, the conservation totals, the last defined price), so the
durable ledger stores this instead, to start from a snapshot plus the journal tail rather than
the whole history. Restoring rebuilds derived structures (the exit queue) from the balances.
Integers stay JSON integers: Python reads them back exactly.
"""

from typing import Any

from tokenmall.core.accounts import (
    CONSUMER_FIELDS,
    MERCHANT_FIELDS,
    Agent,
    Collection,
    Consumer,
    Item,
    Merchant,
    Order,
    VestingGrant,
    Withdrawal,
)
from tokenmall.core.engine import Engine
from tokenmall.core.errors import ParamsError
from tokenmall.core.params import Params
from tokenmall.core.state import TOTALS
from tokenmall.core.units import Fen, Units

# Version 3 (SPEC v2) adds cash, withdrawals, frozen accounts, agents and collectibles.
# Version 2 stored a consumer's balances in CONSUMER_FIELDS' order of then; version 1 (before
# issue 11) had its own order, read back through V1_CONSUMER_FIELDS. Older versions are
# upgraded on reading (`upgraded`): a sale's payout was money paid, so its cash is owed now.
SNAPSHOT_VERSION = 3
_FLAGS = ("exited", "frozen", "ended")  # balance fields stored as JSON booleans
V1_CONSUMER_FIELDS = (
    "ep",
    "quota",
    "sp",
    "dividends",
    "level",
    "locked_sp",
    "cash_out",
    "goods",
    "exited",
)


class SnapshotError(ValueError):
    """A snapshot that is not one this version of tokenmall wrote."""


def take_snapshot(engine: Engine) -> dict[str, Any]:
    return {
        "version": SNAPSHOT_VERSION,
        "params": engine.params.as_json(),
        "totals": {name: getattr(engine, name) for name in TOTALS},
        "last_price": list(engine.last_price),
        # In slot order: a consumer's slot is its position here.
        "consumers": [_consumer_row(consumer) for consumer in engine.book.owners],
        "merchants": [
            [m.id, *_flagged(MERCHANT_FIELDS, m.balances())] for m in engine.merchants.values()
        ],
        "agents": [
            [
                a.id,
                a.region,
                a.until,
                a.ended,
                a.frozen,
                a.commissions,
                a.cash,
                a.withdrawing,
                a.withdrawn,
            ]
            for a in engine.agents.values()
        ],
        "withdrawals": [
            [w.id, w.account, w.amount_fen, w.status, w.reference]
            for w in engine.withdrawals.values()
        ],
        "withdrawn_today": [
            [account, fen] for account, fen in sorted(engine.withdrawn_today.items())
        ],
        "collections": [
            [c.id, c.edition, c.value_fen, c.claimed] for c in engine.collections.values()
        ],
        "items": [[i.id, i.owner, i.acquired_day, i.gifts, i.used] for i in engine.items.values()],
        "orders": [_order_row(order) for order in engine.orders.records(engine.day)],
        # Earlier days' orders: their ids, each with 1 if it was a cash order never refunded.
        "closed_orders": [[order_id, flag] for order_id, flag in engine.orders.closed_items()],
        "vesting": [
            [g.user, g.per_settlement_fen, g.days_left, g.locked_fen] for g in engine.vesting
        ],
        "leveled": list(engine.leveled),
    }


def restore_snapshot(data: dict[str, Any]) -> Engine:
    """An engine in exactly the state `take_snapshot` saw; SnapshotError if `data` is not one."""
    try:
        return _restore(data)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise SnapshotError(f"not a tokenmall snapshot: {error!r}") from None


def upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """A snapshot in the current version's form; SnapshotError for a version this tokenmall
    does not know."""
    version = data.get("version") if isinstance(data, dict) else None
    if version == SNAPSHOT_VERSION:
        return data
    if version == 2:
        return _v3_of_v2(data)
    if version != 1:
        raise SnapshotError(f"snapshot version {version!r} is not supported")
    return _v3_of_v2(_v2_of_v1(data))


def _v3_of_v2(data: dict[str, Any]) -> dict[str, Any]:
    """SPEC v2's fields added: each sale's payout (cash_out) is cash owed, nothing is being
    withdrawn or was withdrawn, nobody is frozen, and there are no agents or collectibles."""
    try:
        consumers = [
            [*row, row[2 + CONSUMER_FIELDS.index("cash_out")], 0, 0, False]
            for row in data["consumers"]
        ]
        merchants = [
            [merchant_id, ep, sp, cash_out, cash_out, 0, 0, False]
            for merchant_id, ep, sp, cash_out in data["merchants"]
        ]
        owed = sum(_int(row[-4]) for row in consumers) + sum(_int(row[4]) for row in merchants)
        orders = [[*row[:-1], [], row[-1]] for row in data["orders"]]
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise SnapshotError(f"not a tokenmall snapshot: {error!r}") from None
    totals = {**data["totals"], "cash_owed": owed, "withdrawn": 0, "agent_commissions": 0}
    try:  # the v2 parameters at their defaults, listed as a snapshot taken now lists them
        params = Params().with_overrides(data["params"]).as_json()
    except ParamsError as error:
        raise SnapshotError(f"the snapshot's parameters: {error}") from None
    return {
        **data,
        "version": SNAPSHOT_VERSION,
        "params": params,
        "totals": totals,
        "consumers": consumers,
        "merchants": merchants,
        "orders": orders,
        "agents": [],
        "withdrawals": [],
        "withdrawn_today": [],
        "collections": [],
        "items": [],
    }


def _v2_of_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version 1 snapshot's consumer rows reordered, its old orders as ids."""
    v2_fields = CONSUMER_FIELDS[: CONSUMER_FIELDS.index("exited") + 1]
    positions = [V1_CONSUMER_FIELDS.index(name) for name in v2_fields]
    try:
        consumers = [[*row[:2], *(row[2 + i] for i in positions)] for row in data["consumers"]]
        # Version 1 kept every order whole; an order of an earlier day is now its id only.
        today = data["totals"]["day"]
        orders = [row for row in data["orders"] if row[4] == today]
        closed = [row for row in data["orders"] if row[4] != today]
    except (KeyError, TypeError, IndexError) as error:
        raise SnapshotError(f"not a tokenmall snapshot: {error!r}") from None
    return {
        **data,
        "version": 2,
        "consumers": consumers,
        "orders": orders,
        # Listed as the order book lists them now: sorted by id (core/orders.py).
        "closed_orders": sorted(
            ([row[0], int(row[3] and not row[9])] for row in closed), key=_utf8_of_first
        ),
    }


def _utf8_of_first(row: list[Any]) -> bytes:
    return str(row[0]).encode("utf-8", "surrogatepass")


def _restore(data: dict[str, Any]) -> Engine:
    data = upgraded(data)
    params = Params().with_overrides(data["params"])
    engine = Engine(params)
    for name in TOTALS:
        setattr(engine, name, _int(data["totals"][name]))
    fen, units = data["last_price"]
    engine.last_price = (_fen(fen), _units(units))
    for row in data["consumers"]:
        _restore_consumer(engine, row)
    for merchant_id, ep, sp, cash_out, cash, withdrawing, withdrawn, frozen in data["merchants"]:
        engine.merchants[merchant_id] = Merchant(
            id=merchant_id,
            ep=_units(ep),
            sp=_fen(sp),
            cash_out=_fen(cash_out),
            cash=_fen(cash),
            withdrawing=_fen(withdrawing),
            withdrawn=_fen(withdrawn),
            frozen=bool(frozen),
        )
    for agent_id, region, until, ended, frozen, commissions, cash, withdrawing, withdrawn in data[
        "agents"
    ]:
        agent = Agent(
            id=_text(agent_id),
            region=_text(region),
            until=None if until is None else _int(until),
            ended=bool(ended),
            frozen=bool(frozen),
            commissions=_fen(commissions),
            cash=_fen(cash),
            withdrawing=_fen(withdrawing),
            withdrawn=_fen(withdrawn),
        )
        engine.agents[agent.id] = agent
        if not agent.ended:
            engine.region_agents[agent.region] = agent.id
    for withdrawal_id, account, amount, status, reference in data["withdrawals"]:
        engine.withdrawals[withdrawal_id] = Withdrawal(
            id=_text(withdrawal_id),
            account=_text(account),
            amount_fen=_fen(amount),
            status=_text(status),
            reference=None if reference is None else _text(reference),
        )
    engine.withdrawn_today = {_text(account): _fen(fen) for account, fen in data["withdrawn_today"]}
    for collection_id, edition, value, claimed in data["collections"]:
        engine.collections[collection_id] = Collection(
            id=_text(collection_id),
            edition=_int(edition),
            value_fen=_fen(value),
            claimed=_int(claimed),
        )
    for item_id, owner, acquired_day, gifts, used in data["items"]:
        engine.items[item_id] = Item(
            id=_text(item_id),
            owner=_text(owner),
            acquired_day=_int(acquired_day),
            gifts=_int(gifts),
            used=bool(used),
        )
    orders = engine.orders
    for row in data["orders"]:
        order = _order_from_row(row)
        if order.paid_cash:
            orders.add_cash(
                order.id,
                order.user,
                order.amount_fen,
                order.contribution_fen,
                order.quota_fen,
                order.buyer_units,
                order.referrer_grants,
                order.commissions,
            )
        else:
            orders.add_stable(order.id, order.user, order.amount_fen)
        if order.refunded:
            orders.mark_refunded(order.id)
    closed = data["closed_orders"]
    orders.add_closed([(_text(i), _int(flag)) for i, flag in closed])
    engine.vesting = [
        VestingGrant(
            user=user, per_settlement_fen=_fen(per), days_left=_int(days), locked_fen=_fen(locked)
        )
        for user, per, days, locked in data["vesting"]
    ]
    owners = engine.book.owners
    engine.leveled = {slot: owners[slot] for slot in data["leveled"]}
    engine.exit_queue.rebuild()
    return engine


def _consumer_row(consumer: Consumer) -> list[Any]:
    return [consumer.id, consumer.referrer, *_flagged(CONSUMER_FIELDS, consumer.balances())]


def _flagged(fields: tuple[str, ...], values: tuple[int, ...]) -> list[Any]:
    """Balances with the flags (exited, frozen) as JSON booleans."""
    return [bool(v) if f in _FLAGS else v for f, v in zip(fields, values, strict=True)]


def _restore_consumer(engine: Engine, row: list[Any]) -> None:
    consumer_id, referrer, *balances = row
    values = dict(zip(CONSUMER_FIELDS, balances, strict=True))
    consumer = Consumer(consumer_id=consumer_id, referrer=referrer, book=engine.book)
    engine.consumers[consumer_id] = consumer
    book, slot = engine.book, consumer.slot
    book.ep[slot], book.quota[slot] = _units(values["ep"]), _fen(values["quota"])
    book.sp[slot], book.dividends[slot] = _fen(values["sp"]), _fen(values["dividends"])
    book.level[slot] = _int(values["level"])
    consumer.locked_sp = _fen(values["locked_sp"])
    consumer.cash_out, consumer.goods = _fen(values["cash_out"]), _fen(values["goods"])
    consumer.exited = bool(values["exited"])
    consumer.cash, consumer.withdrawing = _fen(values["cash"]), _fen(values["withdrawing"])
    consumer.withdrawn = _fen(values["withdrawn"])
    consumer.frozen = bool(values["frozen"])


def _order_row(order: Order) -> list[Any]:
    return [
        order.id,
        order.user,
        order.amount_fen,
        order.paid_cash,
        order.day,
        order.contribution_fen,
        order.quota_fen,
        order.buyer_units,
        [list(grant) for grant in order.referrer_grants],
        [list(commission) for commission in order.commissions],
        order.refunded,
    ]


def _order_from_row(row: list[Any]) -> Order:
    (
        order_id,
        user,
        amount,
        paid_cash,
        day,
        contribution,
        quota,
        buyer_units,
        grants,
        commissions,
        refunded,
    ) = row
    return Order(
        id=order_id,
        user=user,
        amount_fen=_fen(amount),
        paid_cash=bool(paid_cash),
        day=_int(day),
        contribution_fen=_fen(contribution),
        quota_fen=_fen(quota),
        buyer_units=_units(buyer_units),
        referrer_grants=tuple((referrer, _units(units)) for referrer, units in grants),
        commissions=tuple((agent, _fen(fen)) for agent, fen in commissions),
        refunded=bool(refunded),
    )


def _text(value: object) -> str:
    if type(value) is not str:
        raise SnapshotError(f"expected a string, got {value!r}")
    return value


def _int(value: object) -> int:
    if type(value) is not int:
        raise SnapshotError(f"expected an integer, got {value!r}")
    return value


def _fen(value: object) -> Fen:
    return Fen(_int(value))


def _units(value: object) -> Units:
    return Units(_int(value))
