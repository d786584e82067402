"""The ledger's single writer: applies commands to the in-memory engine and makes them durable
as hash-chained journal entries, a batch per transaction (group commit).

Balances live in memory (the rules engine); the journal is the record. At start the engine is
rebuilt from the newest snapshot plus the journal after it, and that tail's hash chain and
outcomes are checked on the way. A command is acknowledged (its Result returned) only after the
transaction that holds it has committed.
"""

import json
import sys
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from tokenmall.core.engine import Engine
from tokenmall.core.errors import InvariantViolation, ParamsError
from tokenmall.core.invariants import check_invariants
from tokenmall.core.params import Params
from tokenmall.core.snapshot import SnapshotError, restore_snapshot, take_snapshot
from tokenmall.core.units import Price
from tokenmall.ledger.chain import (
    CHAIN_FORMAT,
    OUTCOME_OK,
    canonical_command,
    check_actor,
    check_key,
    decode_entry_command,
    entry_hash,
    entry_is_intact,
    genesis_hash,
    outcome_agrees,
    outcome_of,
)
from tokenmall.ledger.projections import Projection, Projector
from tokenmall.ledger.store import (
    FIRST_SEQ_MIN,
    JournalRow,
    LedgerMeta,
    Store,
    StoreError,
    first_line,
    resolve_url,
)

