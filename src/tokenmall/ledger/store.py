"""Database access for the ledger: URLs, connections, migrations, the writer lock, and every
query. Nothing here knows the rules; `ledger.py` drives it.

SQLite runs in WAL mode with `synchronous=FULL`: a commit is on disk (the WAL fsynced) before it
returns, so nothing is acknowledged that a power cut could take back. PostgreSQL commits are
durable by default (`synchronous_commit=on`).
"""

import fcntl
import hashlib
import json
import operator
import os
import re
import stat
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError as AlembicCommandError
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from tokenmall.ledger.projections import (
    BLOCK_SLOTS,
    DAY_SUMS,
    PAYMENT_BYTES,
    DayTotals,
    DividendBlock,
    ItemMoveRow,
    PriceDayRow,
    Projection,
    StatementRow,
    WithdrawalRow,
    stored_account,
    with_dividend,
)
from tokenmall.ledger.schema import (
    consumer_slots,
    day_totals,
    dividend_blocks,
    ingest_sources,
    item_moves,
    journal,
    ledger_head,
    ledger_meta,
    payments,
    price_days,
    snapshots,
    statement_lines,
    withdrawal_list,
)

DEFAULT_DB = "tokenmall.db"
# Everything the writer keeps beside the journal and rebuilds from it.
READ_MODEL_TABLES = (
    statement_lines,
    price_days,
    consumer_slots,
    dividend_blocks,
    withdrawal_list,
    item_moves,
    day_totals,
)
DB_ENV = "TOKENMALL_DB"
MIGRATIONS = Path(__file__).parent / "migrations"
# pg_try_advisory_lock's key: "tokenmal" in ASCII, so that it is recognisable in pg_locks.
PG_WRITER_LOCK_KEY = 0x746F6B656E6D616C
# Rows fetched per round trip when streaming the journal; IN lists per key lookup.
FETCH_ROWS = 5_000
FIRST_SEQ_MIN = -(2**63)  # below every BIGINT
_FIRST = operator.itemgetter(0)
KEYS_PER_QUERY = 500


IMMEDIATE_OPTION = "tokenmall_immediate"  # SQLite: begin with the write lock (Store.writing_now)


class StoreError(Exception):
    """The store cannot be used as asked (missing, unreachable, locked, damaged): one line."""


class JournalRow(NamedTuple):
    seq: int
    recorded_at: str
    idem_key: str | None
    outcome: str
    command: str
    hash: str
    actor: str | None  # who submitted it; None in entries journaled before actors were kept


@dataclass(frozen=True)
class LedgerMeta:
    chain_format: str
    params_json: str
    genesis_hash: str
    created_at: str
    spec_v2_from: int = 1  # entries before it are replayed under SPEC v1's checks


@dataclass(frozen=True)
class Snapshot:
    seq: int
    hash: str
    state: dict[str, Any]


def resolve_url(db: str | None) -> str:
    """--db, else $TOKENMALL_DB, else tokenmall.db in the working directory. A plain path is a
    SQLite file; postgresql:// URLs use psycopg 3. StoreError if it is malformed."""
    if db is not None and not db.strip():
        # An empty --db is a mistake (an unset shell variable), not a request for the default.
        raise StoreError("--db is empty: give a file path or a database URL")
    value = db or os.environ.get(DB_ENV) or DEFAULT_DB
    if "://" not in value:
        # A path is not a URL: a '?' in it would start the URL's options, a '%' an escape.
        return "sqlite:///" + value.replace("%", "%25").replace("?", "%3F")
    scheme, rest = value.split("://", 1)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        url = f"postgresql+psycopg://{rest}"
    elif scheme in ("sqlite", "sqlite+pysqlite"):
        url = value
    else:
        raise StoreError(
            f"unsupported database URL scheme {scheme!r} "
            "(use a file path, sqlite:/// or postgresql://)"
        )
    parse_url(url)  # now, so that every command refuses a malformed URL the same way
    return url


def parse_url(url: str) -> sa.URL:
    """The URL parsed; StoreError naming it (password hidden) if it cannot be."""
    try:
        return sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise StoreError(
            f"not a valid database URL: {_hide_password(url)} ({_why_malformed(url)})"
        ) from None


