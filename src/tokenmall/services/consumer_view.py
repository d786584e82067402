"""What the consumer pages (H5, 会员中心) read and preview: one account's numbers as the engine
holds them (exact integers), the value of EP at the price, what a sale, a conversion or a
redemption would give before it is confirmed, the dividend and commission lines of a
statement, and QR codes as inline SVG. (Referrals and collectibles held: services/account_reads.py,
shared with the console.)

The previews call the core's own formulas (core/rules/points.py), so a page shows exactly what
the engine will apply at that price; nothing here is a second copy of a rule.
"""

import io
import json
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import segno
import sqlalchemy as sa

from tokenmall.core.engine import Engine
from tokenmall.core.errors import ErrorCode, Rejected
from tokenmall.core.fields import points_units
from tokenmall.core.params import Ratio, fraction_text
from tokenmall.core.rules.points import sale_payout_fen
from tokenmall.core.units import Fen, Price, Units, format_fen, format_units
from tokenmall.ledger.schema import journal
from tokenmall.ledger.store import Store

TRADE_ACTIONS = ("sell", "convert", "redeem")


@dataclass(frozen=True)
class AccountView:
    """One account as the engine holds it now: its shown balances (queries.account) and the
    exact numbers the pages compute with."""

    account: dict[str, Any]  # as GET /v1/accounts/{id} shows it
    ep_units: Units
    quota_fen: Fen
    level: int
    price: Price  # (pool fen, supply units): P = pool / supply
    sell_keep: Ratio  # 1 − sell_fee_rate
    day: int
    params: dict[str, Any]  # SPEC §2, as Params.as_json writes them

    @property
    def kind(self) -> str:
        return str(self.account["kind"])


def account_view(engine: Engine, account_id: str) -> AccountView | None:
    """Engine query (runs in the writer, between batches): the account and the price, read
    together so that a value or a preview is of one committed state."""
    from tokenmall.services import queries  # noqa: PLC0415 (queries lists this module's reads)

    shown = queries.account(engine, account_id)
    if shown is None:
        return None
    consumer = engine.consumers.get(account_id)
    return AccountView(
        account=shown,
        ep_units=consumer.ep if consumer is not None else Units(0),
        quota_fen=consumer.quota if consumer is not None else Fen(0),
        level=consumer.level if consumer is not None else 0,
        price=engine.price(),
        sell_keep=engine.rates.sell_keep,
        day=engine.day,
        params=engine.params.as_json(),
    )


def ep_value_fen(units: Units, price: Price) -> Fen:
    """What `units` EP are worth at `price`, floored to the fen: floor(units × P). It is also
    exactly what a conversion gives in SP and a redemption in goods (SPEC §4)."""
    pool_fen, supply_units = price
    return units * pool_fen // supply_units


def sale_of_value_fen(value_fen: Fen, keep: Ratio) -> Fen:
    """What a sale of EP worth exactly `value_fen` pays (the core's sale formula at a price of
    `value_fen` per unit, for one unit): the risk page's example."""
    return sale_payout_fen(Units(1), (value_fen, Units(1)), keep)


@dataclass(frozen=True)
class TradePreview:
    """What an action on `units` EP gives at the price it was computed at: `value_fen` the EP's
    value, `receive_fen` what the account gets (cash for a sale, SP for a conversion, goods
    for a redemption) and `fee_fen` the difference kept in the pool."""

    action: str
    units: Units
    value_fen: Fen
    receive_fen: Fen
    fee_fen: Fen


def trade_preview(
    action: str, points: str, held_units: Units, price: Price, keep: Ratio
) -> TradePreview | ErrorCode:
    """The preview of sell, convert or redeem of `points` ("all" or an EP amount) for an
    account holding `held_units`, or the error code the rules would answer. Pure: the price
    and the keep ratio come from an AccountView."""
    if action not in TRADE_ACTIONS:
        return ErrorCode.INVALID_COMMAND
    try:
        units = points_units(points, held_units)  # the rules' own parsing, "all" included
    except Rejected as rejected:
        return rejected.code
    if units > held_units:
        return ErrorCode.INSUFFICIENT_POINTS
    value_fen = ep_value_fen(units, price)
    receive_fen = sale_payout_fen(units, price, keep) if action == "sell" else value_fen
    return TradePreview(action, units, value_fen, receive_fen, Fen(value_fen - receive_fen))


def percent_text(rate: Fraction | str) -> str:
    """A rate as a percentage without float: Fraction(1, 10) or "0.10" -> "10"."""
    return fraction_text(Fraction(rate) * 100)  # parameters are decimals: it terminates


# --- statements (store reads) ----------------------------------------------------------------
def statement_page(store: Store, account_id: str, after_seq: int, limit: int) -> dict[str, Any]:
    """A page of the account's statement (queries.statement), each line marked: `dividend` (a
    settlement paid it) and `commission` (an order someone else placed paid it: a referral's
    EP, an agent's share). An account with no line yet: an empty page."""
    from tokenmall.services import queries  # noqa: PLC0415

    page = queries.statement(store, account_id, after_seq, limit)
    if page is None:
        return {"account": account_id, "lines": [], "items": [], "next_after": None}
    buyers = order_buyers(store, [line["seq"] for line in page["lines"] if line["op"] == "order"])
    for line in page["lines"]:
        line["dividend"] = line["op"] == "settle_day" and "dividends" in line["changes"]
        buyer = buyers.get(line["seq"])
        line["commission"] = line["op"] == "order" and buyer is not None and buyer != account_id
        line["buyer"] = buyer
    return page


def order_buyers(store: Store, seqs: list[int]) -> dict[int, str]:
    """The buyer (`user`) each of these journal entries' orders names."""
    if not seqs:
        return {}
    with store.reading() as connection:
        rows = connection.execute(
            sa.select(journal.c.seq, journal.c.command).where(journal.c.seq.in_(seqs))
        ).all()
    found = {}
    for seq, text in rows:
        command = json.loads(text)
        if isinstance(command, dict) and isinstance(command.get("user"), str):
            found[int(seq)] = command["user"]
    return found


def line_at(store: Store, account_id: str, seq: int) -> dict[str, Any] | None:
    """The account's statement line of journal entry `seq` (what it changed), if any."""
    from tokenmall.services import queries  # noqa: PLC0415

    page = queries.statement(store, account_id, seq - 1, 1)
    if page is None or not page["lines"] or page["lines"][0]["seq"] != seq:
        return None
    line: dict[str, Any] = page["lines"][0]
    return line


# --- QR codes --------------------------------------------------------------------------------
_STYLE = re.compile(r'\sstyle="[^"]*"')


def qr_svg(text: str, title: str = "") -> str:
    """`text` as a QR code, an <svg> element to put inline: sized by CSS (no width or height),
    with no style attribute (the pages' CSP forbids inline styles)."""
    code = segno.make(text, error="m", micro=False)  # phones read no Micro QR
    out = io.BytesIO()
    code.save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        omitsize=True,
        border=2,
        dark="#000",
        light="#fff",
        svgclass="qrcode",
        lineclass=None,
        title=title or None,
        nl=False,
    )
    return _STYLE.sub("", out.getvalue().decode())


def shown_preview(preview: TradePreview) -> dict[str, str]:
    """A preview as the pages show it (h5 and the cashier): `ep` is exactly what the confirm
    form sells, converts or redeems."""
    return {
        "ep": format_units(preview.units),
        "value": format_fen(preview.value_fen),
        "receive": format_fen(preview.receive_fen),
        "fee": format_fen(preview.fee_fen),
    }
