"""Payout channels behind one small interface: a channel takes approved withdrawals (a claim
each, payouts/store.py) and later says, for each, paid or failed; `apply_outcome` turns that
into the ledger's complete_withdrawal or fail_withdrawal, once.

- `manual` (银行批量代发): finance exports the approved withdrawals as a bank batch file, pays
  it in the bank's web banking, and imports the bank's result file.
- `webhook`: each approved withdrawal is sent to a payout service as a signed request
  (Standard Webhooks) from the outbox; the answer, or the service's signed callback, says
  how it went.

Which channel takes a withdrawal is configured per payee method (bank card, WeChat 零钱,
Alipay): `Routes`. How "at most once" holds is in docs/payouts.md.
"""

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from tokenmall.core.units import Fen, format_fen
from tokenmall.ledger.ledger import IDEMPOTENCY_CONFLICT, Ledger, Result, Submission
from tokenmall.payouts.files import BankLine, BatchLine, read_bank_file, write_batch
from tokenmall.payouts.payee import METHODS, Payee, parse_payee, payee_json
from tokenmall.payouts.store import (
    DONE,
    EXPORTED,
    MANUAL,
    SENDING,
    WEBHOOK,
    ApprovedWithdrawal,
    PayoutRow,
    PayoutStore,
)

Submit = Callable[[Submission], Awaitable[Result]]
SubmitAll = Callable[[list[Submission]], Awaitable[list[Result]]]

OUTCOME_KEY = "payout:{}"  # one idempotency key per withdrawal, whichever way its outcome comes
PAYOUT_TOPIC, EXCHANGE_TOPIC = "payout", "exchange"
EXPORT_MAX = 5_000  # withdrawals in one bank batch file
REASON_CHARS_MAX = 200
REFERENCE = re.compile(r"[\w.:@-]{1,64}")  # SPEC v2: a reference is a valid id

# What became of an outcome (a result file's line, a service's answer, a callback).
APPLIED = "applied"  # the ledger applied it now
ALREADY = "already_applied"  # it had been applied before: nothing changed
UNKNOWN = "unknown_withdrawal"  # the ledger has no such withdrawal
NOT_HELD = "not_this_channel"  # this channel does not hold the withdrawal
AMOUNT_DIFFERS = "amount_differs"
CONFLICT = "conflict"  # contradicts the outcome the ledger already has
BAD_REFERENCE = "invalid_reference"
TWICE = "twice_in_file"
FINAL = frozenset({APPLIED, ALREADY})


@dataclass(frozen=True)
class Routes:
    """The channel for each payee method; a method not named goes to `manual`."""

    by_method: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for method, channel in self.by_method.items():
            if method not in METHODS or channel not in (MANUAL, WEBHOOK):
                raise ValueError(f"route {method}={channel}: methods {', '.join(METHODS)}")

    def channel_of(self, payee: Payee | None) -> str:
        """A withdrawal without a payee that can be paid goes to the bank's export, which
        lists it for finance to reject."""
        return MANUAL if payee is None else self.by_method.get(payee.method, MANUAL)

    @classmethod
    def parse(cls, items: Sequence[str], webhook_configured: bool) -> "Routes":
        """From METHOD=CHANNEL items. With a payout service configured and no route given,
        every method goes to it."""
        if not items:
            channel = WEBHOOK if webhook_configured else MANUAL
            return cls(dict.fromkeys(METHODS, channel))
        routes: dict[str, str] = {}
        for item in items:
            method, _, channel = item.partition("=")
            routes[method.strip()] = channel.strip()
        made = cls(routes)
        if WEBHOOK in routes.values() and not webhook_configured:
            raise ValueError("a route names the webhook channel, but no payout service is set")
        return made


def ledger_submitter(ledger: Ledger) -> SubmitAll:
    """Submissions applied by a ledger opened in this process (the command line), in
    batches of its size."""

    async def submit_all(submissions: list[Submission]) -> list[Result]:
        size = ledger.settings.batch_max
        results: list[Result] = []
        for start in range(0, len(submissions), size):
            results += ledger.execute(submissions[start : start + size])
        return results

    return submit_all