def _why_malformed(url: str) -> str:
    host_and_port = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    if host_and_port.count("[") != host_and_port.count("]"):
        return "an IPv6 host must be written [address], with both brackets"
    if ":" in host_and_port.rsplit("]", 1)[-1]:
        # make_url's only ValueError: int() of what follows the host's colon.
        return "the port after the host's ':' must be a number"
    return "expected scheme://user:password@host:port/database"


def _hide_password(url: str) -> str:
    """For a URL that make_url cannot parse (so cannot render without its password)."""
    return re.sub(r"^([^:/]*://[^:/@]*):[^@]*@", r"\1:***@", url)


def display_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return _hide_password(url)


class Store:
    """One database holding one ledger."""

    def __init__(self, url: str, *, create: bool) -> None:
        self.url = url
        parsed = parse_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.sqlite_path = _sqlite_path(parsed, create=create) if self.is_sqlite else None
        try:
            self.engine = _create_engine(url, self.is_sqlite)
        except (sa.exc.ArgumentError, sa.exc.SAWarning, ValueError, TypeError) as error:
            # The URL's ?options, which the driver checks.
            reason = first_line(error).split("; ")[0]  # SQLAlchemy's hint after it misleads
            raise StoreError(f"cannot use {display_url(url)}: {reason}") from None
        self._lock_file: Any = None  # SQLite: the flock'ed file
        self._lock_connection: sa.Connection | None = None  # PostgreSQL: the locked session
        self._inserts = {
            table: _Insert(table, columns, self.is_sqlite)
            for table, columns in (
                ("journal", JournalRow._fields),
                ("payments", ("payment_id", "seq")),
                ("statement_lines", StatementRow._fields),
                ("consumer_slots", ("account", "slot")),
                ("dividend_blocks", DividendBlock._fields),
                ("item_moves", ItemMoveRow._fields),
            )
        }
        marker = "?" if self.is_sqlite else "%s"
        # A withdrawal's request inserts its row; each later step updates the status (SQLite
        # 3.24+ and PostgreSQL share the upsert).
        self._upsert_withdrawal_sql = (
            f"INSERT INTO withdrawal_list ({', '.join(WithdrawalRow._fields)}) "
            f"VALUES ({', '.join([marker] * len(WithdrawalRow._fields))}) "
            "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
            "reference = excluded.reference, updated_seq = excluded.updated_seq"
        )
        # A batch adds its part of a day to the day's row (batches come in order: the row's
        # first entry stays, its last is the batch's).
        day_columns = ("day", "first_seq", "last_seq", *DAY_SUMS)
        self._upsert_day_sql = (
            f"INSERT INTO day_totals ({', '.join(day_columns)}) "
            f"VALUES ({', '.join([marker] * len(day_columns))}) "
            "ON CONFLICT (day) DO UPDATE SET last_seq = excluded.last_seq, "
            + ", ".join(f"{name} = day_totals.{name} + excluded.{name}" for name in DAY_SUMS)
        )
        made = create and self.sqlite_path is not None and _create_private(self.sqlite_path)
        try:
            with self.engine.connect() as connection:
                if self.is_sqlite:
                    _check_sqlite_json(connection)
        except Exception as error:
            self.engine.dispose()
            if made and self.sqlite_path is not None:  # a refused option: leave nothing behind
                self.sqlite_path.unlink(missing_ok=True)
            if isinstance(error, sa.exc.DBAPIError):  # unreachable server, not a database, ...
                raise StoreError(f"cannot open {display_url(url)}: {first_line(error)}") from None
            raise

    def close(self) -> None:
        self.release_writer_lock()
        self.engine.dispose()

    # -- schema ------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic); a no-op when it is current."""
        config = _alembic_config()
        try:
            with self.writing() as connection:
                config.attributes["connection"] = connection
                alembic_command.upgrade(config, "head")
        except AlembicCommandError:  # a revision it does not know: a newer tokenmall's ledger
            raise self._unknown_schema(self._current_revision()) from None

    def check_schema(self) -> None:
        script = ScriptDirectory.from_config(_alembic_config())
        current = self._current_revision()
        if current is None:
            raise StoreError(f"{display_url(self.url)} holds no tokenmall ledger")
        try:
            script.get_revision(current)
        except AlembicCommandError:
            raise self._unknown_schema(current) from None
        head = script.get_current_head()
        if current != head:
            raise StoreError(
                f"{display_url(self.url)} has schema {current}, this tokenmall needs {head}: "
                "run a writer (tokenmall ingest) once to migrate it"
            )

    def _current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def _unknown_schema(self, revision: str | None) -> StoreError:
        return StoreError(
            f"{display_url(self.url)} has schema {revision}, which this tokenmall does not know "
            "(was it made by a newer version?)"
        )

    # -- the single writer ---------------------------------------------------------------------

    def acquire_writer_lock(self) -> None:
        """Refuse to go on if another writer holds this ledger. Held until `close`; the
        operating system (SQLite) or the server (PostgreSQL) releases it if the process dies.

        On PostgreSQL every write goes through the session that holds the advisory lock: if that
        session dies (server restart, network), the lock is gone, and so is this writer's
        ability to commit, so two writers can never both commit."""
        if self.sqlite_path is not None:
            self._lock_file = _lock_file(Path(f"{self.sqlite_path}-writer.lock"))
            return
        connection = self.engine.connect()
        got = connection.execute(
            sa.select(sa.func.pg_try_advisory_lock(PG_WRITER_LOCK_KEY))
        ).scalar_one()
        connection.commit()
        if not got:
            connection.close()
            raise StoreError(
                f"another tokenmall writer holds {display_url(self.url)} "
                "(PostgreSQL advisory lock); stop it first"
            )
        self._lock_connection = connection

    def retake_lost_writer_lock(self) -> bool:
        """True if the PostgreSQL session holding the lock had died and the lock was taken
        again: another writer may have committed meanwhile, so the caller must reload. StoreError
        if another writer holds it now."""
        connection = self._lock_connection
        if connection is None or not connection.invalidated:
            return False
        self._lock_connection = None
        connection.close()
        self.acquire_writer_lock()
        return True

    def release_writer_lock(self) -> None:
        lock_file, self._lock_file = self._lock_file, None
        if lock_file is not None:
            lock_file.close()
        connection, self._lock_connection = self._lock_connection, None
        if connection is not None:
            connection.close()

    @contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """A transaction for the writer: committed when the block ends, rolled back on error."""
        if self._lock_connection is None:
            with self.engine.begin() as connection:
                yield connection
            return
        with self._lock_connection.begin():
            yield self._lock_connection

    @contextmanager
    def writing_now(self) -> Iterator[sa.Connection]:
        """A short transaction of a process other than the ledger's writer (the server's
        payout tables, tokens): on SQLite it holds the write lock from its start."""
        with (
            self.engine.connect().execution_options(**{IMMEDIATE_OPTION: True}) as connection,
            connection.begin(),
        ):
            yield connection

    # -- reads ---------------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection whose reads all see one consistent state of the database."""
        # PostgreSQL's default (READ COMMITTED) gives each statement its own view; SQLite's
        # read transaction is already one snapshot of the WAL.
        isolation = {} if self.is_sqlite else {"isolation_level": "REPEATABLE READ"}
        with (
            self.engine.connect().execution_options(**isolation) as connection,
            connection.begin(),
        ):
            yield connection

    @staticmethod
    def meta(connection: sa.Connection) -> LedgerMeta | None:
        row = connection.execute(sa.select(ledger_meta).where(ledger_meta.c.id == 1)).first()
        if row is None:
            return None
        return LedgerMeta(
            row.chain_format, row.params, row.genesis_hash, row.created_at, int(row.spec_v2_from)
        )

    @staticmethod
    def head(connection: sa.Connection) -> tuple[int, str]:
        rows = connection.execute(sa.select(ledger_head.c.seq, ledger_head.c.hash)).all()
        if len(rows) != 1:
            raise StoreError(f"the ledger's head row is {'missing' if not rows else 'duplicated'}")
        return int(rows[0].seq), str(rows[0].hash)

    @staticmethod
    def latest_snapshot(connection: sa.Connection, at_most_seq: int) -> Snapshot | None:
        row = connection.execute(
            sa.select(snapshots)
            .where(snapshots.c.seq <= at_most_seq)
            .order_by(snapshots.c.seq.desc())
            .limit(1)
        ).first()
        return None if row is None else _snapshot_from_row(row)

    @staticmethod
    def snapshots(connection: sa.Connection) -> Iterator[Snapshot]:
        rows = connection.execute(sa.select(snapshots).order_by(snapshots.c.seq))
        for row in rows:
            yield _snapshot_from_row(row)

    @staticmethod
    def journal_rows(
        connection: sa.Connection, after_seq: int = FIRST_SEQ_MIN
    ) -> Iterator[JournalRow]:
        """Journal entries after `after_seq` in seq order, streamed in chunks; by default all of
        them, even rows numbered 0 or below that only a tampering could have put there."""
        last = after_seq
        while True:
            chunk = connection.execute(
                sa.select(journal)
                .where(journal.c.seq > last)
                .order_by(journal.c.seq)
                .limit(FETCH_ROWS)
            ).all()
            for row in chunk:
                yield JournalRow(*row)
            if len(chunk) < FETCH_ROWS:
                return
            last = chunk[-1].seq

    @staticmethod
    def projected_seq(connection: sa.Connection) -> int:
        seq = connection.execute(sa.select(ledger_head.c.projected_seq)).scalar_one_or_none()
        return int(seq or 0)

    @staticmethod
    def statement(
        connection: sa.Connection, account: str, after_seq: int, limit: int
    ) -> tuple[str | None, list[tuple[int, str, str | None, str, str]]]:
        """An account's balances as of `after_seq` (None: no line yet) and its next `limit`
        lines after it: (seq, recorded_at, actor, op, balances). Dividend lines are derived
        from the settlements' blocks (ledger/projections.py)."""
        account = stored_account(account)
        before = connection.execute(
            sa.select(statement_lines.c.seq, statement_lines.c.balances)
            .where(statement_lines.c.account == account, statement_lines.c.seq <= after_seq)
            .order_by(statement_lines.c.seq.desc())
            .limit(1)
        ).one_or_none()
        written = connection.execute(
            sa.select(
                statement_lines.c.seq,
                journal.c.recorded_at,
                journal.c.actor,
                statement_lines.c.op,
                statement_lines.c.balances,
            )
            .join(journal, journal.c.seq == statement_lines.c.seq)
            .where(statement_lines.c.account == account, statement_lines.c.seq > after_seq)
            .order_by(statement_lines.c.seq)
            .limit(limit)
        ).all()
        lines: list[tuple[int, str, str | None, str, str | None, int]] = [
            (int(seq), str(at), actor, str(op), str(text), 0)
            for seq, at, actor, op, text in written
        ]
        before_text = None if before is None else str(before.balances)
        slot = connection.execute(
            sa.select(consumer_slots.c.slot).where(consumer_slots.c.account == account)
        ).scalar_one_or_none()
        if before is not None and slot is not None:  # dividends since its last line up to after_seq
            paid = Store._dividends(connection, int(slot), int(before.seq), after_seq, None)
            before_text = with_dividend(str(before.balances), sum(fen for _, _, _, fen in paid))
        if slot is not None and (before is not None or lines):
            shown = {line[0] for line in lines}
            for seq, at, actor, fen in Store._dividends(
                connection, int(slot), after_seq, None, limit
            ):
                if seq not in shown:
                    lines.append((seq, at, actor, "settle_day", None, fen))
            lines.sort(key=_FIRST)
        out, text = [], before_text
        for seq, at, actor, op, balances, fen in lines[:limit]:
            text = balances if balances is not None else with_dividend(text or "", fen)
            out.append((seq, at, actor, op, text))
        return before_text, out

    @staticmethod
    def _dividends(
        connection: sa.Connection,
        slot: int,
        after_seq: int,
        upto_seq: int | None,
        limit: int | None,
    ) -> list[tuple[int, str, str | None, int]]:
        """(seq, recorded_at, actor, fen) of each settlement in (after_seq, upto_seq] that paid
        `slot` something, in order."""
        payment = sa.func.substr(
            dividend_blocks.c.payments, slot % BLOCK_SLOTS * PAYMENT_BYTES + 1, PAYMENT_BYTES
        )
        query = (
            sa.select(dividend_blocks.c.seq, journal.c.recorded_at, journal.c.actor, payment)
            .join(journal, journal.c.seq == dividend_blocks.c.seq)
            .where(
                dividend_blocks.c.block == slot // BLOCK_SLOTS,
                dividend_blocks.c.seq > after_seq,
                # Nonzero: greater than eight zero bytes (a slot past the end reads empty).
                payment > sa.literal(bytes(PAYMENT_BYTES), sa.LargeBinary),
            )
            .order_by(dividend_blocks.c.seq)
        )
        if upto_seq is not None:
            query = query.where(dividend_blocks.c.seq <= upto_seq)
        if limit is not None:
            query = query.limit(limit)
        return [
            (int(seq), str(at), actor, int.from_bytes(bytes(data), "little"))
            for seq, at, actor, data in connection.execute(query)
        ]

    @staticmethod
    def first_statement_line(connection: sa.Connection, account: str) -> str | None:
        return connection.execute(
            sa.select(statement_lines.c.balances)
            .where(statement_lines.c.account == stored_account(account))
            .order_by(statement_lines.c.seq)
            .limit(1)
        ).scalar_one_or_none()

    @staticmethod
    def day_totals(connection: sa.Connection, day: str) -> DayTotals:
        """What the entries recorded on a UTC day did (all zero: it has none)."""
        row = connection.execute(sa.select(day_totals).where(day_totals.c.day == day)).first()
        return DayTotals(day) if row is None else DayTotals(**row._asdict())

    @staticmethod
    def price_days(connection: sa.Connection, after_day: int, limit: int) -> list[PriceDayRow]:
        rows = connection.execute(
            sa.select(*(price_days.c[name] for name in PriceDayRow._fields))
            .where(price_days.c.day > after_day)
            .order_by(price_days.c.day)
            .limit(limit)
        ).all()
        return [PriceDayRow(*row) for row in rows]

    @staticmethod
    def withdrawal_rows(
        connection: sa.Connection,
        *,
        status: str | None,
        account: str | None,
        day: str | None,
        after_seq: int,
        limit: int,
    ) -> list[WithdrawalRow]:
        """Withdrawals by the entry that requested them, after `after_seq`, filtered by status,
        account and the UTC day they were requested ("2026-11-30")."""
        table = withdrawal_list
        query = sa.select(*(table.c[name] for name in WithdrawalRow._fields)).where(
            table.c.requested_seq > after_seq
        )
        if status is not None:
            query = query.where(table.c.status == status)
        if account is not None:
            query = query.where(table.c.account == account)
        if day is not None:  # recorded_at is fixed-width UTC text: a day is a prefix range
            query = query.where(table.c.requested_at >= day, table.c.requested_at < day + "U")
        rows = connection.execute(query.order_by(table.c.requested_seq).limit(limit)).all()
        return [WithdrawalRow(*row) for row in rows]

    @staticmethod
    def item_move_rows(connection: sa.Connection, item: str) -> list[ItemMoveRow]:
        rows = connection.execute(
            sa.select(*(item_moves.c[name] for name in ItemMoveRow._fields))
            .where(item_moves.c.item == item)
            .order_by(item_moves.c.seq)
        ).all()
        return [ItemMoveRow(*row) for row in rows]

    @staticmethod
    def item_moves_of(
        connection: sa.Connection, account: str, after_seq: int, upto_seq: int
    ) -> list[ItemMoveRow]:
        """The item moves an account took part in (as holder or giver), after_seq < seq <=
        upto_seq, in order: the items part of its statement."""
        columns = [item_moves.c[name] for name in ItemMoveRow._fields]
        window = (item_moves.c.seq > after_seq, item_moves.c.seq <= upto_seq)
        query = sa.union_all(
            sa.select(*columns).where(item_moves.c.account == account, *window),
            sa.select(*columns).where(item_moves.c.giver == account, *window),
        ).order_by("seq")
        return [ItemMoveRow(*row) for row in connection.execute(query).all()]

    @staticmethod
    def journal_hash(connection: sa.Connection, seq: int) -> str | None:
        return connection.execute(
            sa.select(journal.c.hash).where(journal.c.seq == seq)
        ).scalar_one_or_none()

    @staticmethod
    def rejected_entries(connection: sa.Connection) -> list[tuple[int, str]]:
        rows = connection.execute(
            sa.select(journal.c.seq, journal.c.outcome)
            .where(journal.c.outcome != "ok")
            .order_by(journal.c.seq)
        )
        return [(int(seq), str(outcome)) for seq, outcome in rows]

    @staticmethod
    def find_keys(
        connection: sa.Connection, keys: Sequence[str], recorded_since: str
    ) -> dict[str, JournalRow]:
        """The latest entry for each key recorded at or after `recorded_since`."""
        found: dict[str, JournalRow] = {}
        for start in range(0, len(keys), KEYS_PER_QUERY):
            rows = connection.execute(
                sa.select(journal)
                .where(journal.c.idem_key.in_(keys[start : start + KEYS_PER_QUERY]))
                .where(journal.c.recorded_at >= recorded_since)
                .order_by(journal.c.seq)
            )
            for row in rows:
                found[row.idem_key] = JournalRow(*row)
        return found

    @staticmethod
    def find_payments(connection: sa.Connection, payment_ids: Sequence[str]) -> dict[str, int]:
        """Of these payment ids, those an applied order took, with that order's entry."""
        found: dict[str, int] = {}
        for start in range(0, len(payment_ids), KEYS_PER_QUERY):
            rows = connection.execute(
                sa.select(payments.c.payment_id, payments.c.seq).where(
                    payments.c.payment_id.in_(payment_ids[start : start + KEYS_PER_QUERY])
                )
            )
            found.update((str(payment), int(seq)) for payment, seq in rows)
        return found

    @staticmethod
    def ingest_progress(connection: sa.Connection, digest: str) -> tuple[int, int] | None:
        row = connection.execute(
            sa.select(ingest_sources.c.lines_done, ingest_sources.c.last_seq).where(
                ingest_sources.c.digest == digest
            )
        ).first()
        return None if row is None else (int(row.lines_done), int(row.last_seq))

    # -- writes (the writer only) --------------------------------------------------------------

    def create(self, meta: LedgerMeta) -> None:
        with self.writing() as connection:
            connection.execute(
                ledger_meta.insert().values(
                    id=1,
                    chain_format=meta.chain_format,
                    params=meta.params_json,
                    genesis_hash=meta.genesis_hash,
                    created_at=meta.created_at,
                )
            )
            connection.execute(ledger_head.insert().values(id=1, seq=0, hash=meta.genesis_hash))

    def append(
        self,
        rows: Sequence[JournalRow],
        head: tuple[int, str],
        projection: Projection | None,
        progress: dict[str, Any] | None = None,
        taken_payments: Sequence[tuple[str, int]] = (),
    ) -> None:
        """One transaction: the new entries, their read models (None: not kept up), the
        payments they took, the new head and the ingest position; durable when this returns."""
        with self.writing() as connection:
            self._inserts["payments"].run(connection, taken_payments)
            if rows:
                self._inserts["journal"].run(connection, rows, copy=True)
                seq, hash_hex = head
                head_values: dict[str, Any] = {"seq": seq, "hash": hash_hex}
                if projection is not None:
                    self._write_projection(connection, projection)
                    head_values["projected_seq"] = seq
                connection.execute(
                    ledger_head.update().where(ledger_head.c.id == 1).values(**head_values)
                )
            if progress is not None:
                _upsert_progress(connection, progress)

    def append_projection(self, projection: Projection, upto_seq: int) -> None:
        """Read models of entries already in the journal (a ledger made before them)."""
        with self.writing() as connection:
            if upto_seq == 0:
                for table in READ_MODEL_TABLES:
                    connection.execute(table.delete())
            self._write_projection(connection, projection)
            connection.execute(
                ledger_head.update().where(ledger_head.c.id == 1).values(projected_seq=upto_seq)
            )

    def _write_projection(self, connection: sa.Connection, projection: Projection) -> None:
        self._inserts["statement_lines"].run(connection, projection.statement, copy=True)
        self._inserts["consumer_slots"].run(connection, projection.slots)
        # Binary payments: not JSON text (few rows, one a block of 1,024 consumers a settlement).
        self._inserts["dividend_blocks"].run(connection, projection.dividends, as_json=False)
        self._inserts["item_moves"].run(connection, projection.item_moves)
        if projection.withdrawals:  # in order: a request, then its steps, may share a batch
            connection.exec_driver_sql(self._upsert_withdrawal_sql, projection.withdrawals)
        if projection.price_days:
            connection.execute(
                price_days.insert(), [row._asdict() for row in projection.price_days]
            )
        days = [
            (t.day, t.first_seq, t.last_seq, *(getattr(t, name) for name in DAY_SUMS))
            for t in projection.day_totals.values()
            if t.first_seq is not None
        ]
        if days:
            connection.exec_driver_sql(self._upsert_day_sql, days)

    def save_snapshot(
        self, seq: int, hash_hex: str, state: dict[str, Any], at: str, keep: int
    ) -> None:
        text = json.dumps(state, separators=(",", ":")).encode()
        blob = zlib.compress(text, 6)
        digest = snapshot_digest(hash_hex, text)
        with self.writing() as connection:
            connection.execute(
                snapshots.insert().values(
                    seq=seq, hash=hash_hex, digest=digest, state=blob, created_at=at
                )
            )
            kept = sa.select(snapshots.c.seq).order_by(snapshots.c.seq.desc()).limit(keep)
            connection.execute(
                snapshots.delete().where(snapshots.c.seq.not_in(kept.scalar_subquery()))
            )


