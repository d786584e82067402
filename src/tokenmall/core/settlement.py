"""The daily settlement (当天赚的当天分红, SPEC §4 settle_day)."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tokenmall.core.accounts import Consumer
from tokenmall.core.waterfill import water_fill

if TYPE_CHECKING:
    from tokenmall.core.engine import Engine


def settle_day(engine: "Engine", command: Mapping[str, Any]) -> None:
    """Pay the holding fund and the level funds, dispose of the leftover, release vesting."""
    rates = engine.rates
    net_fen = engine.day_sales
    holding_fund_fen = net_fen * rates.dividend[0] // rates.dividend[1]
    level_fund_fen = net_fen * rates.level_dividend[0] // rates.level_dividend[1]
    engine.dividend_funds += holding_fund_fen + level_fund_fen
    available_fen = holding_fund_fen + engine.carry + level_fund_fen
    paid_fen = _pay_holding_fund(engine, holding_fund_fen + engine.carry)
    paid_fen += _pay_level_funds(engine, level_fund_fen)
    engine.sp_outstanding += paid_fen
    engine.dividends_paid += paid_fen
    _dispose_leftover(engine, available_fen - paid_fen)
    _release_vesting(engine)
    engine.day_sales = 0
    engine.day += 1


def _pay_holding_fund(engine: "Engine", fund_fen: int) -> int:
    """Pro rata to EP held, among consumers with quota and EP (持股分红)."""
    eligible = [c for c in engine.consumers.values() if c.quota > 0 and c.ep > 0]
    fill = water_fill(fund_fen, [c.ep for c in eligible], [c.quota for c in eligible])
    # Each holder's quota fell by at most the water level per EP unit, so its trigger price
    # (quota / ep) fell by at most that level: one O(1) update of the exit queue for them all.
    engine.exit_queue.lower_triggers(fill.level_fen, fill.level_weight)
    return _credit(eligible, fill.payments)


def _pay_level_funds(engine: "Engine", fund_fen: int) -> int:
    """Equal shares per level (等级分红); a level-j holder takes part in levels 1..j."""
    levels = len(engine.params.level_thresholds_units)
    if levels == 0:
        return 0
    part_fen = fund_fen // levels
    paid_fen = 0
    # Highest level first, so each level's candidates are a prefix of this list.
    by_level = sorted(engine.leveled.values(), key=lambda c: -c.level)
    candidates = len(by_level)
    for level in range(1, levels + 1):
        while candidates and by_level[candidates - 1].level < level:
            candidates -= 1
        eligible = [c for c in by_level[:candidates] if c.quota > 0]
        if eligible:
            fill = water_fill(part_fen, [1] * len(eligible), [c.quota for c in eligible])
            paid_fen += _credit(eligible, fill.payments)
    # Level dividends are not proportional to EP: these triggers are updated one by one.
    engine.touched.extend(by_level)
    return paid_fen


def _credit(consumers: list[Consumer], payments: list[int]) -> int:
    """Dividends are paid as SP and consume quota."""
    total_fen = 0
    for consumer, paid in zip(consumers, payments, strict=True):
        if paid:
            consumer.sp += paid
            consumer.quota -= paid
            consumer.dividends += paid
            total_fen += paid
    return total_fen


def _dispose_leftover(engine: "Engine", leftover_fen: int) -> None:
    mode = engine.params.dividend_remainder
    engine.carry = 0
    if mode == "carry":
        engine.carry = leftover_fen
    elif mode == "pool":
        engine.pool += leftover_fen
        engine.leftover_to_pool += leftover_fen
    else:
        engine.leftover_to_platform += leftover_fen


def _release_vesting(engine: "Engine") -> None:
    still_locked = []
    for grant in engine.vesting:
        release_fen = grant.locked_fen if grant.days_left == 1 else grant.per_settlement_fen
        grant.locked_fen -= release_fen
        grant.days_left -= 1
        consumer = engine.consumers[grant.user]
        consumer.locked_sp -= release_fen
        consumer.sp += release_fen
        engine.sp_outstanding += release_fen
        if grant.days_left:
            still_locked.append(grant)
    engine.vesting = still_locked
