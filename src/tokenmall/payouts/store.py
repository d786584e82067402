"""The payout tables (ledger/schema.py, migration 0008): who holds which approved withdrawal,
the bank batches, the imported result files, the outbox and the callbacks seen.

The claim is the guarantee. An approved withdrawal is handed to at most one channel: the row
in `payouts` is inserted once (its primary key is the withdrawal), by the dispatcher (webhook),
a bank export (manual) or a person rejecting or reporting it by hand, and whoever inserts it
owns the withdrawal from then on. So a withdrawal in a bank file is never also sent to the
payout service, and one sent to either is never rejected while the money may be on its way.

These tables are written by the server's process and the command line directly (not through
the ledger's writer): they record what happened outside the ledger. Every balance still moves
only by journal entries.
"""

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from tokenmall.ledger.ledger import timestamp
from tokenmall.ledger.schema import (
    hook_cursors,
    journal,
    outbox,
    payout_batches,
    payout_imports,
    payouts,
    webhooks_seen,
    withdrawal_list,
)
from tokenmall.ledger.store import Store, insert_once
from tokenmall.payouts.payee import Payee, parse_payee, payee_json

# Channels (payouts.channel) and the states of a claim (payouts.state).
MANUAL = "manual"  # a bank batch file (批量代发), then the bank's result file
WEBHOOK = "webhook"  # a signed request to a payout service, from the outbox
BY_HAND = "by_hand"  # a person rejects it, or reports its outcome, through the API
CHANNELS = (MANUAL, WEBHOOK)
EXPORTED, SENDING, HELD, DONE = "exported", "sending", "held", "done"

# Outbox states: pending (to send), waiting (the service took it, its outcome is to come; sent
# again later as the query), delivered (nothing more to send).
PENDING, WAITING, DELIVERED = "pending", "waiting", "delivered"


class ApprovedWithdrawal(NamedTuple):
    """An approved withdrawal no channel holds yet, with the payee its request named."""

    id: str
    account: str
    amount_fen: int
    requested_seq: int
    payee: Payee | None  # None: the request named none that can be paid


class PayoutRow(NamedTuple):
    withdrawal: str
    channel: str
    state: str
    account: str
    amount_fen: int
    payee: str | None
    batch: str | None
    outcome: str | None
    reference: str | None
    claimed_by: str
    created_at: str
    updated_at: str


class OutboxRow(NamedTuple):
    id: str
    topic: str
    body: str
    created_at: str
    state: str
    attempts: int
    next_attempt_ms: int
    last_status: int | None
    last_error: str | None


_SELECT_PAYOUTS = sa.select(*(payouts.c[name] for name in PayoutRow._fields))
_SELECT_OUTBOX = sa.select(*(outbox.c[name] for name in OutboxRow._fields))


def now_text() -> str:
    return timestamp(datetime.now(UTC))