class _Insert:
    """Inserting many rows into one table, the fastest way each database offers.

    SQLite: the rows as one JSON array, unpacked by `json_each` in a single statement. The
    driver's executemany takes the GIL back for every row, which stalls a commit running on
    a second thread (Ledger.execute_all) behind the engine for up to the interpreter's switch
    interval each time; one statement runs entirely in SQLite's C code. (Per row, the two
    cost the same: docs/benchmarks.md.) SQLite's JSON cuts a string at NUL, so rows holding
    one go by executemany. PostgreSQL: COPY where asked (a third of executemany's time),
    else executemany. Both take plain tuples: SQLAlchemy's per-row parameter handling cost
    more than the insert itself."""

    def __init__(self, table: str, columns: Sequence[str], is_sqlite: bool) -> None:
        self.table, self.columns, self.is_sqlite = table, tuple(columns), is_sqlite
        marker = "?" if is_sqlite else "%s"
        self.many_sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join([marker] * len(columns))})"
        )
        picks = ", ".join(f"json_extract(value, '$[{index}]')" for index in range(len(columns)))
        self.json_sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {picks} FROM json_each(?)"
        )

    def run(
        self,
        connection: sa.Connection,
        rows: Sequence[Sequence[Any]],
        *,
        copy: bool = False,
        as_json: bool = True,
    ) -> None:
        if not rows:
            return
        if not self.is_sqlite:
            if copy:
                _copy(connection, self.table, self.columns, rows)
            else:
                connection.exec_driver_sql(self.many_sql, list(rows))
            return
        if as_json:
            text = _encode_rows(rows)
            if "\\u0000" not in text:  # (an escaped backslash before "u0000" also goes by rows)
                connection.exec_driver_sql(self.json_sql, (text,))
                return
        connection.exec_driver_sql(self.many_sql, list(rows))


