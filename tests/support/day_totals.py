"""The day totals (ledger/projections.py `DayTotals`) worked out apart from the projector, a
command at a time: sales from the commands themselves, the rest from the engine's totals,
balances and withdrawals around each command. The read model must equal it to the fen."""

from dataclasses import replace
from decimal import Decimal
from typing import Any

from tokenmall.core.engine import Engine
from tokenmall.ledger.projections import DayTotals

Command = dict[str, Any]

# Engine totals whose change a command's totals are read from.
TOTALS_READ = ("contributions", "dividends_paid", "agent_commissions", "exits", "refunds", "issued")
WITHDRAWAL_COUNT = {"paid": "paid", "rejected": "returned", "failed": "returned"}


class DayReference:
    """Applies commands to an engine and adds what each did to the totals it is given."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.buyers: dict[str, str] = {}  # order id -> its buyer
        # False once a buyer was sold out (出局) by its own order: its grant was not seen, so
        # the referrers' share of what the order issued is not known here either.
        self.referrals_seen = True

    def apply(self, command: Command, seq: int, totals: DayTotals) -> str | None:
        """Apply `command` (entry `seq`); its error code if rejected."""
        engine = self.engine
        before = {name: getattr(engine, name) for name in TOTALS_READ}
        statuses = {wid: w.status for wid, w in engine.withdrawals.items()}
        op = command.get("op")
        buyer_id = (
            command.get("user") if op == "order" else self.buyers.get(str(command.get("order")))
        )
        buyer = engine.consumers.get(buyer_id) if isinstance(buyer_id, str) else None
        # what the buyer held and was paid: an exit of its own pays it cash for its EP
        held = None if buyer is None else (buyer.ep, buyer.cash_out + buyer.cash)
        code = engine.try_apply(command)
        if totals.first_seq is None:
            totals.first_seq = seq
        totals.last_seq = seq
        if code is not None:
            return str(code)
        self._count(totals, command, before, statuses)
        if op == "order":
            self.buyers[str(command["id"])] = str(command["user"])
        if op in ("order", "refund") and buyer is not None and held is not None:
            # Referrers' EP: what the command issued (or took back) less the buyer's own.
            if buyer.cash_out + buyer.cash != held[1]:
                self.referrals_seen = False
            totals.referral_units += engine.issued - before["issued"] - (buyer.ep - held[0])
        return None

    def _count(
        self,
        totals: DayTotals,
        command: Command,
        before: dict[str, int],
        statuses_before: dict[str, str],
    ) -> None:
        engine, op = self.engine, command["op"]
        totals.contributions_fen += engine.contributions - before["contributions"]
        totals.dividends_fen += engine.dividends_paid - before["dividends_paid"]
        totals.agent_commissions_fen += engine.agent_commissions - before["agent_commissions"]
        totals.exits += engine.exits - before["exits"]
        totals.settlements += op == "settle_day"
        if op == "order" and command.get("pay", "cash") == "cash":
            totals.cash_orders += 1
            totals.sales_fen += int(Decimal(command["amount"]) * 100)
        if op == "refund":
            totals.refunds += 1
            totals.refunds_fen += engine.refunds - before["refunds"]
        for wid, withdrawal in engine.withdrawals.items():
            was = statuses_before.get(wid)
            # new: requested (approved at once if small); else paid or returned to cash
            name = "requested" if was is None else WITHDRAWAL_COUNT.get(withdrawal.status)
            if was == withdrawal.status or name is None:
                continue
            count = f"withdrawals_{name}"
            setattr(totals, count, getattr(totals, count) + 1)
            amount = getattr(totals, f"{count}_fen") + withdrawal.amount_fen
            setattr(totals, f"{count}_fen", amount)


def same_totals(read: DayTotals, expected: DayTotals, reference: DayReference) -> bool:
    """The read model's totals are the reference's, to the fen (referral EP where seen)."""
    if not reference.referrals_seen:
        read = replace(read, referral_units=expected.referral_units)
    return read == expected
