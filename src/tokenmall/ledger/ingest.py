"""`tokenmall ingest FILE.jsonl`: apply a file of commands durably, resumably.

Two passes over the file. The first checks every line (JSON object, idempotency key, bytes
the journal can hold, no key reused for another command) and hashes the file: bad input stops
the ingest before anything is applied. The second applies the commands in batches; each batch
commits together with how far into the file it got (`ingest_sources`, keyed by the file's
SHA-256), so an ingest killed at any moment and run again skips exactly what was committed.
"""

import getpass
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenmall.core.errors import ErrorCode
from tokenmall.jsonl import (
    JSON_WHITESPACE,
    InputError,
    decode_command,
    open_input,
    scenario_lines,
)
from tokenmall.ledger.chain import ACTOR_CHARS_MAX
from tokenmall.ledger.ledger import DUPLICATE_PAYMENT, Ledger, Result, Submission

Progress = Callable[[int], None]  # called with the number of commands just done
BLANK = JSON_WHITESPACE.encode()


@dataclass(frozen=True)
class CheckedFile:
    """A file that passed the line checks (pass 1)."""

    path: Path
    digest: str  # SHA-256 of the file's lines
    commands: int
    key_fingerprints: dict[str, bytes]  # idempotency key -> SHA-256 of its canonical command


@dataclass(frozen=True)
class IngestPlan:
    file: CheckedFile
    lines_done: int  # lines that earlier runs of this file committed


@dataclass
class IngestSummary:
    applied: int = 0
    rejected: int = 0
    replayed: int = 0  # keys seen before: first result returned, no second effect
    skipped: int = 0  # committed by an earlier, interrupted run of the same file
    duplicate_payments: int = 0  # orders naming a payment an applied order took: not journaled


def check_file(path: Path) -> CheckedFile:
    """Pass 1: check every line, before any database is touched; InputError naming the first
    bad line."""
    if str(path) == "-":
        raise InputError("ingest needs a file, not standard input (it reads the file twice)")
    digest = hashlib.sha256()
    keys: dict[str, bytes] = {}
    commands = 0
    with open_input(path) as stream:
        for line_number, raw_line in enumerate(scenario_lines(stream, str(path)), start=1):
            if raw_line is not None:
                digest.update(raw_line)
            digest.update(b"\n")
            submission = _submission(path, line_number, raw_line)
            if submission is None:
                continue
            commands += 1
            if submission.key is not None:
                _note_key(keys, submission, f"{path}:{line_number}")
    return CheckedFile(path, digest.hexdigest(), commands, keys)


def plan_ingest(ledger: Ledger, checked: CheckedFile) -> IngestPlan:
    """Check the file's keys against the ledger and find where earlier runs stopped."""
    _check_keys_against_ledger(ledger, checked.key_fingerprints, checked.path)
    with ledger.store.reading() as connection:
        progress = ledger.store.ingest_progress(connection, checked.digest)
    return IngestPlan(checked, 0 if progress is None else progress[0])


def run_ingest(ledger: Ledger, plan: IngestPlan, on_progress: Progress) -> IngestSummary:
    """Pass 2: apply what earlier runs did not commit, batch by batch (pipelined: the next
    batch is applied while one commits, Ledger.execute_all)."""
    summary = IngestSummary()
    for results in ledger.execute_all(_batches(ledger, plan, summary, on_progress)):
        for result in results:
            _count(summary, result)
        on_progress(len(results))
    return summary


def _batches(
    ledger: Ledger, plan: IngestPlan, summary: IngestSummary, on_progress: Progress
) -> Iterator[tuple[list[Submission], dict[str, Any]]]:
    """The batches still to apply, each with the ingest position its commit records; the
    lines skipped as committed before are counted (and reported) first."""
    batch: list[Submission] = []
    batch_max = ledger.settings.batch_max
    skips_reported = False
    last_line = 0
    for line_number, submission in _submissions(plan.file.path, plan.lines_done):
        if submission is None:
            summary.skipped += 1
            continue
        if not skips_reported:
            on_progress(summary.skipped)
            skips_reported = True
        batch.append(submission)
        last_line = line_number
        if len(batch) == batch_max:
            yield batch, _position(plan, last_line)
            batch = []
    if not skips_reported:
        on_progress(summary.skipped)
    if batch:
        yield batch, _position(plan, last_line)


def _position(plan: IngestPlan, lines_done: int) -> dict[str, Any]:
    return {"digest": plan.file.digest, "path": str(plan.file.path), "lines_done": lines_done}


def _count(summary: IngestSummary, result: Result) -> None:
    if result.replayed:
        summary.replayed += 1
    elif result.ok:
        summary.applied += 1
    elif result.outcome == DUPLICATE_PAYMENT:
        summary.duplicate_payments += 1
    elif result.seq is None:  # a conflict: pass 1 rules these out, but never count it as done
        raise InputError("an idempotency key was reused for another command during the ingest")
    else:
        summary.rejected += 1


def _submissions(path: Path, lines_done: int) -> Iterator[tuple[int, Submission | None]]:
    """(line number, submission) for each command line; None for a command line that an
    earlier run committed (counted, not decoded again)."""
    with open_input(path) as stream:
        for line_number, raw_line in enumerate(scenario_lines(stream, str(path)), start=1):
            if line_number <= lines_done:
                if raw_line is None or raw_line.strip(BLANK):  # blank lines are not commands
                    yield line_number, None
                continue
            submission = _submission(path, line_number, raw_line)
            if submission is not None:
                yield line_number, submission


def _submission(path: Path, line_number: int, raw_line: bytes | None) -> Submission | None:
    decoded = decode_command(raw_line)
    if decoded is None:
        return None
    where = f"{path}:{line_number}"
    if isinstance(decoded, ErrorCode):
        raise InputError(f"{where}: not a JSON object (each line must be one command)")
    try:
        return Submission.decoded(decoded, actor=CLI_ACTOR)
    except ValueError as error:
        raise InputError(f"{where}: {error}") from None


def cli_actor() -> str:
    """Who submits the commands of an ingest: "cli:" and the operating-system user (whoever
    can run it can write the database file anyway; the journal says who it was)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = f"uid{os.getuid()}"
    printable = "".join(c for c in user if c.isprintable())[: ACTOR_CHARS_MAX - 4]
    return f"cli:{printable or os.getuid()}"


CLI_ACTOR = cli_actor()


def _note_key(keys: dict[str, bytes], submission: Submission, where: str) -> None:
    assert submission.key is not None
    fingerprint = hashlib.sha256(submission.canonical.encode()).digest()
    first = keys.setdefault(submission.key, fingerprint)
    if first != fingerprint:
        raise InputError(
            f"{where}: idempotency_conflict: key {submission.key!r} was used earlier in the file "
            "for another command"
        )


def _check_keys_against_ledger(ledger: Ledger, keys: dict[str, bytes], path: Path) -> None:
    found = ledger.find_keys(sorted(keys), ledger.settings.clock())
    for key, row in sorted(found.items(), key=lambda item: item[1].seq):
        if hashlib.sha256(row.command.encode()).digest() != keys[key]:
            raise InputError(
                f"{path}: idempotency_conflict: key {key!r} is journal entry {row.seq}, "
                "a different command"
            )
