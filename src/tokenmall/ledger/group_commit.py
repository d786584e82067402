"""Group commit: many threads submit commands; one writer thread applies them in arrival
order and commits whatever has queued up (up to the ledger's batch size) in one transaction.

Submitters join the open batch; the writer takes batches in order, commits each as one
transaction, and wakes all of a batch's submitters at once (one event per batch, not per
command: waking threads is the expensive part in CPython). A submitter blocks until the
transaction holding its command has committed, then gets its Result. The queue is bounded: when
it is full, submitters wait (back-pressure) instead of growing memory. A submitter whose wait
times out does not know whether its command committed; that is what idempotency keys are for:
submit again with the same key.
"""

import asyncio
import contextlib
import threading
from collections import defaultdict, deque
from typing import Any

from tokenmall.ledger.ledger import Ledger, Result, Submission
from tokenmall.ledger.store import StoreError

QUEUE_MAX = 65_536
QUEUE_FULL_PAUSE_S = 0.001  # how often an async submitter looks again at a full queue

AsyncWaiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Result]", int]


class LedgerClosed(Exception):
    """The group committer is shutting down and takes no more commands."""


class _Batch:
    __slots__ = ("async_waiters", "done", "error", "results", "submissions")

    def __init__(self) -> None:
        self.submissions: list[Submission] = []
        self.results: list[Result] = []
        self.error: BaseException | None = None
        self.done = threading.Event()  # for threads
        self.async_waiters: list[AsyncWaiter] = []  # for coroutines: (loop, future, index)

    def outcome(self, index: int) -> Result:
        """This submission's result, or a fresh exception of its own to raise."""
        if self.error is None:
            return self.results[index]
        # One exception object raised in many threads at once would collect all their
        # tracebacks: each waiter raises its own.
        if isinstance(self.error, StoreError):
            raise StoreError(str(self.error)) from self.error
        raise RuntimeError(f"the ledger's writer failed: {self.error!r}") from self.error


class GroupCommitter:
    def __init__(self, ledger: Ledger, queue_max: int = QUEUE_MAX) -> None:
        self.ledger = ledger
        self.queue_max = queue_max
        self.batches = 0  # transactions committed, for benchmarks and tests
        self._batch_max = ledger.settings.batch_max
        self._waiting: deque[_Batch] = deque()  # the last one is open for new submissions
        self._queued = 0  # submissions in _waiting
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="tokenmall-writer", daemon=True)
        self._thread.start()

    def submit(
        self, command: dict[str, Any], key: str | None = None, timeout: float | None = None
    ) -> Result:
        """Apply one command durably; ValueError for a command that cannot be journaled,
        LedgerClosed after close(), TimeoutError if no commit came within `timeout` seconds."""
        return self.submit_prepared(Submission.of(command, key), timeout)

    def submit_prepared(self, submission: Submission, timeout: float | None = None) -> Result:
        with self._not_full:
            while self._queued >= self.queue_max and not self._closing:
                self._not_full.wait()
            if self._closing:
                raise LedgerClosed("the ledger is shutting down")
            batch = self._open_batch()
            index = len(batch.submissions)
            batch.submissions.append(submission)
            self._queued += 1
            self._not_empty.notify()
        if not batch.done.wait(timeout):
            raise TimeoutError("no commit within the timeout; resubmit with the same key")
        return batch.outcome(index)

    async def submit_async(self, command: dict[str, Any], key: str | None = None) -> Result:
        """`submit` for a coroutine: the event loop keeps running while the command waits for
        its commit, and a whole batch's coroutines are woken with one call into their loop
        (instead of one OS thread per command). A full queue makes it wait, not block the loop.
        Cancelling the awaiting task does not withdraw a queued command: it may still commit,
        like a thread's timed-out one (resubmit with the same key to learn its result)."""
        return await self.submit_prepared_async(Submission.of(command, key))

    async def submit_prepared_async(self, submission: Submission) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        while True:
            with self._lock:
                if self._closing:
                    raise LedgerClosed("the ledger is shutting down")
                if self._queued < self.queue_max:
                    batch = self._open_batch()
                    batch.async_waiters.append((loop, future, len(batch.submissions)))
                    batch.submissions.append(submission)
                    self._queued += 1
                    self._not_empty.notify()
                    break
            await asyncio.sleep(QUEUE_FULL_PAUSE_S)
        return await future

    def close(self) -> None:
        """Refuse new commands, commit everything already queued, stop the writer thread."""
        with self._lock:
            self._closing = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
        self._thread.join()

    def __enter__(self) -> "GroupCommitter":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _open_batch(self) -> _Batch:
        if not self._waiting or len(self._waiting[-1].submissions) >= self._batch_max:
            self._waiting.append(_Batch())
        return self._waiting[-1]

    def _run(self) -> None:
        while True:
            with self._not_empty:
                while not self._waiting and not self._closing:
                    self._not_empty.wait()
                if not self._waiting:
                    return
                batch = self._waiting.popleft()  # closed to newcomers from here on
                self._queued -= len(batch.submissions)
                self._not_full.notify_all()
            self._commit(batch)

    def _commit(self, batch: _Batch) -> None:
        try:
            batch.results = self.ledger.execute(batch.submissions)
            self.batches += 1
        except BaseException as error:  # every waiter learns of the failure; none is acknowledged
            batch.error = error
        batch.done.set()
        by_loop: defaultdict[asyncio.AbstractEventLoop, list[AsyncWaiter]] = defaultdict(list)
        for waiter in batch.async_waiters:
            by_loop[waiter[0]].append(waiter)
        for loop, waiters in by_loop.items():
            # A closed loop raises RuntimeError: nobody there is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, batch, waiters)


def _settle(batch: _Batch, waiters: list[AsyncWaiter]) -> None:
    """Runs in the waiters' event loop."""
    for _loop, future, index in waiters:
        if future.done():  # its task was cancelled
            continue
        try:
            future.set_result(batch.outcome(index))
        except Exception as error:
            future.set_exception(error)
