"""order (cash or SP) and refund (SPEC §4)."""

from collections.abc import Callable
from typing import Any

from tokenmall.core.accounts import Consumer
from tokenmall.core.effects import Effects, Field, Reentered
from tokenmall.core.errors import ErrorCode, Rejected
from tokenmall.core.fields import Command, check_district, money_fen
from tokenmall.core.orders import REFUNDABLE
from tokenmall.core.rules.agents import pay_commissions, take_back_commissions
from tokenmall.core.rules.cash import refuse_frozen
from tokenmall.core.state import State
from tokenmall.core.units import ZERO_UNITS, Fen, Price, Units, ceil_div

SP = Field.SP


def order(state: State, command: Command, fx: Effects) -> None:
    place_order(
        state,
        command["id"],
        command["user"],
        command["amount"],
        money_fen,
        command.get("pay", "cash"),
        command.get("merchant"),
        command.get("region"),  # absent: a present one is not null (the engine checked)
        fx,
    )


def place_order(
    state: State,
    order_id: str,
    user_id: str,
    amount: object,
    to_fen: Callable[[Any], Fen],
    pay: object,
    merchant_id: str | None,
    region: object,
    fx: Effects,
) -> None:
    """An order whose ids the engine checked, its amount read by `to_fen`: `money_fen` of the
    command's string, or `positive_fen` of the fen given to `Engine.order`."""
    # A region is checked on stable orders too, which then ignore it (SPEC v2 §4).
    if region is not None:
        region = None if state.rules_v1 else check_district(region)  # v1 had none: ignored
    orders = state.orders
    if order_id in orders.today or order_id in orders.closed:
        raise Rejected(ErrorCode.DUPLICATE_ORDER, f"order {order_id!r} exists")
    buyer = state.consumers.get(user_id)
    if buyer is None:
        raise Rejected(ErrorCode.UNKNOWN_USER, f"no consumer {user_id!r}")
    amount_fen = to_fen(amount)
    if pay == "cash":
        _cash_order(state, order_id, buyer, amount_fen, region, fx)
    elif pay == "stable":
        _stable_order(state, order_id, buyer, amount_fen, merchant_id, fx)
    else:
        raise Rejected(ErrorCode.INVALID_PAYMENT, f"pay must be cash or stable, got {pay!r}")


def _cash_order(
    state: State,
    order_id: str,
    buyer: Consumer,
    amount_fen: Fen,
    region: str | None,
    fx: Effects,
) -> None:
    """SPEC §4 cash order: contribution to the pool, EP to the buyer and active referrers,
    then commissions to the region's agents (§10)."""
    rates = state.rates
    pool_fen, supply_units = state.price()
    contribution_fen = amount_fen * rates.contribution[0] // rates.contribution[1]
    room_units = state.params.total_issuance_units - state.issued
    # EP wanted = floor(c × share / P); P = pool/supply fen per unit, so c × share × supply / pool.
    share_numerator, share_denominator = rates.buyer_share
    want = contribution_fen * share_numerator * supply_units // (share_denominator * pool_fen)
    buyer_units = want if want < room_units else room_units
    room_units -= buyer_units
    granted_units = buyer_units
    referrer_grants: tuple[tuple[str, Units], ...] = ()
    referrer_id = buyer.referrer
    if referrer_id is not None and room_units:
        referrer_grants, referred_units = _referrer_grants(
            state, referrer_id, contribution_fen, room_units, (pool_fen, supply_units), fx
        )
        granted_units += referred_units
    # The buyer is posted after its referrers: the order in which consumers reach a level is
    # kept in snapshots (`leveled`), and ledgers written before issue 11 noted referrers first.
    quota_fen = amount_fen * rates.quota_multiple[0] // rates.quota_multiple[1]
    fx.add_ep_and_quota(buyer, buyer_units, quota_fen)
    state.pool += contribution_fen
    state.supply += granted_units
    state.issued += granted_units
    if buyer.exited:
        buyer.exited = False
        fx.events.append(Reentered(buyer.id))
    state.day_sales += amount_fen
    state.sales += amount_fen
    state.contributions += contribution_fen
    commissions = pay_commissions(state, region, amount_fen, fx) if region is not None else ()
    state.orders.add_cash(
        order_id,
        buyer.id,
        amount_fen,
        contribution_fen,
        quota_fen,
        buyer_units,
        referrer_grants,
        commissions,
    )


