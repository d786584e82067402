"""Money, EP and prices are distinct types (core/units.py): mypy, run here with the project's own
configuration, rejects fen where units are expected, units where fen are, plain int pairs or
swapped pairs where a price is, and records built positionally, and accepts the same calls
written correctly. So the property is proved by the type checker, not assumed."""

import re
from pathlib import Path

from mypy import api

from tokenmall.core.engine import Engine
from tokenmall.core.units import FEN_PER_CNY, UNITS_PER_EP, Fen, Units

ROOT = Path(__file__).resolve().parent.parent

HEADER = """\
from tokenmall.core.accounts import Merchant, VestingGrant
from tokenmall.core.effects import Effects
from tokenmall.core.engine import Engine
from tokenmall.core.fields import money_fen, points_units
from tokenmall.core.rules.points import sale_payout_fen
from tokenmall.core.units import (
    EP_DECIMALS,
    MONEY_DECIMALS,
    Fen,
    Price,
    Units,
    format_fen,
    format_price,
    format_units,
    parse_scaled,
)

"""

# Each line marked `# E: code` must be reported with that error code, and nothing else.
WRONG = """\
def wrong(engine: Engine, fx: Effects, fen: Fen, units: Units, price: Price) -> None:
    format_fen(units)  # E: arg-type
    format_units(fen)  # E: arg-type
    format_fen(engine.supply)  # E: arg-type
    format_units(engine.pool)  # E: arg-type
    format_fen(12)  # E: arg-type
    format_price((100, 10**8))  # E: arg-type
    format_price((units, fen))  # E: arg-type
    sale_payout_fen(fen, price, (9, 10))  # E: arg-type
    format_units(sale_payout_fen(units, price, (9, 10)))  # E: arg-type
    format_units(parse_scaled("1.00", MONEY_DECIMALS) or units)  # E: arg-type
    format_fen(parse_scaled("1.00000000", EP_DECIMALS) or fen)  # E: arg-type
    format_fen(money_fen("1.00") + units)  # E: arg-type
    Merchant(id="m", ep=fen)  # E: arg-type
    Merchant(id="m", sp=units)  # E: arg-type
    Merchant("m")  # E: call-arg
    VestingGrant(user="u", per_settlement_fen=units, days_left=2, locked_fen=fen)  # E: arg-type
    engine.pool += units  # E: assignment
    engine.supply = engine.pool  # E: assignment
    engine.book.quota[0] = engine.book.ep[0]  # E: call-overload
    fx.add_ep(engine.consumers["a"], fen)  # E: arg-type
    fx.add_quota(engine.consumers["a"], units)  # E: arg-type
"""

RIGHT = """\
def right(engine: Engine, fx: Effects) -> list[str]:
    consumer = engine.consumers["a"]
    units = points_units("all", consumer.ep)
    payout = sale_payout_fen(units, engine.price(), engine.rates.sell_keep)
    engine.pool -= payout
    engine.supply -= units
    consumer.cash_out += payout
    fx.add_ep(consumer, -units)
    fx.add_quota(consumer, -min(consumer.quota, payout))
    pool_fen, supply_units = engine.price()
    value_fen = consumer.ep * pool_fen // supply_units
    bought_units = money_fen("1.00") * supply_units // pool_fen
    engine.last_price = (engine.pool, engine.supply)
    merchant = Merchant(id="m", ep=bought_units, sp=value_fen)
    amount = parse_scaled("1.00", MONEY_DECIMALS)
    return [
        format_fen(payout),
        format_units(engine.supply),
        format_price(engine.price()),
        format_fen(value_fen),
        format_units(merchant.ep),
        format_fen(amount if amount is not None else Fen(0)),
        format_units(Units(10**8)),
    ]
"""


def test_mypy_rejects_fen_as_units_and_accepts_each_where_it_belongs(tmp_path: Path) -> None:
    wrong, right = tmp_path / "wrong.py", tmp_path / "right.py"
    wrong.write_text(HEADER + WRONG, encoding="utf-8")
    right.write_text(HEADER + RIGHT, encoding="utf-8")
    offset = HEADER.count("\n")
    expected = {
        (offset + number, match.group(1))
        for number, line in enumerate(WRONG.splitlines(), start=1)
        if (match := re.search(r"# E: ([a-z-]+)$", line))
    }
    assert len(expected) == WRONG.count("# E:")

    stdout, stderr, _ = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
            "--no-error-summary",
            "--hide-error-context",
            str(right),
            str(wrong),
        ]
    )
    assert stderr == ""
    errors = re.findall(r"^(.+?):(\d+): error: .*\[([a-z-]+)\]$", stdout, re.MULTILINE)
    in_right = [error for error in errors if Path(error[0]).name == "right.py"]
    assert in_right == [], stdout
    found = {(int(line), code) for path, line, code in errors if Path(path).name == "wrong.py"}
    assert found == expected, stdout


def test_fen_and_units_are_plain_ints_at_run_time() -> None:
    engine = Engine()
    engine.apply({"op": "register", "user": "a"})
    engine.apply({"op": "order", "id": "o1", "user": "a", "amount": "100.00"})
    assert Fen(5) == 5 and type(Fen(5)) is int and type(Units(5)) is int
    assert (FEN_PER_CNY, UNITS_PER_EP) == (100, 10**8)
    values = (engine.pool, engine.supply, engine.consumers["a"].ep, *engine.price())
    assert {type(value) for value in values} == {int}