@dataclass(frozen=True)
class Outcome:
    """A channel's word on one withdrawal."""

    withdrawal: str
    paid: bool
    amount_fen: int | None  # as the channel states it (None: it did not say)
    reference: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    code: str  # APPLIED, ALREADY or why nothing changed
    detail: str
    seq: int | None = None  # the journal entry holding the outcome
    withdrawal: str = ""  # for NOT_HELD: the withdrawal no channel here holds

    @property
    def final(self) -> bool:
        return self.code in FINAL


async def apply_outcome(
    payouts: PayoutStore, submit: Submit, outcome: Outcome, channel: str, actor: str
) -> Verdict:
    """Complete or fail the withdrawal as the channel says, at most once: only the channel
    holding it may report, the amount must be the one handed over, and the command carries
    the key `payout:<id>` (a second report, by any path, is the first one's replay)."""
    held = await asyncio.to_thread(payouts.payout, outcome.withdrawal)
    judged = judge(outcome, held, channel, actor)
    if isinstance(judged, Verdict):
        return await _unknown_or(payouts, judged)
    verdict = settle(outcome, await submit(judged))
    if verdict.final:
        await asyncio.to_thread(payouts.finish_all, [_finished(outcome)])
    return verdict


async def _unknown_or(payouts: PayoutStore, verdict: Verdict) -> Verdict:
    """A refusal for want of a claim: "no such withdrawal" if the ledger has none either."""
    if verdict.code == NOT_HELD:
        known = await asyncio.to_thread(payouts.withdrawals, [verdict.withdrawal])
        if not known:
            return Verdict(UNKNOWN, f"no withdrawal {verdict.withdrawal!r}")
    return verdict


def judge(
    outcome: Outcome, held: PayoutRow | None, channel: str, actor: str
) -> Verdict | Submission:
    """Why the outcome changes nothing, or the command that applies it."""
    withdrawal = outcome.withdrawal
    if held is None or held.channel != channel:
        holder = "no channel" if held is None else f"the {held.channel} channel"
        detail = f"{withdrawal} is held by {holder}, not by {channel}"
        return Verdict(NOT_HELD, detail, withdrawal=withdrawal)
    if outcome.amount_fen is not None and outcome.amount_fen != held.amount_fen:
        return Verdict(
            AMOUNT_DIFFERS,
            f"{withdrawal}: the channel says {format_fen(Fen(outcome.amount_fen))}, "
            f"it was handed {format_fen(Fen(held.amount_fen))}",
        )
    said = _said(outcome)
    if held.state == DONE:  # the ledger has its outcome (the key may have expired since)
        if held.outcome == said:
            return Verdict(ALREADY, f"{withdrawal} was {said} before")
        return Verdict(CONFLICT, f"{withdrawal} was {held.outcome} before; now {said}?")
    if outcome.paid and not REFERENCE.fullmatch(outcome.reference):
        return Verdict(BAD_REFERENCE, f"{withdrawal}: reference {outcome.reference[:80]!r}")
    command: dict[str, Any] = (
        {"op": "complete_withdrawal", "id": withdrawal, "reference": outcome.reference}
        if outcome.paid
        else {"op": "fail_withdrawal", "id": withdrawal}
    )
    if not outcome.paid and outcome.reason:
        command["reason"] = outcome.reason[:REASON_CHARS_MAX]
    return Submission.of(command, OUTCOME_KEY.format(withdrawal), actor)


def settle(outcome: Outcome, result: Result) -> Verdict:
    """What the ledger's answer to an outcome's command means."""
    withdrawal, said = outcome.withdrawal, _said(outcome)
    if result.ok:
        code = ALREADY if result.replayed else APPLIED
        return Verdict(code, f"{withdrawal} {said}", result.seq)
    if result.outcome == IDEMPOTENCY_CONFLICT:
        return Verdict(CONFLICT, f"{withdrawal}: the ledger has the other outcome")
    return Verdict(result.outcome, f"{withdrawal}: the ledger refused it", result.seq)


def _said(outcome: Outcome) -> str:
    return "paid" if outcome.paid else "failed"


def _finished(outcome: Outcome) -> tuple[str, str, str | None]:
    return outcome.withdrawal, _said(outcome), outcome.reference or None