IDEMPOTENCY_CONFLICT = "idempotency_conflict"
# An order naming a payment (the provider's transaction number) that an applied order already
# took: refused without a journal entry, like a key conflict. Money is credited once.
DUPLICATE_PAYMENT = "duplicate_payment"
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def timestamp(moment: datetime) -> str:
    """Fixed-width UTC, so that text order is time order in both databases."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


@dataclass(frozen=True)
class Settings:
    snapshot_every: int = 100_000  # journal entries between snapshots
    snapshots_kept: int = 3
    key_retention_days: int = 30  # an idempotency key is honoured at least this long
    batch_max: int = 4_096  # commands per transaction
    clock: Clock = field(default=utc_now)
    # Write the read models (statements, price history) with each batch. Off, a bulk load runs
    # faster; the next writer with it on fills them in from the journal when it starts.
    read_models: bool = True
    # SPEC §6 is checked at start-up, before every snapshot, and before committing a batch once
    # this many commands were applied since the last check (an O(accounts) pass: ~1-10 ms at
    # 10,000 consumers, so a few microseconds a command; docs/benchmarks.md).
    check_every: int = 1_000

    def __post_init__(self) -> None:
        names = (
            "snapshot_every",
            "snapshots_kept",
            "key_retention_days",
            "batch_max",
            "check_every",
        )
        for name in names:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


RESERVED_FIELDS = ("key", "actor")  # carried beside a command, not part of it


@dataclass(frozen=True)
class Submission:
    """One command ready for the writer: without its key, with its canonical bytes, and who
    submitted it (`actor`: "role:token id" over HTTP, "cli:user" from the command line)."""

    command: dict[str, Any]
    canonical: str
    key: str | None = None
    actor: str | None = None

    @classmethod
    def of(
        cls, command: dict[str, Any], key: str | None = None, actor: str | None = None
    ) -> "Submission":
        """From any dict; a "key" field inside it is its idempotency key. ValueError (with a
        message for the user) if it cannot be journaled. The engine gets the command decoded
        back from its canonical bytes, so that it sees exactly what a replay of the journal
        will see (a tuple would be a list, a non-string dict key a string)."""
        submission = cls.decoded(command, key, actor)
        return cls(json.loads(submission.canonical), submission.canonical, submission.key, actor)

    @classmethod
    def decoded(
        cls, command: dict[str, Any], key: str | None = None, actor: str | None = None
    ) -> "Submission":
        """Like `of`, for a command just decoded from JSON text (plain JSON values only), which
        saves decoding it again. An "actor" field (as `journal export` prints it) is dropped:
        the actor is whoever submits the command now."""
        if "key" in command:
            if key is not None:
                raise ValueError('the idempotency key is given twice ("key" field and header)')
            key = command["key"]
        if any(name in command for name in RESERVED_FIELDS):
            command = {k: v for k, v in command.items() if k not in RESERVED_FIELDS}
        return cls(command, canonical_command(command), check_key(key), check_actor(actor))


@dataclass(frozen=True)
class Result:
    """What happened to a submission. `seq` is its journal entry (for a replayed key, the first
    submission's entry); None when it was refused without an entry (idempotency_conflict)."""

    seq: int | None
    outcome: str  # "ok", a SPEC error code, or "idempotency_conflict"
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == OUTCOME_OK


class Ledger:
    """The one writer of a store. Not thread-safe: one caller at a time (`tokenmall serve`
    drives it from its writer process, ledger/writer.py, which batches concurrent requests)."""

    def __init__(self, store: Store, settings: Settings, params: Params | None = None) -> None:
        self.store = store
        self.settings = settings
        self.broken: str | None = None  # a failed reload: retried at the next batch
        self.halted: str | None = None  # a broken invariant: this writer never writes again
        store.acquire_writer_lock()
        try:
            store.migrate()
            self.meta = self._meta_or_create(params)
            self.engine, self.head_seq, self.head_hash, self.snapshot_seq = load_engine(store)
            if settings.read_models:
                project_journal(store)
            self.checked_price = self._checked_state(None, None)
        except InvariantViolation as error:
            store.close()
            raise StoreError(
                f"the ledger's state breaks SPEC §6 ({error}); run 'tokenmall audit verify'"
            ) from None
        except Exception:
            store.close()
            raise
        self.next_snapshot_seq = self.snapshot_seq + settings.snapshot_every
        self.snapshot_error: str | None = None  # why the last automatic snapshot failed
        self.unchecked = 0  # commands applied since the invariants were last checked

    @classmethod
    def open(
        cls, db: str | None = None, settings: Settings | None = None, params: Params | None = None
    ) -> "Ledger":
        """The writer of the ledger at `db` (see `resolve_url`), created if missing. `params`
        are the starting parameters of a new ledger; an existing one keeps its own."""
        return cls(Store(resolve_url(db), create=True), settings or Settings(), params)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def execute(
        self, batch: Sequence[Submission], progress: dict[str, Any] | None = None
    ) -> list[Result]:
        """Apply a batch in order and commit it as one transaction (with `progress`, an
        ingest_sources row); the results are valid once this returns. On a store failure the
        engine is rebuilt from the store, nothing of the batch is acknowledged, and StoreError
        is raised."""
        self._ready()
        try:
            prepared = self._prepare(self._sized(batch), progress, None)
            self._commit(prepared)
        except BaseException as error:
            self._fail(error, reload=True)
        results = self._acknowledge(prepared)
        if self.head_seq >= self.next_snapshot_seq:
            self.try_snapshot()
        return results

    def execute_all(
        self, batches: Iterable[tuple[Sequence[Submission], dict[str, Any] | None]]
    ) -> Generator[list[Result], None, None]:
        """`execute` for each (batch, progress) in turn, pipelined: while one batch commits on
        a second thread, the next is applied in memory, so the engine and the database work
        at once (what a bulk load spends its time on, docs/benchmarks.md). Each batch is
        still one transaction, committed in order; its results are yielded once it has
        committed. The engine is never more than one batch ahead of the database: if a commit
        fails, the batch after it is dropped with it, the engine is rebuilt from the store and
        StoreError is raised; what committed before stays."""
        self._ready()
        committing: _Committing | None = None
        with (
            ThreadPoolExecutor(1, thread_name_prefix="tokenmall-commit") as committer,
            _switch_interval(COMMIT_SWITCH_INTERVAL_S),
        ):
            try:
                for batch, progress in batches:
                    after = None if committing is None else committing.prepared
                    prepared = self._prepare(self._sized(batch), progress, after)
                    earlier, committing = committing, None
                    results = None if earlier is None else self._finish(earlier)
                    committing = _Committing(prepared, committer.submit(self._commit, prepared))
                    if results is not None:
                        yield results
                    if prepared.done.seq >= self.next_snapshot_seq:  # of the engine at head
                        last, committing = committing, None
                        yield self._finish(last)
                        self.try_snapshot()
                if committing is not None:
                    last, committing = committing, None
                    yield self._finish(last)
            except BaseException as error:
                # The batch still committing is waited for: once it has, the engine is at
                # the head again (unless the error came while applying the next one).
                at_head = committing is not None and self._settle(committing)
                at_head = at_head and isinstance(error, GeneratorExit)  # stopped at a yield
                self._fail(error, reload=not at_head)

    def _ready(self) -> None:
        """Refuse to write after a broken invariant; reload if memory may not match the store."""
        if self.halted is not None:
            raise InvariantViolation(f"this writer stopped earlier: {self.halted}")
        if self.store.retake_lost_writer_lock() or self.broken is not None:
            self._reload()  # memory must match the store before anything more is applied
        if self.broken is not None:
            raise StoreError(self.broken)

    def _sized(self, batch: Sequence[Submission]) -> Sequence[Submission]:
        if len(batch) > self.settings.batch_max:
            raise ValueError(f"a batch holds at most {self.settings.batch_max} commands")
        return batch

    def _prepare(
        self,
        batch: Sequence[Submission],
        progress: dict[str, Any] | None,
        after: "_Prepared | None",
    ) -> "_Prepared":
        """Apply a batch in memory, on the committed head or on `after` (a batch still
        committing), and check SPEC §6 when due; nothing is written."""
        now = self.settings.clock()
        done = self._apply(batch, now, None if after is None else after.done)
        unchecked = (self.unchecked if after is None else after.unchecked) + len(done.rows)
        checked_price = self.checked_price if after is None else after.checked_price
        if unchecked >= self.settings.check_every or done.seq >= self.next_snapshot_seq:
            unchecked, checked_price = 0, self._checked_state(done.seq, checked_price)
        if progress is not None:
            progress = {**progress, "last_seq": done.seq, "updated_at": timestamp(now)}
        return _Prepared(done, progress, unchecked, checked_price)

    def _commit(self, prepared: "_Prepared") -> None:
        done = prepared.done
        self.store.append(
            done.rows, (done.seq, done.hash), done.projection, prepared.progress, done.payments
        )

    def _acknowledge(self, prepared: "_Prepared") -> list[Result]:
        """A batch has committed: it is the head now."""
        self.head_seq, self.head_hash = prepared.done.seq, prepared.done.hash
        # Kept only once committed: after a failed commit the engine is reloaded from the store,
        # and a price checked on the batch's state would make the next check see the price fall.
        self.unchecked, self.checked_price = prepared.unchecked, prepared.checked_price
        return prepared.done.results

    def _finish(self, committing: "_Committing") -> list[Result]:
        """Wait for a batch's commit; its results, or its error raised."""
        committing.future.result()
        return self._acknowledge(committing.prepared)

    def _settle(self, committing: "_Committing") -> bool:
        """After an error elsewhere: wait for a batch's commit; True if it committed."""
        try:
            self._finish(committing)
        except BaseException:  # the error being handled is the one to report
            return False
        return True

    def _fail(self, error: BaseException, *, reload: bool) -> NoReturn:
        """Raise, after `error` interrupted applying or committing a batch: a failed commit
        as StoreError, anything else as it is."""
        if isinstance(error, InvariantViolation):
            # A bug in the rules: stop writing (fail-stop) rather than serve on, or make the
            # state durable. The batch is not committed; nothing of it is acknowledged.
            self.halted = str(error)
            raise error
        if reload:
            self._reload()
        if isinstance(error, SQLAlchemyError):
            raise StoreError(
                f"the commit failed and nothing of the batch was applied: {first_line(error)}"
            ) from error
        raise error

    def _apply(
        self, batch: Sequence[Submission], now: datetime, after: "_Applied | None"
    ) -> "_Applied":
        """Apply the batch to the engine and build its journal rows (nothing written yet), on
        the committed head or on `after` (a batch still committing, whose keys and payments
        the database does not know yet)."""
        recorded_at = timestamp(now)
        projector = Projector(self.engine) if self.settings.read_models else None
        project = projector.apply if projector is not None else _applying(self.engine)
        start = (self.head_seq, self.head_hash) if after is None else (after.seq, after.hash)
        done = _Applied(*start, Projection(recorded_at=recorded_at) if projector else None)
        projection = done.projection or Projection()  # without read models: filled, not kept
        wanted = {s.key for s in batch if s.key is not None}
        earlier = self.find_keys(sorted(wanted), now)
        taken = self.find_payments(batch)
        if after is not None:
            earlier.update((row.idem_key, row) for row in after.rows if row.idem_key in wanted)
            taken.update(after.payments)
        for submission in batch:
            key = submission.key
            if key is not None and key in earlier:
                done.results.append(_replay_of(earlier[key], submission))
                continue
            payment = payment_of(submission.command)
            if payment is not None and payment in taken:
                done.results.append(Result(None, DUPLICATE_PAYMENT))
                continue
            seq = done.seq + 1
            outcome = outcome_of(project(submission.command, seq, projection))
            canonical, actor = submission.canonical, submission.actor
            done.hash = entry_hash(done.hash, seq, recorded_at, key, outcome, canonical, actor)
            row = JournalRow(seq, recorded_at, key, outcome, canonical, done.hash, actor)
            done.seq = seq
            done.rows.append(row)
            if key is not None:
                earlier[key] = row
            if payment is not None and outcome == OUTCOME_OK:
                taken[payment] = seq
                done.payments.append((payment, seq))
            done.results.append(Result(seq, outcome))
        if projector is not None:
            projector.close(projection)
        return done

    def _checked_state(self, seq: int | None, previous: Price | None) -> Price:
        """Check SPEC §6 on the engine as it is (after entry `seq`; None: as loaded), and that
        the price has not fallen from `previous` (the last checked). InvariantViolation if
        anything fails."""
        try:
            check_invariants(self.engine, previous)
        except InvariantViolation as error:
            where = "as loaded" if seq is None else f"after entry {seq}"
            raise InvariantViolation(f"{where}: {error}") from None
        return self.engine.price()

    def try_snapshot(self) -> bool:
        """Snapshot now; on failure remember why (`snapshot_error`) and try again one interval
        on. A snapshot is a cache: failing to save one must not fail the batch that just
        committed (its submitters would retry and apply it twice)."""
        try:
            self.snapshot()
        except SQLAlchemyError as error:
            self.snapshot_error = first_line(error)
            self.next_snapshot_seq = self.head_seq + self.settings.snapshot_every
            return False
        return True

    def snapshot(self) -> None:
        """Save the engine's state at the current head (a cache for faster start-up)."""
        if self.head_seq == self.snapshot_seq:
            return
        if self.unchecked:
            self.checked_price = self._checked_state(self.head_seq, self.checked_price)
            self.unchecked = 0
        self.store.save_snapshot(
            self.head_seq,
            self.head_hash,
            take_snapshot(self.engine),
            timestamp(self.settings.clock()),
            self.settings.snapshots_kept,
        )
        self.snapshot_seq = self.head_seq
        self.next_snapshot_seq = self.head_seq + self.settings.snapshot_every
        self.snapshot_error = None

    def find_keys(self, keys: Sequence[str], now: datetime) -> dict[str, JournalRow]:
        """The entry each key names, among the keys still honoured at `now`."""
        if not keys:
            return {}
        since = timestamp(now - timedelta(days=self.settings.key_retention_days))
        with self.store.reading() as connection:
            return self.store.find_keys(connection, keys, since)

    def find_payments(self, batch: Sequence[Submission]) -> dict[str, int]:
        """The payment ids of `batch` that applied orders already took, with their entries."""
        ids = sorted({p for s in batch if (p := payment_of(s.command)) is not None})
        if not ids:
            return {}
        with self.store.reading() as connection:
            return self.store.find_payments(connection, ids)

    def _meta_or_create(self, params: Params | None) -> LedgerMeta:
        with self.store.reading() as connection:
            meta = self.store.meta(connection)
        if meta is not None:
            return meta
        params_json = json.dumps((params or Params()).as_json(), sort_keys=True)
        meta = LedgerMeta(
            CHAIN_FORMAT, params_json, genesis_hash(params_json), timestamp(self.settings.clock())
        )
        self.store.create(meta)
        return meta

    def _reload(self) -> None:
        """After a failed commit the engine holds uncommitted changes: rebuild it from the store.
        If even that fails, the ledger stays unusable (StoreError on the next call)."""
        try:
            self.engine, self.head_seq, self.head_hash, self.snapshot_seq = load_engine(self.store)
            self.next_snapshot_seq = self.snapshot_seq + self.settings.snapshot_every
            self.broken = None
        except Exception as error:
            self.broken = f"the ledger could not reload after a failed commit: {error}"


# The committing thread needs the GIL back after each statement SQLite runs without it; by
# default the engine's thread keeps it for up to 5 ms each time, which held a commit back for
# longer than it took (docs/benchmarks.md).
COMMIT_SWITCH_INTERVAL_S = 0.0005


@contextmanager
def _switch_interval(seconds: float) -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, seconds))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@dataclass(frozen=True)
class _Prepared:
    """A batch applied in memory, ready to commit: with its ingest position and the SPEC §6
    check state to keep once it has committed."""

    done: "_Applied"
    progress: dict[str, Any] | None
    unchecked: int
    checked_price: Price


