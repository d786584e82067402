"""What holders do with their points (SPEC §4): sell (回购), redeem for goods, convert to SP, a
merchant's SP back into EP, and locked SP for legacy members."""

from tokenmall.core.accounts import Consumer, Merchant, VestingGrant
from tokenmall.core.effects import Effects, Field
from tokenmall.core.errors import ErrorCode, Rejected
from tokenmall.core.fields import Command, grant_days, money_fen, one_of, points_units
from tokenmall.core.params import Ratio
from tokenmall.core.rules.cash import credit_cash, refuse_frozen
from tokenmall.core.state import State
from tokenmall.core.units import Fen, Price, Units, ceil_div

EP, SP, CASH_OUT, GOODS = Field.EP, Field.SP, Field.CASH_OUT, Field.GOODS
SELLERS = ("user", "merchant", "agent")
SELLERS_V1 = ("user", "merchant")  # v1 ignored an "agent" field


def sale_payout_fen(units: Units, price: Price, keep: Ratio) -> Fen:
    """What a sale of `units` pays at `price`, the sale fee kept in the pool:
    floor(units × P × (1 − sell_fee_rate)). Sells and forced exits both use it."""
    pool_fen, supply_units = price
    keep_numerator, keep_denominator = keep
    return units * pool_fen * keep_numerator // (supply_units * keep_denominator)


def sell(state: State, command: Command, fx: Effects) -> None:
    """A buy-back (回购): the payout is owed to the seller as cash (SPEC v2), the fee stays
    in the pool."""
    kind = one_of(command, SELLERS_V1 if state.rules_v1 else SELLERS)
    if kind == "agent":  # agents hold no EP: sell names a user or a merchant
        raise Rejected(ErrorCode.INVALID_COMMAND, "sell needs a user or a merchant")
    seller: Consumer | Merchant
    if kind == "user":
        seller = consumer_named(state, command["user"])
    else:
        seller = merchant_named(state, command["merchant"])
    refuse_frozen(seller)
    units = _points_held(seller, command["points"])
    payout_fen = sale_payout_fen(units, state.price(), state.rates.sell_keep)
    state.pool -= payout_fen
    state.supply -= units
    state.burned += units
    seller.cash_out += payout_fen
    if isinstance(seller, Consumer):
        fx.add_ep(seller, -units)
        fx.add_quota(seller, -min(seller.quota, payout_fen))
    else:
        seller.ep -= units
        fx.postings.append((seller.id, EP, -units))
    if payout_fen:
        fx.postings.append((seller.id, CASH_OUT, payout_fen))
        credit_cash(state, seller, payout_fen, fx)


def redeem(state: State, command: Command, fx: Effects) -> None:
    """EP for goods (兑换商品): burned at the current price, the pool unchanged."""
    consumer, units = _consumer_points(state, command)
    pool_fen, supply_units = state.price()
    value_fen = units * pool_fen // supply_units
    state.supply -= units
    state.burned += units
    fx.add_ep(consumer, -units)
    consumer.goods += value_fen
    if value_fen:
        fx.postings.append((consumer.id, GOODS, value_fen))
    fx.add_quota(consumer, -min(consumer.quota, value_fen))


def convert(state: State, command: Command, fx: Effects) -> None:
    """EP to SP (兑换恒定积分): the EP go to the treasury and keep circulating."""
    consumer, units = _consumer_points(state, command)
    pool_fen, supply_units = state.price()
    sp_fen = units * pool_fen // supply_units
    fx.add_ep(consumer, -units)
    state.treasury += units
    consumer.sp += sp_fen
    state.sp_outstanding += sp_fen
    if sp_fen:
        fx.postings.append((consumer.id, SP, sp_fen))
    fx.add_quota(consumer, -min(consumer.quota, sp_fen))


def merchant_redeem(state: State, command: Command, fx: Effects) -> None:
    """A merchant's SP into EP at par (商家等值兑换): treasury first, then minted and funded."""
    merchant = merchant_named(state, command["merchant"])
    refuse_frozen(merchant)
    amount_fen = money_fen(command["amount"])
    if merchant.sp < amount_fen:
        raise Rejected(ErrorCode.INSUFFICIENT_STABLE, "not enough SP")
    pool_fen, supply_units = state.price()
    units = amount_fen * supply_units // pool_fen
    if units == 0:
        raise Rejected(ErrorCode.INVALID_AMOUNT, "amount buys less than 1e-8 EP")
    from_treasury = min(state.treasury, units)
    minted = units - from_treasury
    if state.issued + minted > state.params.total_issuance_units:
        raise Rejected(ErrorCode.ISSUANCE_EXHAUSTED, "total issuance reached")
    # The platform pays for minted EP at the current price, rounded up, so P cannot fall.
    funding_fen = ceil_div(minted * pool_fen, supply_units)
    state.treasury -= from_treasury
    state.supply += minted
    state.issued += minted
    state.pool += funding_fen
    state.mint_funding += funding_fen
    merchant.ep += units
    merchant.sp -= amount_fen
    state.sp_outstanding -= amount_fen
    fx.postings += ((merchant.id, EP, units), (merchant.id, SP, -amount_fen))


def grant_stable(state: State, command: Command, fx: Effects) -> None:
    """Locked SP for a legacy member (老会员转化), released over `days` settlements."""
    user_id = command["user"]
    consumer = consumer_named(state, user_id)
    amount_fen = money_fen(command["amount"])
    days = grant_days(command["days"])
    consumer.locked_sp += amount_fen
    state.vesting.append(
        VestingGrant(
            user=user_id,
            per_settlement_fen=amount_fen // days,
            days_left=days,
            locked_fen=amount_fen,
        )
    )
    fx.postings.append((user_id, Field.LOCKED_SP, amount_fen))


def consumer_named(state: State, user_id: str) -> Consumer:
    consumer = state.consumers.get(user_id)
    if consumer is None:
        raise Rejected(ErrorCode.UNKNOWN_USER, f"no consumer {user_id!r}")
    return consumer


def merchant_named(state: State, merchant_id: str) -> Merchant:
    merchant = state.merchants.get(merchant_id)
    if merchant is None:
        raise Rejected(ErrorCode.UNKNOWN_MERCHANT, f"no merchant {merchant_id!r}")
    return merchant


def _points_held(holder: Consumer | Merchant, raw: object) -> Units:
    units = points_units(raw, holder.ep)
    if units > holder.ep:
        raise Rejected(ErrorCode.INSUFFICIENT_POINTS, "not enough EP")
    return units


def _consumer_points(state: State, command: Command) -> tuple[Consumer, Units]:
    consumer = consumer_named(state, command["user"])
    refuse_frozen(consumer)
    return consumer, _points_held(consumer, command["points"])
