"""Group commit: many threads submit commands; one writer thread applies them in arrival
order and commits whatever has queued up (up to the ledger's batch size) in one transaction.

A submitter blocks until the transaction holding its command has committed, then gets its
Result. The queue is bounded: when it is full, submitters wait (back-pressure) instead of
growing memory. A submitter whose wait times out does not know whether its command committed;
that is what idempotency keys are for: submit again with the same key.
"""

import threading
from collections import deque
from typing import Any

from tokenmall.ledger.ledger import Ledger, Result, Submission

QUEUE_MAX = 65_536


class LedgerClosed(Exception):
    """The group committer is shutting down and takes no more commands."""


class _Ticket:
    __slots__ = ("done", "error", "result", "submission")

    def __init__(self, submission: Submission) -> None:
        self.submission = submission
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class GroupCommitter:
    def __init__(self, ledger: Ledger, queue_max: int = QUEUE_MAX) -> None:
        self.ledger = ledger
        self.queue_max = queue_max
        self.batches = 0  # transactions committed, for benchmarks and tests
        self._pending: deque[_Ticket] = deque()
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
        ticket = _Ticket(submission)
        with self._not_full:
            while len(self._pending) >= self.queue_max and not self._closing:
                self._not_full.wait()
            if self._closing:
                raise LedgerClosed("the ledger is shutting down")
            self._pending.append(ticket)
            self._not_empty.notify()
        if not ticket.done.wait(timeout):
            raise TimeoutError("no commit within the timeout; resubmit with the same key")
        if ticket.error is not None:
            raise ticket.error
        assert ticket.result is not None
        return ticket.result

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

    def _run(self) -> None:
        batch_max = self.ledger.settings.batch_max
        while True:
            with self._not_empty:
                while not self._pending and not self._closing:
                    self._not_empty.wait()
                if not self._pending:
                    return
                count = min(len(self._pending), batch_max)
                batch = [self._pending.popleft() for _ in range(count)]
                self._not_full.notify_all()
            self._commit(batch)

    def _commit(self, batch: list[_Ticket]) -> None:
        try:
            results = self.ledger.execute([ticket.submission for ticket in batch])
        except BaseException as error:  # every waiter learns of the failure; none is acknowledged
            for ticket in batch:
                ticket.error = error
                ticket.done.set()
            return
        self.batches += 1
        for ticket, result in zip(batch, results, strict=True):
            ticket.result = result
            ticket.done.set()
