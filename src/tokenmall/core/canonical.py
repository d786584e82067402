"""The canonical state of SPEC §7: what `replay` prints, byte for byte."""

import json
from typing import Any

from tokenmall.core.engine import Engine
from tokenmall.core.units import format_fen, format_price, format_units

StateJson = dict[str, Any]


def canonical_state(engine: Engine, errors: list[dict[str, Any]]) -> StateJson:
    fen, units = format_fen, format_units
    users = {
        c.id: {
            "ep": units(c.ep),
            "sp": fen(c.sp),
            "locked_sp": fen(c.locked_sp),
            "quota": fen(c.quota),
            "level": c.level,
            "cash_out": fen(c.cash_out),
            "goods": fen(c.goods),
            "dividends": fen(c.dividends),
            "exited": c.exited,
        }
        for c in sorted(engine.consumers.values(), key=lambda c: c.id)
    }
    merchants = {
        m.id: {"ep": units(m.ep), "sp": fen(m.sp), "cash_out": fen(m.cash_out)}
        for m in sorted(engine.merchants.values(), key=lambda m: m.id)
    }
    return {
        "price": format_price(engine.price()),
        "pool": fen(engine.pool),
        "supply": units(engine.supply),
        "issued": units(engine.issued),
        "burned": units(engine.burned),
        "treasury": units(engine.treasury),
        "unissued": units(engine.params.total_issuance_units - engine.issued),
        "day": engine.day,
        "day_sales": fen(engine.day_sales),
        "carry": fen(engine.carry),
        "sp_outstanding": fen(engine.sp_outstanding),
        "sales": fen(engine.sales),
        "refunds": fen(engine.refunds),
        "contributions": fen(engine.contributions),
        "dividends_paid": fen(engine.dividends_paid),
        "mint_funding": fen(engine.mint_funding),
        "exits": engine.exits,
        "users": users,
        "merchants": merchants,
        "errors": errors,
    }


def canonical_json(state: StateJson) -> str:
    """Sorted keys, one-space indent, ASCII, trailing newline: the golden files' exact bytes."""
    return json.dumps(state, indent=1, sort_keys=True, ensure_ascii=True) + "\n"