@dataclass(frozen=True)
class _Committing:
    prepared: _Prepared
    future: "Future[None]"


@dataclass
class _Applied:
    """A batch applied in memory: the head after it, its rows, results, read models (None: not
    kept) and the payments its orders took."""

    seq: int
    hash: str
    projection: Projection | None
    rows: list[JournalRow] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    payments: list[tuple[str, int]] = field(default_factory=list)


def _applying(engine: Engine) -> Callable[[dict[str, Any], int, Projection], str | None]:
    """The writer's step without read models: apply, record nothing."""

    def apply(command: dict[str, Any], _seq: int, _projection: Projection) -> str | None:
        return engine.try_apply(command)

    return apply


def payment_of(command: dict[str, Any]) -> str | None:
    """The payment an order says it was paid by (`payment_id`), if any."""
    payment = command.get("payment_id")
    return payment if command.get("op") == "order" and isinstance(payment, str) else None


def _replay_of(first: JournalRow, submission: Submission) -> Result:
    if first.command != submission.canonical:
        return Result(None, IDEMPOTENCY_CONFLICT)
    return Result(first.seq, first.outcome, replayed=True)


def load_params(meta: LedgerMeta) -> Params:
    try:
        return Params().with_overrides(json.loads(meta.params_json))
    except (ValueError, ParamsError) as error:
        raise StoreError(f"the ledger's starting parameters are unreadable: {error}") from None


