"""`tokenmall demo`: the seeds' worked example (SPEC §8) as a table a person reads."""

import unicodedata
from dataclasses import dataclass

from tokenmall.core.engine import Engine
from tokenmall.core.units import (
    UNITS_PER_EP,
    Fen,
    Units,
    format_fen,
    format_price,
    format_scaled,
    format_units,
    price_cny_scaled,
)

DISPLAY_PRICE_DECIMALS = 4  # as the seeds print prices (SPEC §1)


@dataclass(frozen=True, kw_only=True)
class DemoRow:
    order_number: int
    granted_units: Units
    supply_units: Units
    pool_fen: Fen
    price_text: str


def run_seed_example(orders: int, amount: str = "100.00") -> tuple[Engine, list[DemoRow]]:
    """`orders` consumers each buy `amount` in cash, in turn, with default parameters."""
    engine = Engine()
    rows = []
    for number in range(1, orders + 1):
        user = f"c{number:03d}"
        engine.apply({"op": "register", "user": user})
        engine.apply({"op": "order", "id": f"o{number}", "user": user, "amount": amount})
        rows.append(
            DemoRow(
                order_number=number,
                granted_units=engine.consumers[user].ep,
                supply_units=engine.supply,
                pool_fen=engine.pool,
                price_text=format_price(engine.price(), DISPLAY_PRICE_DECIMALS),
            )
        )
    return engine, rows


def render_seed_example(orders: int) -> str:
    engine, rows = run_seed_example(orders)
    shown = [row for row in rows if row.order_number <= 4 or row.order_number == orders]
    lines = [
        f"The seeds' example (种子示例): {orders} consumers each buy 100.00 CNY in cash.",
        "Each order puts 30% into the dividend pool (分红池); the buyer gets 70% of that as EP.",
        "",
        _header("order n", "EP granted", "supply", "pool CNY", "price"),
        _header("订单序号", "获得积分", "流通积分", "分红池", "积分价值"),
    ]
    for row in shown:
        if row.order_number == orders and orders > 5:
            lines.append(f"{'…':>8}")
        lines.append(
            f"{row.order_number:>8}  {format_units(row.granted_units):>14}"
            f"  {format_units(row.supply_units):>16}  {format_fen(row.pool_fen):>12}"
            f"  {row.price_text:>8}"
        )
    lines += ["", *_first_buyer_lines(engine)]
    return "\n".join(lines)


COLUMN_WIDTHS = (8, 14, 16, 12, 8)


def _header(*labels: str) -> str:
    return "  ".join(
        _pad_left(label, width) for label, width in zip(labels, COLUMN_WIDTHS, strict=True)
    )


def _pad_left(text: str, width: int) -> str:
    """Right-align by display width: CJK characters take two terminal cells."""
    cells = sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)
    return " " * max(0, width - cells) + text


def _first_buyer_lines(engine: Engine) -> list[str]:
    first = engine.consumers["c001"]
    price_scaled = price_cny_scaled(engine.price(), DISPLAY_PRICE_DECIMALS)
    # The seeds multiply by the 4-place display price; value = ep × price, both exact here.
    value_scaled = first.ep * price_scaled // UNITS_PER_EP
    ep_text = format_units(first.ep)
    price_text = format_scaled(price_scaled, DISPLAY_PRICE_DECIMALS)
    value_text = format_scaled(value_scaled, DISPLAY_PRICE_DECIMALS)
    pool_fen, supply_units = engine.price()
    keep_numerator, keep_denominator = engine.rates.sell_keep
    payout_fen = first.ep * pool_fen * keep_numerator // (supply_units * keep_denominator)
    return [
        f"First buyer (首位消费者) c001 holds {ep_text} EP (持有积分),",
        f"worth {ep_text} × {price_text} = {value_text} CNY (持仓价值) before the sale fee;",
        f"selling them all now pays {format_fen(payout_fen)} CNY after the 10% fee (扣10%手续费).",
    ]
