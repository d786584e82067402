"""The server's ledger writer, in a process of its own, and the event loop's client of it.

Why a process: applying a command (rules, hash chain, SQLite) is CPU work, and so is serving
HTTP. In one process they share one GIL and one core; in two, the writer runs beside the event
loop on the machine's other core (measured in docs/http-api.md and docs/benchmarks.md).

The protocol is one pipe and one message in flight. The client sends what has queued up since
the last reply (up to the ledger's batch size) as one message: commands, then read queries. The
writer applies the commands as one transaction (group commit), then answers the queries from
the engine, so a query sees every command sent before it, committed. The reply carries the
results in order. While the writer works on one message the next one fills up: the batch size
follows the load by itself.
"""

import asyncio
import json
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from tokenmall.core.errors import InvariantViolation
from tokenmall.ledger.ledger import Ledger, Result, Settings, Submission
from tokenmall.ledger.store import StoreError, first_line
from tokenmall.runtime import tune_gc

START_TIMEOUT_S = 120.0  # migrations and loading a big journal take a while
STOP_TIMEOUT_S = 60.0

Queued = tuple[str, str | None, str | None]  # a command's canonical text, key and actor
Reply = tuple[Any, ...]

# Reads the engine answers between batches, by name: each takes the engine and JSON-ready
# arguments and returns JSON-ready data. The server gives its own (services/queries.py); they
# reach the writer process by reference, so they must be module-level functions.
Queries = Mapping[str, Callable[..., Any]]
QUEUE_MAX_DEFAULT = 16_384  # commands and queries waiting; WriterBusy beyond


class LedgerClosed(Exception):
    """The client is closing (the server is shutting down): it takes no more commands or
    queries; nothing of this one was queued."""


class WriterStopped(StoreError):
    """The writer process is gone: nothing more can be committed until a restart."""


class WriterBusy(StoreError):
    """The queue to the writer is full: try again in a moment (nothing was queued)."""


def run_writer(
    connection: Connection, db: str | None, settings: Settings, queries: Queries
) -> None:
    """The writer process: open the ledger, then apply message after message until the pipe
    closes; then close the ledger and exit."""
    # SIGINT from a terminal reaches the whole process group: the writer must not die in the
    # middle of a batch; it stops when the server closes the pipe, after the last reply.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tune_gc()  # a spawned process: the CLI's tuning does not reach it
    try:
        ledger = Ledger.open(db, settings)
    except Exception as error:  # whatever it is, the parent reports it as one line and exits
        connection.send(("error", _open_failure(error)))
        return
    with ledger:
        connection.send(("ready", ledger.head_seq))
        while True:
            try:
                commands, asked = connection.recv()
            except EOFError:
                return
            try:
                connection.send(_answer(ledger, commands, asked, queries))
            except InvariantViolation as error:
                # Fail-stop: a broken invariant is a bug in the rules. Nothing of this batch was
                # committed; the server answers 503 from now on, until someone looks.
                reason = f"SPEC §6 invariant violated; the ledger's writer stopped: {error}"
                print(f"tokenmall: FATAL: {reason}", file=sys.stderr, flush=True)
                connection.send(("fatal", reason))
                return


def _open_failure(error: Exception) -> str:
    if isinstance(error, StoreError):
        return str(error)
    if isinstance(error, SQLAlchemyError):  # a database that is not a ledger, a disk error, ...
        return f"cannot open the ledger: database error: {first_line(error)}"
    return f"cannot open the ledger: {type(error).__name__}: {first_line(error)}"


def _answer(
    ledger: Ledger, commands: list[Queued], asked: list[tuple[str, tuple[Any]]], queries: Queries
) -> Reply:
    results: list[tuple[int | None, str, bool]] | str
    try:
        batch = [Submission(json.loads(text), text, key, actor) for text, key, actor in commands]
        results = [(r.seq, r.outcome, r.replayed) for r in ledger.execute(batch)]
    except InvariantViolation:
        raise
    except StoreError as error:
        results = str(error)  # nothing of the batch was applied
    except Exception as error:  # a bug: the ledger has reloaded; keep serving the others
        traceback.print_exc()
        results = f"the ledger's writer failed on this batch (nothing applied): {error!r}"
    answers = [queries[name](ledger.engine, *arguments) for name, arguments in asked]
    return ("done", results, answers, ledger.head_seq)


@dataclass
class _Outbox:
    commands: list[Queued] = field(default_factory=list)
    command_futures: list["asyncio.Future[Result]"] = field(default_factory=list)
    queries: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    query_futures: list["asyncio.Future[Any]"] = field(default_factory=list)