# Strings as UTF-8, not \u escapes: SQLite decodes those too, but they make the text longer.
_encode_rows = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _copy(
    connection: sa.Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """PostgreSQL's COPY FROM STDIN, in the connection's transaction (psycopg 3). Its errors
    are raised as SQLAlchemy's, as any other statement's are: the writer's callers handle
    those (a refused row, a lost session)."""
    import psycopg  # noqa: PLC0415 (PostgreSQL's only: a SQLite ledger never imports it)

    raw = connection.connection.driver_connection
    assert raw is not None
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as error:
        if raw.closed:  # the session is gone: so is the writer lock it held
            connection.invalidate()
        raise sa.exc.DBAPIError.instance(
            statement, None, error, psycopg.Error, connection_invalidated=bool(raw.closed)
        ) from error


def _upsert_progress(connection: sa.Connection, progress: dict[str, Any]) -> None:
    digest = progress["digest"]
    updated = connection.execute(
        ingest_sources.update()
        .where(ingest_sources.c.digest == digest)
        .values(**{k: v for k, v in progress.items() if k != "digest"})
    )
    if updated.rowcount == 0:
        connection.execute(ingest_sources.insert().values(**progress))


def snapshot_digest(hash_hex: str, state_json: bytes) -> str:
    """Binds a snapshot's state to the journal entry it was taken at. It catches an edited
    state or a snapshot moved to another entry; like the chain, not someone who recomputes it."""
    return hashlib.sha256(bytes.fromhex(hash_hex) + state_json).hexdigest()


def _snapshot_from_row(row: sa.Row[Any]) -> Snapshot:
    unreadable = f"the snapshot at entry {row.seq} is unreadable or was edited"
    try:
        text = zlib.decompress(row.state)
        if snapshot_digest(row.hash, text) != row.digest:
            raise StoreError(unreadable)
        state = json.loads(text)
    except (zlib.error, ValueError, RecursionError):
        raise StoreError(unreadable) from None
    return Snapshot(int(row.seq), str(row.hash), state)


def _sqlite_path(url: sa.URL, *, create: bool) -> Path:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        raise StoreError("an in-memory SQLite database cannot hold a durable ledger")
    if "uri" in url.query:
        # The writer lock is named after the path: a URI filename would give the same database
        # a second name, hence a second lock, hence two writers.
        raise StoreError(
            f"{url.render_as_string(hide_password=True)}: give the file's path, not a SQLite URI"
        )
    path = Path(database)
    try:
        mode: int | None = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:  # a name too long, a parent that is a file, ...
        raise StoreError(f"{path}: {error.strerror}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise StoreError(f"{path}: is a directory, not a database file")
    if mode is not None and not stat.S_ISREG(mode):
        # SQLite would open a device or a pipe and fail later, half-way through a migration.
        raise StoreError(f"{path}: is not a regular file (a device, pipe or socket)")
    if not create and mode is None:
        raise StoreError(f"no ledger at {path} (create one with 'tokenmall ingest FILE.jsonl')")
    if create and not path.parent.exists():
        raise StoreError(f"{path}: directory {path.parent} does not exist")
    return path


def _create_private(path: Path) -> bool:
    """An empty file readable by its owner only (0600), if there is none: a ledger holds every
    balance and the token hashes. SQLite gives its -wal and -shm files the database file's
    mode. True if this call made it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:  # there already, or another process made it meanwhile
        return False
    except OSError as error:
        raise StoreError(f"cannot create {path}: {error.strerror or error}") from None
    return True


def insert_once(connection: sa.Connection, table: sa.Table, values: dict[str, Any]) -> bool:
    """Insert the row unless one with its key exists; True if this call inserted it (what
    makes a claim, a used nonce or a seen message id count once, across processes)."""
    dialect = sqlite_dialect if connection.dialect.name == "sqlite" else postgresql_dialect
    key = next(iter(table.primary_key.columns))
    statement = dialect.insert(table).values(**values).on_conflict_do_nothing().returning(key)
    # RETURNING, not rowcount: psycopg's rowcount of an INSERT … ON CONFLICT is not reliable.
    return connection.execute(statement).first() is not None


def _create_engine(url: str, is_sqlite: bool) -> sa.Engine:
    if not is_sqlite:
        return sa.create_engine(
            url, pool_size=4, max_overflow=4, connect_args={"connect_timeout": 5}
        )
    with warnings.catch_warnings():
        # An option the driver would ignore (a typo in ?busy_timout=...) is refused, not warned of.
        warnings.simplefilter("error", sa.exc.SAWarning)
        engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (SQLAlchemy's
        # documented recipe), so that a read transaction really is one consistent snapshot.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 5000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A transaction that reads before it writes takes the write lock at its start
        # (IMMEDIATE): upgrading a read snapshot that the ledger's writer has since moved past
        # fails at once with "database is locked", whatever the busy timeout.
        immediate = connection.get_execution_options().get(IMMEDIATE_OPTION)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _check_sqlite_json(connection: sa.Connection) -> None:
    """Rows are inserted through SQLite's JSON functions (`_Insert`): built in since SQLite
    3.38, and enabled in earlier builds that Python and Linux distributions ship."""
    try:
        connection.exec_driver_sql("SELECT json_extract('[1]', '$[0]')")
    except sa.exc.OperationalError:
        version = connection.exec_driver_sql("SELECT sqlite_version()").scalar_one()
        raise StoreError(
            f"this SQLite ({version}) has no JSON functions; tokenmall needs SQLite 3.38 or "
            "newer, or a build with JSON1"
        ) from None


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _lock_file(path: Path) -> Any:
    try:
        handle = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+")
    except OSError as error:  # a read-only directory, a directory of that name, ...
        raise StoreError(f"cannot create the writer lock {path}: {error.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        database = path.name.removesuffix("-writer.lock")
        raise StoreError(
            f"another tokenmall writer (pid {holder}) holds {database}; stop it first"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def first_line(error: Exception) -> str:
    """A database error's message, first line only (drivers add hints and SQL below it)."""
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