PROJECT_CHUNK_ENTRIES = 10_000


def project_journal(store: Store) -> None:
    """Fill the read models of a ledger made before them: replay its journal from genesis
    (checked again on the way), committing every PROJECT_CHUNK_ENTRIES entries."""
    with store.reading() as connection:
        meta, projected = store.meta(connection), store.projected_seq(connection)
        head_seq, _ = store.head(connection)
    if meta is None or projected >= head_seq:
        return
    engine = Engine(load_params(meta))
    projector, projection, done = Projector(engine), Projection(), 0
    v2_from = meta.spec_v2_from
    store.append_projection(Projection(), 0)  # start over: a partial fill has no entries' state
    with store.reading() as connection:
        seq, hash_hex = 0, meta.genesis_hash
        for row in store.journal_rows(connection, after_seq=FIRST_SEQ_MIN):
            engine.rules_v1 = row.seq < v2_from
            projection.recorded_at = row.recorded_at
            code = projector.apply(_checked_command(row, seq, hash_hex), row.seq, projection)
            _check_outcome(row, outcome_of(code), engine.rules_v1)
            seq, hash_hex = row.seq, row.hash
            if row.seq - done >= PROJECT_CHUNK_ENTRIES:
                projector.close(projection)
                store.append_projection(projection, row.seq)
                projection, done = Projection(), row.seq
    projector.close(projection)
    store.append_projection(projection, seq)


