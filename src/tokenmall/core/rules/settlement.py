"""The daily settlement (当天赚的当天分红, SPEC §4 settle_day)."""

from collections.abc import Sequence
from itertools import repeat
from operator import add, floordiv, ge, mul, sub, truth

from tokenmall.core.effects import DaySettled, Effects, Field, Payouts
from tokenmall.core.fields import Command
from tokenmall.core.kernel import compiled
from tokenmall.core.state import State
from tokenmall.core.units import ZERO_FEN, Fen
from tokenmall.core.waterfill import fill_with_caps, water_fill


def settle_day(state: State, command: Command, fx: Effects) -> None:
    """Pay the holding fund and the level funds, dispose of the leftover, release vesting."""
    rates = state.rates
    net_fen = state.day_sales
    holding_fund_fen = net_fen * rates.dividend[0] // rates.dividend[1]
    level_fund_fen = net_fen * rates.level_dividend[0] // rates.level_dividend[1]
    state.dividend_funds += holding_fund_fen + level_fund_fen
    available_fen = holding_fund_fen + state.carry + level_fund_fen
    holding = _pay_holding_fund(state, holding_fund_fen + state.carry)
    levels = _pay_level_funds(state, level_fund_fen)
    paid_fen = Fen(sum(holding) + sum(sum(payments) for _, payments in levels))
    fx.payouts = Payouts(state.book.owners, holding, levels)
    state.sp_outstanding += paid_fen
    state.dividends_paid += paid_fen
    _dispose_leftover(state, available_fen - paid_fen)
    _release_vesting(state, fx)
    state.withdrawn_today.clear()  # SPEC v2 §9: each day's withdrawal limit starts again
    fx.events.append(DaySettled(state.day, net_fen, paid_fen))
    state.orders.close_day()  # no order of this day can be refunded any more
    state.day_sales = ZERO_FEN
    state.day += 1


def _pay_holding_fund(state: State, fund_fen: Fen) -> list[int]:
    """Pro rata to EP held, among consumers with quota and EP (持股分红): one payment per
    slot (zeros included). Works on the book's columns: a consumer's weight is its EP if it
    has quota, else 0."""
    book = state.book
    kernel = compiled()
    if kernel is not None:  # the ordinary day in C (core/_kernel.c), or None: as below
        paid = kernel.holding_fund(book.ep, book.quota, book.sp, book.dividends, fund_fen)
        if paid is not None:
            state.exit_queue.lower_triggers(fund_fen, paid[1])  # as below
            return paid[0]
    # ep × (quota != 0), as C-level maps rather than a Python loop over every consumer.
    weights = list(map(mul, book.ep, map(truth, book.quota)))
    weight_total = sum(weights)
    if fund_fen <= 0 or weight_total == 0:
        return []
    payments = _fast_payments(fund_fen, weights, weight_total, book.quota)
    if payments is None:
        payments = _capped_payments(state, fund_fen, weights)
    else:
        # Each holder's quota fell by at most fund / Σweight per EP unit, and so did its trigger
        # price quota / ep: one O(1) update of the exit queue covers them all.
        state.exit_queue.lower_triggers(fund_fen, weight_total)
    book.quota[:] = map(sub, book.quota, payments)
    book.sp[:] = map(add, book.sp, payments)
    book.dividends[:] = map(add, book.dividends, payments)
    return payments


def _fast_payments(
    fund_fen: Fen, weights: list[int], weight_total: int, quotas: Sequence[Fen]
) -> list[int] | None:
    """The first round of water-filling, if nobody reaches a cap in it (the ordinary day)."""
    payments = list(map(floordiv, map(mul, weights, repeat(fund_fen)), repeat(weight_total)))
    # Caps are whole fen, so share >= cap exactly when floor(share) >= cap. Rows without weight
    # pay 0 and count here only when their quota is 0 too; subtract those.
    reaching_cap = sum(map(ge, payments, quotas)) - quotas.count(0)
    return payments if reaching_cap == 0 else None


def _capped_payments(state: State, fund_fen: Fen, weights: list[int]) -> list[int]:
    """Full water-filling over the eligible rows, scattered back to one payment per row."""
    quotas = state.book.quota
    eligible = [slot for slot, weight in enumerate(weights) if weight]
    # _fast_payments has just seen the first round cap someone: go straight to the sorted walk.
    fill = fill_with_caps(fund_fen, [weights[s] for s in eligible], [quotas[s] for s in eligible])
    state.exit_queue.lower_triggers(fill.level_fen, fill.level_weight)
    payments = [0] * len(weights)
    for slot, paid in zip(eligible, fill.payments, strict=True):
        payments[slot] = paid
    return payments


def _pay_level_funds(state: State, fund_fen: Fen) -> list[tuple[list[int], list[int]]]:
    """Equal shares per level (等级分红); a level-j holder takes part in levels 1..j. The
    payments of each level paid: (slots, fen)."""
    levels = len(state.params.level_thresholds_units)
    if levels == 0 or not state.leveled:
        return []
    part_fen = fund_fen // levels
    paid: list[tuple[list[int], list[int]]] = []
    book = state.book
    quota, level_of = book.quota, book.level
    # Highest level first (a stable sort: ties keep the order they reached a level), so each
    # level's candidates are a prefix of this list of slots.
    by_level = sorted(state.leveled, key=level_of.__getitem__, reverse=True)
    candidates = len(by_level)
    for level in range(1, levels + 1):
        while candidates and level_of[by_level[candidates - 1]] < level:
            candidates -= 1
        slots = [slot for slot in by_level[:candidates] if quota[slot] > 0]
        if slots:
            fill = water_fill(part_fen, [1] * len(slots), [quota[slot] for slot in slots])
            for slot, fen in zip(slots, fill.payments, strict=True):
                quota[slot] -= fen
                book.sp[slot] += fen
                book.dividends[slot] += fen
            paid.append((slots, fill.payments))
    # Level dividends are not proportional to EP: these triggers are updated one by one.
    state.exit_queue.note_changes(by_level)
    return paid


def _dispose_leftover(state: State, leftover_fen: Fen) -> None:
    mode = state.params.dividend_remainder
    state.carry = ZERO_FEN
    if mode == "carry":
        state.carry = leftover_fen
    elif mode == "pool":
        state.pool += leftover_fen
        state.leftover_to_pool += leftover_fen
    else:
        state.leftover_to_platform += leftover_fen


def _release_vesting(state: State, fx: Effects) -> None:
    still_locked = []
    sp = state.book.sp
    post = fx.postings.append
    for grant in state.vesting:
        release_fen = grant.locked_fen if grant.days_left == 1 else grant.per_settlement_fen
        grant.locked_fen -= release_fen
        grant.days_left -= 1
        consumer = state.consumers[grant.user]
        consumer.locked_sp -= release_fen
        sp[consumer.slot] += release_fen
        state.sp_outstanding += release_fen
        if release_fen:
            post((grant.user, Field.LOCKED_SP, -release_fen))
            post((grant.user, Field.SP, release_fen))
        if grant.days_left:
            still_locked.append(grant)
    state.vesting = still_locked