class WriterClient:
    """Runs in the server's event loop. `submit` and `query` return when the writer answers;
    `close` lets everything sent or queued finish, then stops the writer."""

    def __init__(
        self,
        db: str | None,
        settings: Settings | None = None,
        queue_max: int = QUEUE_MAX_DEFAULT,
        queries: Queries | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.queue_max = queue_max  # commands and queries waiting; WriterBusy beyond
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._pipe, child_end = context.Pipe()
        self._process = context.Process(
            target=run_writer,
            args=(child_end, db, self.settings, dict(queries or {})),
            name="tokenmall-writer",
            daemon=False,
        )
        self._process.start()
        child_end.close()
        self.head_seq = self._await_ready()
        self.stopped: str | None = None  # why the writer is gone, once it is
        self._closing = False
        self._queued = _Outbox()
        self._in_flight: _Outbox | None = None
        self._idle = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0  # messages of commands sent: transactions, for benchmarks and tests

    def _await_ready(self) -> int:
        if not self._pipe.poll(START_TIMEOUT_S):
            self._process.kill()
            raise StoreError("the ledger's writer did not start in time")
        try:
            kind, value = self._pipe.recv()
        except EOFError:
            raise StoreError("the ledger's writer exited at start") from None
        if kind == "error":
            self._process.join()
            raise StoreError(value)
        return int(value)

    def attach(self) -> None:
        """Start listening for replies (in the event loop that will submit)."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._pipe.fileno(), self._on_reply)
        # uvloop makes the descriptor non-blocking; a reply (or a message) bigger than the pipe's
        # buffer would then fail half read with BlockingIOError, and the server would take the
        # writer for dead. Readiness still wakes _on_reply; it then reads the whole reply.
        os.set_blocking(self._pipe.fileno(), True)
        self._idle.set()

    def submit(self, submission: Submission) -> "asyncio.Future[Result]":
        """The command's Result once committed; StoreError if the commit failed, LedgerClosed
        after `close`."""
        future = self._new_future()
        if not future.done():
            self._queued.commands.append((submission.canonical, submission.key, submission.actor))
            self._queued.command_futures.append(future)
            self._send_if_idle()
        return future

    def query(self, name: str, *arguments: Any) -> "asyncio.Future[Any]":
        """A read of the engine (one of the client's queries, by name), after every command
        submitted before it."""
        future = self._new_future()
        if not future.done():
            self._queued.queries.append((name, arguments))
            self._queued.query_futures.append(future)
            self._send_if_idle()
        return future

    def _new_future(self) -> "asyncio.Future[Any]":
        assert self._loop is not None, "attach() first"
        future: asyncio.Future[Any] = self._loop.create_future()
        waiting = len(self._queued.commands) + len(self._queued.queries)
        if self.stopped is not None:
            future.set_exception(WriterStopped(self.stopped))
        elif self._closing:
            future.set_exception(LedgerClosed("the server is shutting down"))
        elif waiting >= self.queue_max:
            future.set_exception(WriterBusy(f"{waiting} requests wait for the ledger already"))
        return future

    def _send_if_idle(self) -> None:
        if self._in_flight is not None or self.stopped is not None:
            return
        queued = self._queued
        if not queued.commands and not queued.queries:
            return
        # At most one batch of commands per message; the queries ride along with the last one.
        batch_max = self.settings.batch_max
        message = _Outbox(queued.commands[:batch_max], queued.command_futures[:batch_max])
        del queued.commands[:batch_max], queued.command_futures[:batch_max]
        if not queued.commands:
            message.queries, queued.queries = queued.queries, []
            message.query_futures, queued.query_futures = queued.query_futures, []
        try:
            self._pipe.send((message.commands, message.queries))
        except OSError as error:
            self._stop(f"the ledger's writer is gone: {error}", message)
            return
        self._in_flight = message
        self._idle.clear()
        if message.commands:
            self.batches += 1

    def _on_reply(self) -> None:
        message, self._in_flight = self._in_flight, None
        try:
            reply = self._pipe.recv()
        except (EOFError, OSError):
            self._stop("the ledger's writer stopped; restart the server", message)
            return
        if reply[0] == "fatal":
            self._stop(reply[1], message)
            return
        _kind, results, answers, self.head_seq = reply
        if message is None:
            return
        _settle(message.command_futures, results)
        for future, answer in zip(message.query_futures, answers, strict=True):
            if not future.done():
                future.set_result(answer)
        self._send_if_idle()
        if self._in_flight is None:
            self._idle.set()

    def _stop(self, reason: str, message: _Outbox | None) -> None:
        self.stopped = reason
        if self._loop is not None:
            self._loop.remove_reader(self._pipe.fileno())
        for outbox in (message, self._queued):
            if outbox is None:
                continue
            for future in (*outbox.command_futures, *outbox.query_futures):
                if not future.done():
                    future.set_exception(WriterStopped(reason))
        self._queued = _Outbox()
        self._idle.set()

    async def close(self) -> None:
        """Refuse new work, let what was submitted commit, then stop the writer process (it
        closes the ledger) and wait for it."""
        self._closing = True
        while self._in_flight is not None or self._queued.commands or self._queued.queries:
            await self._idle.wait()
            self._send_if_idle()
        if self._loop is not None and self.stopped is None:
            self._loop.remove_reader(self._pipe.fileno())
        self._pipe.close()
        await asyncio.to_thread(self._process.join, STOP_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()

    def kill(self) -> None:
        """For a server that fails before it runs: stop the writer at once."""
        self._pipe.close()
        self._process.join(STOP_TIMEOUT_S)


def _settle(futures: list["asyncio.Future[Result]"], results: list[Any] | str) -> None:
    for index, future in enumerate(futures):
        if future.done():  # its request was cancelled; the command may still have committed
            continue
        if isinstance(results, str):
            future.set_exception(StoreError(results))
        else:
            seq, outcome, replayed = results[index]
            future.set_result(Result(seq, outcome, replayed))