def load_engine(store: Store) -> tuple[Engine, int, str, int]:
    """(engine, head seq, head hash, snapshot seq) rebuilt from the newest snapshot and the
    journal after it, checking that tail's hash chain and recorded outcomes."""
    with store.reading() as connection:
        return load_engine_from(store, connection)


def load_engine_from(store: Store, connection: Connection) -> tuple[Engine, int, str, int]:
    meta = store.meta(connection)
    if meta is None:
        raise StoreError("the database holds no ledger")
    head_seq, head_hash = store.head(connection)
    snapshot = store.latest_snapshot(connection, head_seq)
    if snapshot is None:
        engine, seq, hash_hex = Engine(load_params(meta)), 0, meta.genesis_hash
    else:
        if store.journal_hash(connection, snapshot.seq) != snapshot.hash:
            raise StoreError(
                f"the snapshot at entry {snapshot.seq} does not match the journal; "
                "run 'tokenmall audit verify'"
            )
        try:
            engine = restore_snapshot(snapshot.state)
        except SnapshotError as error:
            raise StoreError(f"the snapshot at entry {snapshot.seq}: {error}") from None
        seq, hash_hex = snapshot.seq, snapshot.hash
    snapshot_seq = seq
    first = seq if snapshot is not None else FIRST_SEQ_MIN  # rows numbered <= 0 are tampering
    for row in store.journal_rows(connection, after_seq=first):
        engine.rules_v1 = row.seq < meta.spec_v2_from
        seq, hash_hex = _apply_entry(engine, row, seq, hash_hex)
    engine.rules_v1 = False  # what the writer applies from now on is checked by SPEC v2
    if (seq, hash_hex) != (head_seq, head_hash):
        raise StoreError(
            f"the journal ends at entry {seq} but the ledger's head is entry {head_seq}; "
            "run 'tokenmall audit verify'"
        )
    return engine, seq, hash_hex, snapshot_seq


def _checked_command(row: JournalRow, seq: int, hash_hex: str) -> dict[str, Any]:
    """The command of the entry after (seq, hash_hex), if the entry fits the chain; else
    StoreError."""
    command = decode_entry_command(row.command)
    if row.seq != seq + 1 or not entry_is_intact(hash_hex, *row) or command is None:
        raise StoreError(
            f"journal entry {seq + 1} does not match the hash chain; run 'tokenmall audit verify'"
        )
    return command


def _apply_entry(engine: Engine, row: JournalRow, seq: int, hash_hex: str) -> tuple[int, str]:
    """Check one entry against the chain, then apply it; StoreError if it does not fit."""
    command = _checked_command(row, seq, hash_hex)
    _check_outcome(row, outcome_of(engine.try_apply(command)), engine.rules_v1)
    return row.seq, row.hash


def _check_outcome(row: JournalRow, outcome: str, rules_v1: bool) -> None:
    if not outcome_agrees(row.outcome, outcome, rules_v1):
        raise StoreError(
            f"journal entry {row.seq} records {row.outcome!r} but the rules give {outcome!r}"
        )
