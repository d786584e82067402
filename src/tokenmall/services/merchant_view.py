"""What the merchant cashier (商家收银) reads and previews: the merchant's exact numbers and the
price (one engine query), the day's takings from its statement, one payment it took, and a
consumer id masked for the counter.

The sale preview is consumer_view.trade_preview, the same pure function the consumer pages
use, which calls the core's own sale formula: nothing here is a second copy of a rule.
"""

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tokenmall.core.engine import Engine
from tokenmall.core.errors import ErrorCode
from tokenmall.core.params import Ratio
from tokenmall.core.units import MONEY_DECIMALS, Fen, Price, Units, format_fen, parse_scaled
from tokenmall.ledger.schema import price_days
from tokenmall.ledger.store import Store
from tokenmall.services import consumer_view
from tokenmall.services.consumer_view import TradePreview

TAKINGS_SHOWN_MAX = 100  # payments listed (the newest); the totals count the whole day
TAKINGS_PAGES_MAX = 20  # statement pages (queries.PAGE_MAX lines each) read for a day's totals


@dataclass(frozen=True)
class MerchantView:
    """A merchant as the engine holds it now: its shown balances (queries.account) and the
    exact EP and price a sale preview needs, read together from one committed state."""

    account: dict[str, Any]  # as GET /v1/accounts/{id} shows it
    ep_units: Units
    price: Price  # (pool fen, supply units)
    sell_keep: Ratio  # 1 − sell_fee_rate


def merchant_view(engine: Engine, merchant_id: str) -> MerchantView | None:
    """Engine query (in the writer, between batches): None unless `merchant_id` is a merchant."""
    from tokenmall.services import queries  # noqa: PLC0415 (queries lists this module's reads)

    merchant = engine.merchants.get(merchant_id)
    shown = queries.account(engine, merchant_id)
    if merchant is None or shown is None:
        return None
    return MerchantView(shown, merchant.ep, engine.price(), engine.rates.sell_keep)


def sell_preview(view: MerchantView, points: str) -> TradePreview | ErrorCode:
    """What selling `points` ("all" or an EP amount) pays the merchant after the fee, or the
    error the rules would answer: consumer_view's preview, on the merchant's own EP."""
    return consumer_view.trade_preview("sell", points, view.ep_units, view.price, view.sell_keep)


def masked_id(account_id: str) -> str:
    """A consumer id as the counter shows it: its ends, the middle hidden (138****5678)."""
    size = len(account_id)
    if size <= 2:
        return account_id[:1] + "*"
    head, tail = (1, 1) if size <= 5 else (2, 2) if size <= 8 else (3, 4)
    return account_id[:head] + "****" + account_id[-tail:]


def day_start_seq(store: Store) -> int:
    """The journal entry of the last daily settlement (日结): the ledger's day began after it
    (0 before the first settlement)."""
    with store.reading() as connection:
        found = connection.execute(sa.select(sa.func.max(price_days.c.seq))).scalar_one_or_none()
    return int(found or 0)


def _fen_of(change: object) -> Fen:
    """A statement change ("+12.34", "-1.00") as signed fen."""
    text = str(change)
    sign = -1 if text.startswith("-") else 1
    fen = parse_scaled(text.lstrip("+-"), MONEY_DECIMALS)
    return Fen(sign * (fen or 0))


def takings(store: Store, merchant_id: str) -> dict[str, Any]:
    """The day's takings (今日流水) since the last settlement, from the merchant's statement:
    the SP payments it took (how many, their total, the newest TAKINGS_SHOWN_MAX with the
    consumer masked), the cash its EP sales paid it, and the SP it redeemed to EP. At most
    TAKINGS_PAGES_MAX pages are read: `complete` says whether the totals cover the whole day."""
    from tokenmall.services import queries  # noqa: PLC0415

    start_seq = day_start_seq(store)
    after, payments, complete = start_seq, [], True
    sp_fen = cash_fen = redeemed_fen = 0
    for _ in range(TAKINGS_PAGES_MAX):
        page = queries.statement(store, merchant_id, after, queries.PAGE_MAX)
        if page is None:
            break
        for line in page["lines"]:
            changes = line["changes"]
            if line["op"] == "order" and "sp" in changes:
                amount_fen = _fen_of(changes["sp"])
                sp_fen += amount_fen
                payments.append({"seq": line["seq"], "at": line["recorded_at"], "fen": amount_fen})
            elif line["op"] == "sell" and "cash" in changes:
                cash_fen += _fen_of(changes["cash"])
            elif line["op"] == "merchant_redeem" and "sp" in changes:
                redeemed_fen -= _fen_of(changes["sp"])
        after = page["next_after"]
        if after is None:
            break
    else:
        complete = False
    shown = payments[::-1][:TAKINGS_SHOWN_MAX]
    buyers = consumer_view.order_buyers(store, [p["seq"] for p in shown])
    return {
        "start_seq": start_seq,
        "count": len(payments),
        "sp_total": format_fen(Fen(sp_fen)),
        "cash_from_sales": format_fen(Fen(cash_fen)),
        "sp_redeemed": format_fen(Fen(redeemed_fen)),
        "complete": complete,
        "payments": [
            {
                "seq": p["seq"],
                "at": p["at"],
                "amount": format_fen(p["fen"]),
                "consumer": masked_id(buyers.get(p["seq"], "")),
            }
            for p in shown
        ],
    }


def payment(store: Store, merchant_id: str, seq: int) -> dict[str, Any] | None:
    """The SP payment the merchant took in journal entry `seq`, or None if that entry paid it
    none (a page shows only its own payments, whatever seq a link names)."""
    if not 0 < seq < 2**63:  # a journal seq (BIGINT)
        return None
    line = consumer_view.line_at(store, merchant_id, seq)
    if line is None or line["op"] != "order" or "sp" not in line["changes"]:
        return None
    buyer = consumer_view.order_buyers(store, [seq]).get(seq, "")
    return {
        "seq": seq,
        "at": line["recorded_at"],
        "amount": format_fen(_fen_of(line["changes"]["sp"])),
        "consumer": masked_id(buyer),
        "sp_after": line["balances"]["sp"],
    }
