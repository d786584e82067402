"""Handlers of the SPEC §4 commands. Each checks everything first, in SPEC's error order, and
only then mutates: a rejected command changes nothing."""

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tokenmall.core.accounts import Consumer, Merchant, Order, VestingGrant
from tokenmall.core.errors import ErrorCode, ParamsError, Rejected
from tokenmall.core.fields import (
    grant_days,
    money_fen,
    optional_id,
    points_units,
    require_id,
    require_present,
)
from tokenmall.core.settlement import settle_day
from tokenmall.core.units import ceil_div

if TYPE_CHECKING:
    from tokenmall.core.engine import Engine

Command = Mapping[str, Any]


def register(engine: "Engine", command: Command) -> None:
    user_id = require_id(command, "user")
    referrer_id = optional_id(command, "referrer")
    if engine.account_exists(user_id):
        raise Rejected(ErrorCode.DUPLICATE_ACCOUNT, f"account {user_id!r} exists")
    if referrer_id is not None and referrer_id not in engine.consumers:
        raise Rejected(ErrorCode.UNKNOWN_REFERRER, f"no consumer {referrer_id!r}")
    engine.consumers[user_id] = Consumer(user_id, referrer_id, engine.book)


def register_merchant(engine: "Engine", command: Command) -> None:
    merchant_id = require_id(command, "merchant")
    if engine.account_exists(merchant_id):
        raise Rejected(ErrorCode.DUPLICATE_ACCOUNT, f"account {merchant_id!r} exists")
    engine.merchants[merchant_id] = Merchant(merchant_id)


def order(engine: "Engine", command: Command) -> None:
    order_id = require_id(command, "id")
    user_id = require_id(command, "user")
    if "amount" not in command:
        raise Rejected(ErrorCode.INVALID_COMMAND, "missing field 'amount'")
    merchant_id = optional_id(command, "merchant")
    if order_id in engine.orders:
        raise Rejected(ErrorCode.DUPLICATE_ORDER, f"order {order_id!r} exists")
    buyer = engine.consumers.get(user_id)
    if buyer is None:
        raise Rejected(ErrorCode.UNKNOWN_USER, f"no consumer {user_id!r}")
    amount_fen = money_fen(command["amount"])
    pay = command.get("pay", "cash")
    if pay == "cash":
        _cash_order(engine, order_id, buyer, amount_fen)
    elif pay == "stable":
        _stable_order(engine, order_id, buyer, amount_fen, merchant_id)
    else:
        raise Rejected(ErrorCode.INVALID_PAYMENT, f"pay must be cash or stable, got {pay!r}")


def _cash_order(engine: "Engine", order_id: str, buyer: Consumer, amount_fen: int) -> None:
    """SPEC §4 cash order: contribution to the pool, EP to the buyer and active referrers."""
    rates = engine.rates
    pool_fen, supply_units = engine.price()
    contribution_fen = amount_fen * rates.contribution[0] // rates.contribution[1]
    room_units = engine.params.total_issuance_units - engine.issued
    # EP wanted = floor(c × share / P); P = pool/supply fen per unit, so c × share × supply / pool.
    share_numerator, share_denominator = rates.buyer_share
    want = contribution_fen * share_numerator * supply_units // (share_denominator * pool_fen)
    buyer_units = want if want < room_units else room_units
    room_units -= buyer_units
    granted_units = buyer_units
    referrer_grants: tuple[tuple[str, int], ...] = ()
    referrer_id = buyer.referrer
    if referrer_id is not None and room_units:
        referrer_grants = _referrer_grants(engine, referrer_id, contribution_fen, room_units)
        granted_units += sum([units for _, units in referrer_grants])
    quota_fen = amount_fen * rates.quota_multiple[0] // rates.quota_multiple[1]
    engine.pool += contribution_fen
    engine.supply += granted_units
    engine.issued += granted_units
    book = engine.book
    book.ep[buyer.slot] += buyer_units
    book.quota[buyer.slot] += quota_fen
    buyer.exited = False
    engine.touched.append(buyer.slot)
    engine.day_sales += amount_fen
    engine.sales += amount_fen
    engine.contributions += contribution_fen
    engine.orders[order_id] = Order(
        order_id,
        buyer.id,
        amount_fen,
        True,
        engine.day,
        contribution_fen,
        quota_fen,
        buyer_units,
        referrer_grants,
    )