# -- manual: bank batch files ------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    batch: str | None  # None when there was nothing to export
    lines: int
    total_fen: int
    skipped: list[dict[str, str]]  # approved withdrawals left out, and why


def export_batch(
    payouts: PayoutStore,
    routes: Routes,
    actor: str,
    limit: int = EXPORT_MAX,
    ids: Sequence[str] | None = None,
) -> Export:
    """Claim every approved withdrawal routed to the bank (up to `limit`) for a new batch,
    or, when finance names them (`ids`), those withdrawals whatever their route. A withdrawal
    without a usable payee is left out and listed: it cannot be paid."""
    if ids is None:
        candidates = []
        for w in payouts.each_approved_unclaimed():
            if routes.channel_of(w.payee) == MANUAL:
                candidates.append(w)
                if len(candidates) >= limit:
                    break
        skipped = []
    else:
        candidates = payouts.approved_unclaimed(0, len(ids), ids)
        found = {w.id for w in candidates}
        skipped = [
            {"withdrawal": id_, "reason": "not approved, or a channel holds it already"}
            for id_ in ids
            if id_ not in found
        ]
    skipped += [
        {"withdrawal": w.id, "reason": "no usable payee (收款账户) in the request: reject it"}
        for w in candidates
        if w.payee is None
    ]
    payable = [w for w in candidates if w.payee is not None][:limit]
    if not payable:
        return Export(None, 0, 0, skipped)
    with payouts.writing() as connection:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        batch = payouts.next_batch_id(connection, day)
        taken = [
            w for w in payable if payouts.claim(connection, w, MANUAL, EXPORTED, actor, batch=batch)
        ]
        total_fen = sum(w.amount_fen for w in taken)
        if taken:
            payouts.add_batch(connection, batch, actor, len(taken), total_fen)
    if not taken:
        return Export(None, 0, 0, skipped)
    return Export(batch, len(taken), total_fen, skipped)


def batch_file(payouts: PayoutStore, batch: str, fmt: Literal["csv", "xlsx"]) -> bytes | None:
    """The batch's file, the same bytes every time it is asked for; None if no such batch."""
    if payouts.batch(batch) is None:
        return None
    lines = []
    for row in payouts.payouts_in(batch):
        assert row.payee is not None, "a batch holds only withdrawals with a payee"
        lines.append(BatchLine(row.withdrawal, row.amount_fen, parse_payee(json.loads(row.payee))))
    return write_batch(lines, fmt, batch)


async def import_results(
    payouts: PayoutStore, submit_all: SubmitAll, data: bytes, filename: str, actor: str
) -> dict[str, Any]:
    """Apply a bank result file: each line completes or fails its withdrawal once. The same
    file imported again applies nothing and shows its first report. FileProblem (a
    ValueError) for a file that cannot be read; nothing is applied then.

    Every line is judged first, then the outcomes go to the ledger together (the writer
    commits them in as few transactions as its batches allow): a kill part way leaves some
    applied, and the same file again applies the rest, each line's key replaying the others."""
    # The reads and the parsing run on a thread: in the server, the event loop goes on.
    digest = hashlib.sha256(data).hexdigest()
    earlier = await asyncio.to_thread(payouts.import_report, digest)
    if earlier is not None:
        return {**earlier, "imported_before": True}
    lines = await asyncio.to_thread(read_bank_file, data, filename)
    held = await asyncio.to_thread(payouts.payouts_of, [line.withdrawal for line in lines])
    judged: list[Verdict | Submission] = []
    seen: set[str] = set()
    for line in lines:
        if line.withdrawal in seen:
            judged.append(Verdict(TWICE, f"{line.withdrawal} is on an earlier line of this file"))
            continue
        seen.add(line.withdrawal)
        judged.append(judge(_outcome_of(line), held.get(line.withdrawal), MANUAL, actor))
    submissions = [item for item in judged if isinstance(item, Submission)]
    answers = iter(await submit_all(submissions) if submissions else [])
    verdicts: list[Verdict] = []
    finished = []
    for line, item in zip(lines, judged, strict=True):
        if isinstance(item, Submission):
            verdict = settle(_outcome_of(line), next(answers))
            if verdict.final:
                finished.append(_finished(_outcome_of(line)))
        else:
            verdict = await _unknown_or(payouts, item)
        verdicts.append(verdict)
    await asyncio.to_thread(payouts.finish_all, finished)
    results = [
        {
            "row": line.row,
            "withdrawal": line.withdrawal,
            "outcome": "paid" if line.succeeded else "failed",
            "result": verdict.code,
            "detail": verdict.detail,
            "seq": verdict.seq,
        }
        for line, verdict in zip(lines, verdicts, strict=True)
    ]
    report = {
        "file": filename,
        "sha256": digest,
        "lines": len(lines),
        "applied": sum(1 for r in results if r["result"] == APPLIED),
        "already_applied": sum(1 for r in results if r["result"] == ALREADY),
        "refused": sum(1 for r in results if r["result"] not in FINAL),
        "results": results,
    }
    await asyncio.to_thread(payouts.save_import, digest, filename, actor, report)
    return {**report, "imported_before": False}