class PayoutStore:
    """The payout tables of one ledger, over its store's connections."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """A short transaction of its own (never the ledger writer's)."""
        with self.store.writing_now() as connection:
            yield connection

    # -- approved withdrawals and their claims ---------------------------------------------------

    def approved_unclaimed(
        self, after_seq: int, limit: int, ids: Sequence[str] | None = None
    ) -> list[ApprovedWithdrawal]:
        """Approved withdrawals that no channel holds, by request, after `after_seq` (only
        those of `ids`, if given)."""
        chosen = () if ids is None else (withdrawal_list.c.id.in_(list(ids)),)
        with self.store.reading() as connection:
            rows = connection.execute(
                sa.select(
                    withdrawal_list.c.id,
                    withdrawal_list.c.account,
                    withdrawal_list.c.amount_fen,
                    withdrawal_list.c.requested_seq,
                    journal.c.command,
                )
                .join(journal, journal.c.seq == withdrawal_list.c.requested_seq)
                .outerjoin(payouts, payouts.c.withdrawal == withdrawal_list.c.id)
                .where(
                    withdrawal_list.c.status == "approved",
                    withdrawal_list.c.requested_seq > after_seq,
                    payouts.c.withdrawal.is_(None),
                    *chosen,
                )
                .order_by(withdrawal_list.c.requested_seq)
                .limit(limit)
            ).all()
        return [
            ApprovedWithdrawal(id_, account, amount_fen, seq, _payee_of(command))
            for id_, account, amount_fen, seq, command in rows
        ]

    def each_approved_unclaimed(self, page: int = 1_000) -> Iterator[ApprovedWithdrawal]:
        """Every approved withdrawal no channel holds, a page at a time (those another
        channel's route leaves waiting do not hide the ones after them)."""
        after_seq = 0
        while True:
            found = self.approved_unclaimed(after_seq, page)
            yield from found
            if len(found) < page:
                return
            after_seq = found[-1].requested_seq

    def withdrawals(self, ids: Sequence[str]) -> dict[str, tuple[str, int, str | None]]:
        """(status, amount_fen, reference) of each of `ids` the ledger knows."""
        table = withdrawal_list
        query = sa.select(table.c.id, table.c.status, table.c.amount_fen, table.c.reference)
        with self.store.reading() as connection:
            rows = _rows_of(connection, query, table.c.id, ids)
            return {id_: (status, amount, ref) for id_, status, amount, ref in rows}

    def paid_by_channel(
        self, channel: str, since: str | None, until: str | None
    ) -> list[tuple[str, int, str | None]]:
        """(id, amount_fen, reference) of the withdrawals the channel held that the ledger
        shows paid, on UTC days since..until (the day of the entry that completed them)."""
        query = (
            sa.select(
                withdrawal_list.c.id, withdrawal_list.c.amount_fen, withdrawal_list.c.reference
            )
            .join(payouts, payouts.c.withdrawal == withdrawal_list.c.id)
            .join(journal, journal.c.seq == withdrawal_list.c.updated_seq)
            .where(payouts.c.channel == channel, withdrawal_list.c.status == "paid")
        )
        if since is not None:
            query = query.where(journal.c.recorded_at >= since)
        if until is not None:  # recorded_at is fixed-width UTC text: the day is a prefix
            query = query.where(journal.c.recorded_at < until + "U")
        with self.store.reading() as connection:
            return [(row[0], row[1], row[2]) for row in connection.execute(query)]

    @staticmethod
    def claim(
        connection: sa.Connection,
        withdrawal: ApprovedWithdrawal,
        channel: str,
        state: str,
        actor: str,
        batch: str | None = None,
    ) -> bool:
        """Take the withdrawal for `channel`; False if someone holds it already."""
        payee = None if withdrawal.payee is None else json.dumps(payee_json(withdrawal.payee))
        values = _claim(withdrawal.id, channel, state, actor, withdrawal.account)
        values |= {"amount_fen": withdrawal.amount_fen, "payee": payee, "batch": batch}
        return insert_once(connection, payouts, values)

    def claim_by_hand(self, withdrawal_id: str, actor: str) -> PayoutRow | None:
        """Hold a withdrawal for a person's decision (a rejection, an outcome reported by
        hand): None if it is now held by hand (by this call or an earlier one), else the
        channel's claim that stands in the way."""
        with self.writing() as connection:
            if insert_once(connection, payouts, _claim(withdrawal_id, BY_HAND, HELD, actor)):
                return None
            row = self._payout(connection, withdrawal_id)
        if row is None or row.channel == BY_HAND or row.state == DONE:
            return None
        return row

    def release_by_hand(self, withdrawal_id: str) -> None:
        """Give up a claim by hand whose command was not applied (so a channel may take the
        withdrawal again)."""
        with self.writing() as connection:
            connection.execute(
                payouts.delete().where(
                    payouts.c.withdrawal == withdrawal_id,
                    payouts.c.channel == BY_HAND,
                    payouts.c.state == HELD,
                )
            )

    def payout(self, withdrawal_id: str) -> PayoutRow | None:
        with self.store.reading() as connection:
            return self._payout(connection, withdrawal_id)

    @staticmethod
    def _payout(connection: sa.Connection, withdrawal_id: str) -> PayoutRow | None:
        row = connection.execute(
            _SELECT_PAYOUTS.where(payouts.c.withdrawal == withdrawal_id)
        ).first()
        return None if row is None else PayoutRow(*row)

    def payouts_in(self, batch: str) -> list[PayoutRow]:
        with self.store.reading() as connection:
            rows = connection.execute(
                _SELECT_PAYOUTS.where(payouts.c.batch == batch).order_by(payouts.c.withdrawal)
            ).all()
        return [PayoutRow(*row) for row in rows]

    def payouts_by_channel(
        self, channel: str | None, state: str | None, limit: int
    ) -> list[PayoutRow]:
        """The newest `limit` claims (of a channel, in a state), oldest first."""
        query = _SELECT_PAYOUTS
        if channel is not None:
            query = query.where(payouts.c.channel == channel)
        if state is not None:
            query = query.where(payouts.c.state == state)
        newest = query.order_by(payouts.c.created_at.desc(), payouts.c.withdrawal.desc())
        with self.store.reading() as connection:
            rows = connection.execute(newest.limit(limit)).all()
        return [PayoutRow(*row) for row in reversed(rows)]

    def finish(self, withdrawal_id: str, outcome: str | None, reference: str | None) -> None:
        """The ledger holds the withdrawal's outcome: the claim is done."""
        self.finish_all([(withdrawal_id, outcome, reference)])

    def finish_all(self, finished: Sequence[tuple[str, str | None, str | None]]) -> None:
        """Each (withdrawal, outcome, reference) is in the ledger: their claims are done."""
        if not finished:
            return
        now = now_text()
        with self.writing() as connection:
            for withdrawal_id, outcome, reference in finished:
                connection.execute(
                    payouts.update()
                    .where(payouts.c.withdrawal == withdrawal_id)
                    .values(state=DONE, outcome=outcome, reference=reference, updated_at=now)
                )

    def payouts_of(self, ids: Sequence[str]) -> dict[str, PayoutRow]:
        """The claims on any of `ids`, by withdrawal."""
        with self.store.reading() as connection:
            rows = _rows_of(connection, _SELECT_PAYOUTS, payouts.c.withdrawal, ids)
            return {row[0]: PayoutRow(*row) for row in rows}

    # -- bank batches and imports ----------------------------------------------------------------

    @staticmethod
    def next_batch_id(connection: sa.Connection, day: str) -> str:
        """B + the UTC day + a number, one more than the day's last (B20261201-003)."""
        prefix = f"B{day.replace('-', '')}-"
        last = connection.execute(
            sa.select(sa.func.max(payout_batches.c.id)).where(
                payout_batches.c.id.like(prefix + "%")
            )
        ).scalar_one_or_none()
        number = 1 if last is None else int(last.rsplit("-", 1)[1]) + 1
        return f"{prefix}{number:03d}"

    @staticmethod
    def add_batch(
        connection: sa.Connection, batch: str, actor: str, lines: int, total_fen: int
    ) -> None:
        connection.execute(
            payout_batches.insert().values(
                id=batch,
                created_at=now_text(),
                created_by=actor[:80],
                lines=lines,
                total_fen=total_fen,
            )
        )

    def batches(self, limit: int) -> list[dict[str, Any]]:
        with self.store.reading() as connection:
            rows = connection.execute(
                sa.select(payout_batches).order_by(payout_batches.c.id.desc()).limit(limit)
            ).all()
        return [dict(row._mapping) for row in rows]

    def batch(self, batch: str) -> dict[str, Any] | None:
        with self.store.reading() as connection:
            row = connection.execute(
                sa.select(payout_batches).where(payout_batches.c.id == batch)
            ).first()
        return None if row is None else dict(row._mapping)

    def import_report(self, sha256: str) -> dict[str, Any] | None:
        """The report of the file with this digest, if it was imported before."""
        with self.store.reading() as connection:
            row = connection.execute(
                sa.select(payout_imports).where(payout_imports.c.sha256 == sha256)
            ).first()
        if row is None:
            return None
        report: dict[str, Any] = json.loads(row.report)
        return report

    def save_import(self, sha256: str, filename: str, actor: str, report: dict[str, Any]) -> None:
        with self.writing() as connection:
            insert_once(
                connection,
                payout_imports,
                {
                    "sha256": sha256,
                    "filename": filename[:200],
                    "imported_at": now_text(),
                    "imported_by": actor[:80],
                    "report": json.dumps(report, ensure_ascii=False),
                },
            )

    # -- the outbox --------------------------------------------------------------------------------

    @staticmethod
    def enqueue(connection: sa.Connection, message_id: str, topic: str, body: bytes) -> bool:
        """A message to send, once: the same id is never queued twice."""
        return insert_once(
            connection,
            outbox,
            {
                "id": message_id,
                "topic": topic,
                "body": body.decode("utf-8"),
                "created_at": now_text(),
                "state": PENDING,
                "attempts": 0,
                "next_attempt_ms": 0,
                "last_status": None,
                "last_error": None,
            },
        )

    def due(self, now_ms: int, limit: int) -> list[OutboxRow]:
        """Messages to send now, the longest waiting first."""
        with self.store.reading() as connection:
            rows = connection.execute(
                _SELECT_OUTBOX.where(
                    outbox.c.state != DELIVERED, outbox.c.next_attempt_ms <= now_ms
                )
                .order_by(outbox.c.next_attempt_ms, outbox.c.id)
                .limit(limit)
            ).all()
        return [OutboxRow(*row) for row in rows]

    def messages(self, topic: str | None = None) -> list[OutboxRow]:
        query = _SELECT_OUTBOX
        if topic is not None:
            query = query.where(outbox.c.topic == topic)
        with self.store.reading() as connection:
            return [OutboxRow(*row) for row in connection.execute(query.order_by(outbox.c.id))]

    def messages_of(self, ids: Sequence[str]) -> dict[str, OutboxRow]:
        """The outbox messages with any of these ids, by id."""
        with self.store.reading() as connection:
            rows = _rows_of(connection, _SELECT_OUTBOX, outbox.c.id, ids)
            return {row[0]: OutboxRow(*row) for row in rows}

    def attempted(
        self,
        message_id: str,
        state: str,
        next_attempt_ms: int,
        status: int | None,
        error: str | None,
    ) -> None:
        with self.writing() as connection:
            connection.execute(
                outbox.update()
                .where(outbox.c.id == message_id)
                .values(
                    state=state,
                    attempts=outbox.c.attempts + 1,
                    next_attempt_ms=next_attempt_ms,
                    last_status=status,
                    last_error=None if error is None else error[:500],
                )
            )

    def delivered(self, message_id: str) -> None:
        with self.writing() as connection:
            connection.execute(
                outbox.update().where(outbox.c.id == message_id).values(state=DELIVERED)
            )

    # -- callbacks seen, hook cursors ------------------------------------------------------------

    def remember(self, message_id: str, now_ms: int, keep_ms: int) -> bool:
        """Note a callback processed; False if it was already. Forgets those older than
        `keep_ms` (a replay that old is refused for its timestamp anyway)."""
        with self.writing() as connection:
            connection.execute(
                webhooks_seen.delete().where(webhooks_seen.c.received_ms < now_ms - keep_ms)
            )
            return insert_once(connection, webhooks_seen, {"id": message_id, "received_ms": now_ms})

    def forget(self, message_id: str) -> None:
        with self.writing() as connection:
            connection.execute(webhooks_seen.delete().where(webhooks_seen.c.id == message_id))

    @staticmethod
    def cursor(connection: sa.Connection, name: str) -> int:
        found = connection.execute(
            sa.select(hook_cursors.c.seq).where(hook_cursors.c.name == name)
        ).scalar_one_or_none()
        return 0 if found is None else int(found)

    @staticmethod
    def move_cursor(connection: sa.Connection, name: str, seq: int) -> None:
        if not insert_once(connection, hook_cursors, {"name": name, "seq": seq}):
            connection.execute(
                hook_cursors.update().where(hook_cursors.c.name == name).values(seq=seq)
            )


def _payee_of(command_text: str) -> Payee | None:
    """The payee the withdraw command named (the rules ignore it; the journal keeps it), if
    it is one that can be paid."""
    try:
        return parse_payee(json.loads(command_text).get("payee"))
    except ValueError:
        return None


def _claim(
    withdrawal: str, channel: str, state: str, actor: str, account: str = ""
) -> dict[str, Any]:
    """A claim's row; a claim by hand has no account, amount or payee of its own."""
    now = now_text()
    return {
        "withdrawal": withdrawal,
        "channel": channel,
        "state": state,
        "account": account,
        "amount_fen": 0,
        "payee": None,
        "batch": None,
        "claimed_by": actor[:80],
        "created_at": now,
        "updated_at": now,
    }


def _rows_of(
    connection: sa.Connection, query: sa.Select[Any], column: sa.Column[Any], ids: Sequence[str]
) -> Iterator[Any]:
    """The rows of `query` whose `column` is one of `ids`, asked 500 ids at a time (a bound
    parameter each)."""
    unique = sorted(set(ids))
    for start in range(0, len(unique), 500):
        yield from connection.execute(query.where(column.in_(unique[start : start + 500])))
