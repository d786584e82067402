"""Snapshots: the engine's complete state as a JSON-ready dict, and back.

The canonical state of SPEC §7 leaves out what the rules still need (order records for refunds
and duplicate ids, vesting schedules, the conservation totals, the last defined price), so the
durable ledger stores this instead, to start from a snapshot plus the journal tail rather than
the whole history. Restoring rebuilds derived structures (the exit queue) from the balances.
Integers stay JSON integers: Python reads them back exactly.
"""

from typing import Any

from tokenmall.core.accounts import Consumer, Merchant, Order, VestingGrant
from tokenmall.core.engine import TOTALS, Engine
from tokenmall.core.params import Params

SNAPSHOT_VERSION = 1
CONSUMER_FIELDS = [
    "ep",
    "quota",
    "sp",
    "dividends",
    "level",
    "locked_sp",
    "cash_out",
    "goods",
    "exited",
]


class SnapshotError(ValueError):
    """A snapshot that is not one this version of tokenmall wrote."""


def take_snapshot(engine: Engine) -> dict[str, Any]:
    if engine.touched:
        raise RuntimeError("snapshot taken in the middle of a command")
    return {
        "version": SNAPSHOT_VERSION,
        "params": engine.params.as_json(),
        "totals": {name: getattr(engine, name) for name in TOTALS},
        "last_price": list(engine.last_price),
        # In slot order: a consumer's slot is its position here.
        "consumers": [_consumer_row(consumer) for consumer in engine.book.owners],
        "merchants": [[m.id, m.ep, m.sp, m.cash_out] for m in engine.merchants.values()],
        "orders": [_order_row(order) for order in engine.orders.values()],
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


def _restore(data: dict[str, Any]) -> Engine:
    if data.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(f"snapshot version {data.get('version')!r} is not supported")
    params = Params().with_overrides(data["params"])
    engine = Engine(params)
    for name in TOTALS:
        setattr(engine, name, _int(data["totals"][name]))
    fen, units = data["last_price"]
    engine.last_price = (_int(fen), _int(units))
    for row in data["consumers"]:
        _restore_consumer(engine, row)
    for merchant_id, ep, sp, cash_out in data["merchants"]:
        engine.merchants[merchant_id] = Merchant(merchant_id, _int(ep), _int(sp), _int(cash_out))
    for row in data["orders"]:
        order = _order_from_row(row)
        engine.orders[order.id] = order
    engine.vesting = [
        VestingGrant(user, _int(per), _int(days), _int(locked))
        for user, per, days, locked in data["vesting"]
    ]
    owners = engine.book.owners
    engine.leveled = {slot: owners[slot] for slot in data["leveled"]}
    engine.exit_queue.rebuild()
    return engine


def _consumer_row(consumer: Consumer) -> list[Any]:
    return [consumer.id, consumer.referrer, *(getattr(consumer, f) for f in CONSUMER_FIELDS)]


def _restore_consumer(engine: Engine, row: list[Any]) -> None:
    consumer_id, referrer, ep, quota, sp, dividends, level, locked_sp, cash_out, goods, exited = row
    consumer = Consumer(consumer_id, referrer, engine.book)
    engine.consumers[consumer_id] = consumer
    book, slot = engine.book, consumer.slot
    book.ep[slot], book.quota[slot], book.sp[slot] = _int(ep), _int(quota), _int(sp)
    book.dividends[slot], book.level[slot] = _int(dividends), _int(level)
    consumer.locked_sp, consumer.cash_out, consumer.goods = (
        _int(locked_sp),
        _int(cash_out),
        _int(goods),
    )
    consumer.exited = bool(exited)


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
        order.refunded,
    ]


def _order_from_row(row: list[Any]) -> Order:
    order_id, user, amount, paid_cash, day, contribution, quota, buyer_units, grants, refunded = row
    return Order(
        order_id,
        user,
        _int(amount),
        bool(paid_cash),
        _int(day),
        _int(contribution),
        _int(quota),
        _int(buyer_units),
        tuple((referrer, _int(units)) for referrer, units in grants),
        bool(refunded),
    )


def _int(value: object) -> int:
    if type(value) is not int:
        raise SnapshotError(f"expected an integer, got {value!r}")
    return value