def _outcome_of(line: BankLine) -> Outcome:
    return Outcome(line.withdrawal, line.succeeded, line.amount_fen, line.reference, line.reason)


# -- webhook: the payout service ---------------------------------------------------------------


def payout_headers(withdrawal: str) -> dict[str, str]:
    """Headers beside the signature's: the idempotency key payout services dedupe on."""
    return {"content-type": "application/json", "idempotency-key": withdrawal}


def payout_message_id(withdrawal: str) -> str:
    """The webhook-id of a withdrawal's payout request: the same on every retry."""
    return f"payout_{withdrawal}"


def payout_request_body(w: ApprovedWithdrawal, payee: Payee) -> bytes:
    """The request body, fixed when the payout is queued: every retry sends these bytes."""
    body = {
        "type": "payout.requested",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": {
            "withdrawal": w.id,
            "account": w.account,
            "amount": format_fen(Fen(w.amount_fen)),
            "amount_fen": w.amount_fen,
            "currency": "CNY",
            "payee": payee_json(payee),
        },
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def enqueue_payouts(payouts: PayoutStore, routes: Routes, limit: int) -> int:
    """Claim approved withdrawals routed to the payout service and queue their requests (the
    claim and the message in one transaction: after a crash, both or neither)."""
    queued = 0
    for w in payouts.each_approved_unclaimed():
        payee = w.payee
        if routes.channel_of(payee) != WEBHOOK or payee is None:
            continue  # the bank's, or no payee: left for finance (the review list shows it)
        if queued >= limit:
            break
        with payouts.writing() as connection:
            if payouts.claim(connection, w, WEBHOOK, SENDING, "channel:webhook"):
                payouts.enqueue(
                    connection, payout_message_id(w.id), PAYOUT_TOPIC, payout_request_body(w, payee)
                )
                queued += 1
    return queued


def outcome_of_answer(withdrawal: str, amount_fen: int, answer: object) -> Outcome | None:
    """What the service's answer says: paid or failed, or None (processing, or unreadable)."""
    if not isinstance(answer, dict):
        return None
    status = answer.get("status")
    if status == "paid":
        return Outcome(withdrawal, True, amount_fen, str(answer.get("reference", "")))
    if status == "failed":
        return Outcome(withdrawal, False, amount_fen, "", str(answer.get("reason", ""))[:200])
    return None


def outcome_of_callback(body: bytes) -> Outcome | str:
    """A callback's outcome, or why it is malformed."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return "the body is not JSON"
    data = message.get("data") if isinstance(message, dict) else None
    kind = message.get("type") if isinstance(message, dict) else None
    if kind not in ("payout.paid", "payout.failed") or not isinstance(data, dict):
        return 'type must be "payout.paid" or "payout.failed", with data'
    withdrawal, amount_fen = data.get("withdrawal"), data.get("amount_fen")
    if not isinstance(withdrawal, str) or not REFERENCE.fullmatch(withdrawal):
        return "data.withdrawal must be a withdrawal id"
    if type(amount_fen) is not int or amount_fen < 0:
        return "data.amount_fen must be an integer of fen"
    reference, reason = data.get("reference", ""), data.get("reason", "")
    if not isinstance(reference, str) or not isinstance(reason, str):
        return "data.reference and data.reason must be strings"
    return Outcome(withdrawal, kind == "payout.paid", amount_fen, reference, reason[:200])