def _referrer_grants(
    engine: "Engine", referrer_id: str, contribution_fen: int, room_units: int
) -> tuple[tuple[str, int], ...]:
    """EP for the i-th referrer up the chain, if their rate is > 0 and they are active."""
    pool_fen, supply_units = engine.price()
    grants: list[tuple[str, int]] = []
    consumers = engine.consumers
    ep, quota = engine.book.ep, engine.book.quota
    for rate_numerator, rate_denominator in engine.rates.referral:
        referrer = consumers[referrer_id]
        if rate_numerator and quota[referrer.slot] > 0:
            want = contribution_fen * rate_numerator * supply_units // (rate_denominator * pool_fen)
            granted = want if want < room_units else room_units
            if granted:
                room_units -= granted
                ep[referrer.slot] += granted
                grants.append((referrer_id, granted))
                engine.touched.append(referrer.slot)
        next_id = referrer.referrer
        if next_id is None:
            break
        referrer_id = next_id
    return tuple(grants)


def _stable_order(
    engine: "Engine", order_id: str, buyer: Consumer, amount_fen: int, merchant_id: str | None
) -> None:
    merchant = engine.merchants.get(merchant_id) if merchant_id is not None else None
    if merchant is None:
        raise Rejected(ErrorCode.UNKNOWN_MERCHANT, f"no merchant {merchant_id!r}")
    if buyer.sp < amount_fen:
        raise Rejected(ErrorCode.INSUFFICIENT_STABLE, "not enough SP")
    buyer.sp -= amount_fen
    merchant.sp += amount_fen
    engine.orders[order_id] = Order(order_id, buyer.id, amount_fen, paid_cash=False, day=engine.day)


def sell(engine: "Engine", command: Command) -> None:
    if ("user" in command) == ("merchant" in command):
        raise Rejected(ErrorCode.INVALID_COMMAND, "sell needs exactly one of user, merchant")
    seller: Consumer | Merchant
    if "user" in command:
        user_id = require_id(command, "user")
        require_present(command, "points")
        seller = _consumer(engine, user_id)
    else:
        merchant_id = require_id(command, "merchant")
        require_present(command, "points")
        seller = _merchant(engine, merchant_id)
    units = _points_held(seller, command["points"])
    pool_fen, supply_units = engine.price()
    keep_numerator, keep_denominator = engine.rates.sell_keep
    payout_fen = units * pool_fen * keep_numerator // (supply_units * keep_denominator)
    engine.pool -= payout_fen
    engine.supply -= units
    engine.burned += units
    seller.ep -= units
    seller.cash_out += payout_fen
    if isinstance(seller, Consumer):
        seller.quota -= min(seller.quota, payout_fen)
        engine.touched.append(seller.slot)


def redeem(engine: "Engine", command: Command) -> None:
    """EP for goods (兑换商品): burned at the current price, the pool unchanged."""
    consumer, units = _consumer_points(engine, command)
    pool_fen, supply_units = engine.price()
    value_fen = units * pool_fen // supply_units
    engine.supply -= units
    engine.burned += units
    consumer.ep -= units
    consumer.goods += value_fen
    consumer.quota -= min(consumer.quota, value_fen)
    engine.touched.append(consumer.slot)


def convert(engine: "Engine", command: Command) -> None:
    """EP to SP (兑换恒定积分): the EP go to the treasury and keep circulating."""
    consumer, units = _consumer_points(engine, command)
    pool_fen, supply_units = engine.price()
    sp_fen = units * pool_fen // supply_units
    consumer.ep -= units
    engine.treasury += units
    consumer.sp += sp_fen
    engine.sp_outstanding += sp_fen
    consumer.quota -= min(consumer.quota, sp_fen)
    engine.touched.append(consumer.slot)


def merchant_redeem(engine: "Engine", command: Command) -> None:
    """A merchant's SP into EP at par (商家等值兑换): treasury first, then minted and funded."""
    merchant_id = require_id(command, "merchant")
    require_present(command, "amount")
    merchant = _merchant(engine, merchant_id)
    amount_fen = money_fen(command["amount"])
    if merchant.sp < amount_fen:
        raise Rejected(ErrorCode.INSUFFICIENT_STABLE, "not enough SP")
    pool_fen, supply_units = engine.price()
    units = amount_fen * supply_units // pool_fen
    if units == 0:
        raise Rejected(ErrorCode.INVALID_AMOUNT, "amount buys less than 1e-8 EP")
    from_treasury = min(engine.treasury, units)
    minted = units - from_treasury
    if engine.issued + minted > engine.params.total_issuance_units:
        raise Rejected(ErrorCode.ISSUANCE_EXHAUSTED, "total issuance reached")
    # The platform pays for minted EP at the current price, rounded up, so P cannot fall.
    funding_fen = ceil_div(minted * pool_fen, supply_units)
    engine.treasury -= from_treasury
    engine.supply += minted
    engine.issued += minted
    engine.pool += funding_fen
    engine.mint_funding += funding_fen
    merchant.ep += units
    merchant.sp -= amount_fen
    engine.sp_outstanding -= amount_fen


