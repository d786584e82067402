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

import threading
from collections import deque
from typing import Any

from tokenmall.ledger.ledger import Ledger, Result, Submission
from tokenmall.ledger.store import StoreError

QUEUE_MAX = 65_536


class LedgerClosed(Exception):
    """The group committer is shutting down and takes no more commands."""


class _Batch:
    __slots__ = ("done", "error", "results", "submissions")

    def __init__(self) -> None:
        self.submissions: list[Submission] = []
        self.results: list[Result] = []
        self.error: BaseException | None = None
        self.done = threading.Event()


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
        if batch.error is not None:
            # Each waiter raises its own exception: one object raised in many threads at once
            # would collect all their tracebacks.
            if isinstance(batch.error, StoreError):
                raise StoreError(str(batch.error)) from batch.error
            raise RuntimeError(f"the ledger's writer failed: {batch.error!r}") from batch.error
        return batch.results[index]

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
