"""The canonical state of SPEC §7: what `replay` prints, byte for byte."""

import json
from typing import Any

from tokenmall.core.accounts import AGENT_FIELDS, CONSUMER_FIELDS, MERCHANT_FIELDS
from tokenmall.core.state import State
from tokenmall.core.units import format_fen, format_price, format_units

StateJson = dict[str, Any]


def shown_balances(fields: tuple[str, ...], values: tuple[int, ...]) -> dict[str, Any]:
    """Balances as SPEC §7 prints them (and the API shows them): EP with 8 decimals, money and
    SP with 2, the level as a number, `exited` as a boolean."""
    return {name: SHOW_FIELD[name](value) for name, value in zip(fields, values, strict=True)}


SHOW_FIELD: dict[str, Any] = {
    "ep": format_units,
    "sp": format_fen,
    "locked_sp": format_fen,
    "quota": format_fen,
    "level": int,
    "cash_out": format_fen,
    "goods": format_fen,
    "dividends": format_fen,
    "exited": bool,
    "cash": format_fen,
    "withdrawing": format_fen,
    "withdrawn": format_fen,
    "frozen": bool,
    "commissions": format_fen,
    "ended": bool,
}


def canonical_state(state: State, errors: list[dict[str, Any]]) -> StateJson:
    fen, units = format_fen, format_units

    users = {
        c.id: shown_balances(CONSUMER_FIELDS, c.balances())
        for c in sorted(state.consumers.values(), key=lambda c: c.id)
    }
    merchants = {
        m.id: shown_balances(MERCHANT_FIELDS, m.balances())
        for m in sorted(state.merchants.values(), key=lambda m: m.id)
    }
    agents = {
        a.id: {
            "region": a.region,
            "until": a.until,
            **shown_balances(AGENT_FIELDS, a.balances()),
        }
        for a in sorted(state.agents.values(), key=lambda a: a.id)
    }
    withdrawals = {
        w.id: {
            "account": w.account,
            "amount": fen(w.amount_fen),
            "status": w.status,
            "reference": w.reference,
        }
        for w in sorted(state.withdrawals.values(), key=lambda w: w.id)
    }
    collections = {
        c.id: {"edition": c.edition, "value": fen(c.value_fen), "claimed": c.claimed}
        for c in sorted(state.collections.values(), key=lambda c: c.id)
    }
    items = {
        i.id: {
            "owner": i.owner,
            "acquired_day": i.acquired_day,
            "gifts": i.gifts,
            "used": i.used,
        }
        for i in sorted(state.items.values(), key=lambda i: i.id)
    }
    return {
        "price": format_price(state.price()),
        "pool": fen(state.pool),
        "supply": units(state.supply),
        "issued": units(state.issued),
        "burned": units(state.burned),
        "treasury": units(state.treasury),
        "unissued": units(state.params.total_issuance_units - state.issued),
        "day": state.day,
        "day_sales": fen(state.day_sales),
        "carry": fen(state.carry),
        "sp_outstanding": fen(state.sp_outstanding),
        "sales": fen(state.sales),
        "refunds": fen(state.refunds),
        "contributions": fen(state.contributions),
        "dividends_paid": fen(state.dividends_paid),
        "mint_funding": fen(state.mint_funding),
        "exits": state.exits,
        "cash_owed": fen(state.cash_owed),
        "withdrawn": fen(state.withdrawn),
        "agent_commissions": fen(state.agent_commissions),
        "users": users,
        "merchants": merchants,
        "agents": agents,
        "withdrawals": withdrawals,
        "collections": collections,
        "items": items,
        "errors": errors,
    }


def canonical_json(state: StateJson) -> str:
    """Sorted keys, one-space indent, ASCII, trailing newline: the golden files' exact bytes."""
    return json.dumps(state, indent=1, sort_keys=True, ensure_ascii=True) + "\n"