def refund(engine: "Engine", command: Command) -> None:
    order_id = require_id(command, "order")
    refunded = engine.orders.get(order_id)
    if refunded is None:
        raise Rejected(ErrorCode.UNKNOWN_ORDER, f"no order {order_id!r}")
    if not refunded.paid_cash or refunded.refunded:
        raise Rejected(ErrorCode.NOT_REFUNDABLE, "only an unrefunded cash order")
    if refunded.day != engine.day:
        raise Rejected(ErrorCode.REFUND_WINDOW_CLOSED, "orders are refundable on their day only")
    buyer = engine.consumers[refunded.user]
    if buyer.ep < refunded.buyer_units:
        raise Rejected(ErrorCode.POINTS_ALREADY_USED, "the buyer no longer holds the EP")
    pool_fen, supply_units = engine.price()
    reclaimed = refunded.buyer_units
    buyer.ep -= refunded.buyer_units
    for referrer_id, granted in refunded.referrer_grants:
        referrer = engine.consumers[referrer_id]
        taken = min(granted, referrer.ep)
        referrer.ep -= taken
        reclaimed += taken
        engine.touched.append(referrer.slot)
    engine.supply -= reclaimed
    engine.issued -= reclaimed
    # Withdraw only what keeps pool ≥ P × supply: the price never falls.
    floor_fen = ceil_div(pool_fen * engine.supply, supply_units)
    withdrawal_fen = min(refunded.contribution_fen, max(0, engine.pool - floor_fen))
    engine.pool -= withdrawal_fen
    engine.refund_withdrawals += withdrawal_fen
    buyer.quota -= min(buyer.quota, refunded.quota_fen)
    engine.touched.append(buyer.slot)
    engine.day_sales -= refunded.amount_fen
    engine.refunds += refunded.amount_fen
    refunded.refunded = True


def grant_stable(engine: "Engine", command: Command) -> None:
    """Locked SP for a legacy member (老会员转化), released over `days` settlements."""
    user_id = require_id(command, "user")
    require_present(command, "amount", "days")
    consumer = _consumer(engine, user_id)
    amount_fen = money_fen(command["amount"])
    days = grant_days(command["days"])
    consumer.locked_sp += amount_fen
    engine.vesting.append(VestingGrant(user_id, amount_fen // days, days, amount_fen))


def set_params(engine: "Engine", command: Command) -> None:
    require_present(command, "params")
    overrides = command["params"]
    if not isinstance(overrides, Mapping):
        raise Rejected(ErrorCode.INVALID_PARAMS, "params must be a JSON object")
    if "initial_price" in overrides:
        raise Rejected(ErrorCode.INVALID_PARAMS, "initial_price is fixed after start")
    try:
        params = engine.params.with_overrides(overrides)
    except ParamsError as error:
        raise Rejected(ErrorCode.INVALID_PARAMS, str(error)) from None
    if params.total_issuance_units < engine.issued:
        raise Rejected(ErrorCode.INVALID_PARAMS, "total_issuance below EP already issued")
    engine.replace_params(params)


def _consumer(engine: "Engine", user_id: str) -> Consumer:
    consumer = engine.consumers.get(user_id)
    if consumer is None:
        raise Rejected(ErrorCode.UNKNOWN_USER, f"no consumer {user_id!r}")
    return consumer


def _merchant(engine: "Engine", merchant_id: str) -> Merchant:
    merchant = engine.merchants.get(merchant_id)
    if merchant is None:
        raise Rejected(ErrorCode.UNKNOWN_MERCHANT, f"no merchant {merchant_id!r}")
    return merchant


def _points_held(holder: Consumer | Merchant, raw: object) -> int:
    units = points_units(raw, holder.ep)
    if units > holder.ep:
        raise Rejected(ErrorCode.INSUFFICIENT_POINTS, "not enough EP")
    return units


def _consumer_points(engine: "Engine", command: Command) -> tuple[Consumer, int]:
    user_id = require_id(command, "user")
    require_present(command, "points")
    consumer = _consumer(engine, user_id)
    return consumer, _points_held(consumer, command["points"])


HANDLERS: dict[str, Callable[["Engine", Command], None]] = {
    "register": register,
    "register_merchant": register_merchant,
    "order": order,
    "sell": sell,
    "redeem": redeem,
    "convert": convert,
    "merchant_redeem": merchant_redeem,
    "refund": refund,
    "grant_stable": grant_stable,
    "set_params": set_params,
    "settle_day": settle_day,
}
