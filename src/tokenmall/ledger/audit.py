"""`tokenmall audit verify`: recompute the hash chain and the state from the journal alone.

It trusts nothing but the journal and the rules: the genesis hash must commit to the stored
starting parameters, every entry must chain from the one before with no gap, every recorded
outcome must be what the rules give, every snapshot must equal the recomputed state at its entry,
and the head row must name the last entry. The first thing that fails is reported.
"""

from collections import Counter
from dataclasses import dataclass, field

from tokenmall.core.engine import Engine
from tokenmall.core.errors import InvariantViolation
from tokenmall.core.invariants import check_invariants
from tokenmall.core.snapshot import SnapshotError, take_snapshot, upgraded
from tokenmall.core.units import format_price
from tokenmall.ledger.chain import (
    OUTCOME_OK,
    decode_entry_command,
    entry_is_intact,
    genesis_hash,
    outcome_agrees,
    outcome_of,
)
from tokenmall.ledger.ledger import load_params
from tokenmall.ledger.store import Snapshot, Store, StoreError


@dataclass(frozen=True)
class AuditReport:
    entries: int
    head_hash: str
    rejected: int
    snapshots_checked: int
    price: str
    users: int
    problem: str | None = None
    # Entries by who submitted them: the role part of each actor ("admin", "integration", "cli",
    # ...), "unrecorded" for entries journaled before actors were kept.
    submitted_by: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Tampered(Exception):
    pass


def verify(store: Store) -> AuditReport:
    try:
        return _verify(store)
    except StoreError as error:  # a head row or a snapshot that cannot be read: also tampering
        return AuditReport(0, "", 0, 0, "", 0, str(error))


def _verify(store: Store) -> AuditReport:
    with store.reading() as connection:
        meta = store.meta(connection)
        if meta is None:
            return AuditReport(0, "", 0, 0, "", 0, "the database holds no ledger")
        head = store.head(connection)
        snapshots = {s.seq: s for s in store.snapshots(connection)}
        engine = Engine(load_params(meta))
        seq, hash_hex, rejected, checked = 0, meta.genesis_hash, 0, 0
        submitted_by: Counter[str] = Counter()
        try:
            if genesis_hash(meta.params_json) != meta.genesis_hash:
                raise _Tampered("the starting parameters were edited (genesis hash differs)")
            for row in store.journal_rows(connection):
                if row.seq <= seq:
                    raise _Tampered(
                        f"entry {row.seq} is out of sequence: it comes before entry {seq + 1} "
                        "(added outside the writer)"
                    )
                if row.seq != seq + 1:
                    raise _Tampered(
                        f"entry {seq + 1} is missing (deleted): the journal goes from entry "
                        f"{seq} to entry {row.seq}"
                    )
                if not entry_is_intact(hash_hex, *row):
                    raise _Tampered(
                        f"entry {row.seq} does not match the hash chain: it was edited, or "
                        "entries were reordered"
                    )
                engine.rules_v1 = row.seq < meta.spec_v2_from
                outcome = _outcome(engine, row.seq, row.command)
                if not outcome_agrees(row.outcome, outcome, engine.rules_v1):
                    raise _Tampered(
                        f"entry {row.seq} records {row.outcome!r} but the rules give {outcome!r}"
                    )
                seq, hash_hex = row.seq, row.hash
                rejected += outcome != OUTCOME_OK
                submitted_by[row.actor.split(":")[0] if row.actor else "unrecorded"] += 1
                if seq in snapshots:
                    _check_snapshot(engine, snapshots.pop(seq), hash_hex)
                    checked += 1
            _check_end(seq, hash_hex, head, snapshots)
            check_invariants(engine)
            problem = None
        except _Tampered as tampered:
            problem = str(tampered)
        except InvariantViolation as violation:
            problem = f"the recomputed state breaks an invariant: {violation}"
    return AuditReport(
        seq,
        hash_hex,
        rejected,
        checked,
        format_price(engine.price()),
        len(engine.consumers),
        problem,
        dict(sorted(submitted_by.items())),
    )


def _outcome(engine: Engine, seq: int, command_text: str) -> str:
    command = decode_entry_command(command_text)
    if command is None:
        raise _Tampered(f"entry {seq}'s command is not a JSON object (the chain was rewritten)")
    return outcome_of(engine.try_apply(command))


def _check_snapshot(engine: Engine, snapshot: Snapshot, hash_hex: str) -> None:
    try:
        stored = upgraded(snapshot.state)
    except SnapshotError:
        stored = None
    if snapshot.hash != hash_hex or stored != take_snapshot(engine):
        raise _Tampered(
            f"the snapshot at entry {snapshot.seq} does not match the state recomputed "
            "from the journal"
        )


def _check_end(seq: int, hash_hex: str, head: tuple[int, str], left: dict[int, Snapshot]) -> None:
    head_seq, head_hash = head
    if head_seq > seq:
        raise _Tampered(
            f"entries {seq + 1}-{head_seq} are missing (deleted): the journal ends at entry {seq} "
            f"but the head records entry {head_seq}"
        )
    if head_seq < seq:
        raise _Tampered(
            f"entries {head_seq + 1}-{seq} were added outside the writer: the head records "
            f"entry {head_seq}"
        )
    if head_hash != hash_hex:
        raise _Tampered(f"entry {seq} is not the entry the head records (replaced)")
    if left:
        raise _Tampered(f"the snapshot at entry {min(left)} has no journal entry")
