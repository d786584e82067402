"""What the entry points (the API, the command line) share beyond the channels: the payout
list with each message's delivery, and reconciliation of a channel's statement against the
ledger (对账)."""

from collections.abc import Sequence
from typing import Any

from tokenmall.core.units import Fen, format_fen
from tokenmall.payouts.channels import payout_message_id
from tokenmall.payouts.files import read_bank_file
from tokenmall.payouts.reconcile import Difference, LedgerPayout, reconcile
from tokenmall.payouts.store import PayoutStore

LIST_MAX = 5_000


def payout_list(payouts: PayoutStore, channel: str | None, state: str | None) -> dict[str, Any]:
    """Withdrawals handed to a channel (the newest LIST_MAX), with their outbox delivery."""
    rows = payouts.payouts_by_channel(channel, state, LIST_MAX)
    messages = payouts.messages_of([payout_message_id(row.withdrawal) for row in rows])
    listed = []
    for row in rows:
        message = messages.get(payout_message_id(row.withdrawal))
        listed.append(
            {
                "withdrawal": row.withdrawal,
                "channel": row.channel,
                "state": row.state,
                "account": row.account,
                "amount": format_fen(Fen(row.amount_fen)),
                "batch": row.batch,
                "outcome": row.outcome,
                "reference": row.reference,
                "claimed_by": row.claimed_by,
                "created_at": row.created_at,
                "updated_at": row.updated_at,
                "delivery": None
                if message is None
                else {
                    "state": message.state,
                    "attempts": message.attempts,
                    "last_status": message.last_status,
                    "last_error": message.last_error,
                },
            }
        )
    return {"payouts": listed}


def reconcile_file(
    payouts: PayoutStore,
    data: bytes,
    filename: str,
    channel: str,
    since: str | None,
    until: str | None,
) -> tuple[list[Difference], dict[str, str]]:
    """Every difference between a channel's statement and the ledger. The ledger's side is
    every withdrawal the statement names, and every one the channel held that the ledger
    shows paid on the days since..until (all days when not given)."""
    lines = read_bank_file(data, filename)
    named = payouts.withdrawals(sorted({line.withdrawal for line in lines}))
    ledger = {
        id_: LedgerPayout(id_, amount_fen, status, reference)
        for id_, (status, amount_fen, reference) in named.items()
    }
    paid_here = payouts.paid_by_channel(channel, since, until)
    for id_, amount_fen, reference in paid_here:
        ledger.setdefault(id_, LedgerPayout(id_, amount_fen, "paid", reference))
    scope = {id_ for id_, _, _ in paid_here}
    differences = reconcile(lines, ledger, lambda payout: payout.withdrawal in scope)
    succeeded = [line for line in lines if line.succeeded]
    summary = {
        "文件 file": filename,
        "渠道 channel": channel,
        "期间 period": f"{since or '…'} – {until or '…'}",
        "对账单成功笔数 statement lines paid": str(len(succeeded)),
        "对账单金额 statement total": format_fen(Fen(sum(line.amount_fen for line in succeeded))),
        "账本已付笔数 ledger paid in scope": str(len(paid_here)),
        "账本金额 ledger total": format_fen(Fen(sum(amount for _, amount, _ in paid_here))),
        "差异 differences": str(len(differences)),
    }
    return differences, summary


def difference_json(difference: Difference) -> dict[str, Any]:
    def money(fen: int | None) -> str | None:
        return None if fen is None else format_fen(Fen(fen))

    return {
        "kind": difference.kind,
        "withdrawal": difference.withdrawal,
        "ledger_amount": money(difference.ledger_amount_fen),
        "channel_amount": money(difference.channel_amount_fen),
        "ledger_status": difference.ledger_status,
        "references": list(difference.references),
        "rows": list(difference.rows),
        "detail": difference.detail,
    }


def differences_text(differences: Sequence[Difference]) -> list[str]:
    """One line per difference, for the command line."""
    return [
        f"{d.kind}\t{d.withdrawal}\tledger {money_or_dash(d.ledger_amount_fen)}"
        f"\tchannel {money_or_dash(d.channel_amount_fen)}\t{d.detail}"
        for d in differences
    ]


def money_or_dash(fen: int | None) -> str:
    return "-" if fen is None else format_fen(Fen(fen))