def _referrer_grants(
    state: State,
    referrer_id: str,
    contribution_fen: Fen,
    room_units: Units,
    price: Price,
    fx: Effects,
) -> tuple[tuple[tuple[str, Units], ...], Units]:
    """EP for the i-th referrer up the chain at the price before the order, if their rate is
    > 0 and they are active: the grants, and the EP they add up to."""
    pool_fen, supply_units = price
    grants: list[tuple[str, Units]] = []
    granted_units = ZERO_UNITS
    consumers = state.consumers
    quota = state.book.quota
    for rate_numerator, rate_denominator in state.rates.referral:
        referrer = consumers[referrer_id]
        if rate_numerator and quota[referrer.slot] > 0:
            want = contribution_fen * rate_numerator * supply_units // (rate_denominator * pool_fen)
            granted = want if want < room_units else room_units
            if granted:
                room_units -= granted
                granted_units += granted
                fx.add_ep(referrer, granted)
                grants.append((referrer_id, granted))
        next_id = referrer.referrer
        if next_id is None:
            break
        referrer_id = next_id
    return tuple(grants), granted_units


def _stable_order(
    state: State,
    order_id: str,
    buyer: Consumer,
    amount_fen: Fen,
    merchant_id: str | None,
    fx: Effects,
) -> None:
    merchant = state.merchants.get(merchant_id) if merchant_id is not None else None
    if merchant is None:
        raise Rejected(ErrorCode.UNKNOWN_MERCHANT, f"no merchant {merchant_id!r}")
    refuse_frozen(buyer, merchant)
    if buyer.sp < amount_fen:
        raise Rejected(ErrorCode.INSUFFICIENT_STABLE, "not enough SP")
    buyer.sp -= amount_fen
    merchant.sp += amount_fen
    fx.postings += ((buyer.id, SP, -amount_fen), (merchant.id, SP, amount_fen))
    state.orders.add_stable(order_id, buyer.id, amount_fen)


def refund(state: State, command: Command, fx: Effects) -> None:
    order_id = command["order"]
    refunded = state.orders.get(order_id, state.day)
    if refunded is None:  # not today's: an earlier day's, or none at all
        flag = state.orders.closed_flag(order_id)
        if flag is None:
            raise Rejected(ErrorCode.UNKNOWN_ORDER, f"no order {order_id!r}")
        if flag != REFUNDABLE:
            raise Rejected(ErrorCode.NOT_REFUNDABLE, "only an unrefunded cash order")
        raise Rejected(ErrorCode.REFUND_WINDOW_CLOSED, "orders are refundable on their day only")
    if not refunded.paid_cash or refunded.refunded:
        raise Rejected(ErrorCode.NOT_REFUNDABLE, "only an unrefunded cash order")
    buyer = state.consumers[refunded.user]
    if buyer.ep < refunded.buyer_units:
        raise Rejected(ErrorCode.POINTS_ALREADY_USED, "the buyer no longer holds the EP")
    pool_fen, supply_units = state.price()
    reclaimed = refunded.buyer_units
    fx.add_ep(buyer, -refunded.buyer_units)
    for referrer_id, granted in refunded.referrer_grants:
        referrer = state.consumers[referrer_id]
        taken = min(granted, referrer.ep)
        fx.add_ep(referrer, -taken)
        reclaimed += taken
    state.supply -= reclaimed
    state.issued -= reclaimed
    # Withdraw only what keeps pool ≥ P × supply: the price never falls.
    floor_fen = ceil_div(pool_fen * state.supply, supply_units)
    withdrawal_fen = min(refunded.contribution_fen, max(0, state.pool - floor_fen))
    state.pool -= withdrawal_fen
    state.refund_withdrawals += withdrawal_fen
    fx.add_quota(buyer, -min(buyer.quota, refunded.quota_fen))
    state.day_sales -= refunded.amount_fen
    state.refunds += refunded.amount_fen
    take_back_commissions(state, refunded.commissions, fx)
    state.orders.mark_refunded(order_id)
