"""The daily settlement (当天赚的当天分红, SPEC §4 settle_day)."""

from collections.abc import Mapping
from operator import add, ge, sub
from typing import TYPE_CHECKING, Any

from tokenmall.core.waterfill import fill_with_caps, water_fill

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
    """Pro rata to EP held, among consumers with quota and EP (持股分红).

    Works on the book's columns: a consumer's weight is its EP if it has quota, else 0.
    """
    book = engine.book
    weights = [units if fen else 0 for units, fen in zip(book.ep, book.quota, strict=True)]
    weight_total = sum(weights)
    if fund_fen <= 0 or weight_total == 0:
        return 0
    payments = _fast_payments(fund_fen, weights, weight_total, book.quota)
    if payments is None:
        payments = _capped_payments(engine, fund_fen, weights)
    else:
        # Each holder's quota fell by at most fund / Σweight per EP unit, and so did its trigger
        # price quota / ep: one O(1) update of the exit queue covers them all.
        engine.exit_queue.lower_triggers(fund_fen, weight_total)
    book.quota[:] = map(sub, book.quota, payments)
    book.sp[:] = map(add, book.sp, payments)
    book.dividends[:] = map(add, book.dividends, payments)
    return sum(payments)


def _fast_payments(
    fund_fen: int, weights: list[int], weight_total: int, quotas: list[int]
) -> list[int] | None:
    """The first round of water-filling, if nobody reaches a cap in it (the ordinary day)."""
    payments = [fund_fen * weight // weight_total for weight in weights]
    # Caps are whole fen, so share >= cap exactly when floor(share) >= cap. Rows without weight
    # pay 0 and count here only when their quota is 0 too; subtract those.
    reaching_cap = sum(map(ge, payments, quotas)) - quotas.count(0)
    return payments if reaching_cap == 0 else None


def _capped_payments(engine: "Engine", fund_fen: int, weights: list[int]) -> list[int]:
    """Full water-filling over the eligible rows, scattered back to one payment per row."""
    quotas = engine.book.quota
    eligible = [slot for slot, weight in enumerate(weights) if weight]
    # _fast_payments has just seen the first round cap someone: go straight to the sorted walk.
    fill = fill_with_caps(fund_fen, [weights[s] for s in eligible], [quotas[s] for s in eligible])
    engine.exit_queue.lower_triggers(fill.level_fen, fill.level_weight)
    payments = [0] * len(weights)
    for slot, paid in zip(eligible, fill.payments, strict=True):
        payments[slot] = paid
    return payments


def _pay_level_funds(engine: "Engine", fund_fen: int) -> int:
    """Equal shares per level (等级分红); a level-j holder takes part in levels 1..j."""
    levels = len(engine.params.level_thresholds_units)
    if levels == 0 or not engine.leveled:
        return 0
    part_fen = fund_fen // levels
    paid_fen = 0
    book = engine.book
    # Highest level first, so each level's candidates are a prefix of this list.
    by_level = sorted(engine.leveled.values(), key=lambda c: -c.level)
    candidates = len(by_level)
    for level in range(1, levels + 1):
        while candidates and by_level[candidates - 1].level < level:
            candidates -= 1
        slots = [c.slot for c in by_level[:candidates] if book.quota[c.slot] > 0]
        if slots:
            fill = water_fill(part_fen, [1] * len(slots), [book.quota[s] for s in slots])
            for slot, paid in zip(slots, fill.payments, strict=True):
                book.quota[slot] -= paid
                book.sp[slot] += paid
                book.dividends[slot] += paid
            paid_fen += sum(fill.payments)
    # Level dividends are not proportional to EP: these triggers are updated one by one.
    engine.exit_queue.note_changes([c.slot for c in by_level])
    return paid_fen


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
    sp = engine.book.sp
    for grant in engine.vesting:
        release_fen = grant.locked_fen if grant.days_left == 1 else grant.per_settlement_fen
        grant.locked_fen -= release_fen
        grant.days_left -= 1
        consumer = engine.consumers[grant.user]
        consumer.locked_sp -= release_fen
        sp[consumer.slot] += release_fen
        engine.sp_outstanding += release_fen
        if grant.days_left:
            still_locked.append(grant)
    engine.vesting = still_locked
