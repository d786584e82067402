"""Coroutines submitting through GroupCommitter.submit_async: grouped like threads, each gets
its own result after the commit, failures and shutdown reach every waiter, cancellation is safe."""

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tokenmall.core.params import Params
from tokenmall.jsonl import replay_lines
from tokenmall.ledger.audit import verify
from tokenmall.ledger.group_commit import GroupCommitter, LedgerClosed
from tokenmall.ledger.ledger import IDEMPOTENCY_CONFLICT, Ledger, Result, Settings
from tokenmall.ledger.store import StoreError, resolve_url
from tokenmall.ledger.views import export_lines, open_reader, read_state

CLIENTS = 40
ORDERS_EACH = 5


async def client(committer: GroupCommitter, index: int) -> list[Result]:
    user = f"u{index}"
    results = [await committer.submit_async({"op": "register", "user": user})]
    for n in range(ORDERS_EACH):
        order = {"op": "order", "id": f"{user}-o{n}", "user": user, "amount": "10.00"}
        results.append(await committer.submit_async(order, key=f"{user}-k{n}"))
    # the same key again: the first result, no second effect; another command: a conflict
    again = {"op": "order", "id": f"{user}-o0", "user": user, "amount": "10.00"}
    results.append(await committer.submit_async(again, key=f"{user}-k0"))
    other = {"op": "order", "id": f"{user}-x", "user": user, "amount": "99.00"}
    results.append(await committer.submit_async(other, key=f"{user}-k0"))
    results.append(await committer.submit_async({"op": "sell", "user": user, "points": "9999"}))
    return results


def test_coroutines_are_grouped_and_each_gets_its_result(db_url: str) -> None:
    ledger = Ledger.open(db_url, Settings())
    committer = GroupCommitter(ledger)

    async def everyone() -> list[list[Result]]:
        return await asyncio.gather(*(client(committer, i) for i in range(CLIENTS)))

    per_client = asyncio.run(everyone())
    committer.close()
    submissions = sum(len(results) for results in per_client)
    assert committer.batches < submissions / 4  # really grouped
    seqs: list[int] = []
    for results in per_client:
        register, *orders, again, other, sell = results
        assert register.ok and all(order.ok for order in orders)
        assert again == Result(orders[0].seq, "ok", replayed=True)
        assert other == Result(None, IDEMPOTENCY_CONFLICT)
        assert sell.outcome == "insufficient_points"
        seqs += [r.seq for r in (register, *orders, sell) if r.seq is not None]
    assert sorted(seqs) == list(range(1, len(seqs) + 1))  # none lost, none doubled
    assert ledger.head_seq == len(seqs)
    ledger.close()
    store = open_reader(resolve_url(db_url))
    try:
        state = read_state(store)
        assert state == replay_lines([line.encode() for line in export_lines(store)], Params())
        assert verify(store).ok
    finally:
        store.close()


def test_a_failed_commit_reaches_every_coroutine_of_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger.open(str(path), Settings())
    committer = GroupCommitter(ledger)
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:  # the store says no
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON journal "
            "BEGIN SELECT RAISE(ABORT, 'refused by the store'); END"
        )

    async def submit_many() -> list[BaseException | Result]:
        return await asyncio.gather(
            *(committer.submit_async({"op": "register", "user": f"r{i}"}) for i in range(8)),
            return_exceptions=True,
        )

    try:
        outcomes = asyncio.run(submit_many())
    finally:
        committer.close()
        ledger.close()
    assert all(isinstance(outcome, StoreError) for outcome in outcomes), outcomes
    assert all("refused by the store" in str(outcome) for outcome in outcomes)
    assert len({id(outcome) for outcome in outcomes}) == len(outcomes)  # each its own
    assert ledger.head_seq == 0


def test_after_close_coroutines_are_refused(sqlite_url: str) -> None:
    ledger = Ledger.open(sqlite_url, Settings())
    committer = GroupCommitter(ledger)
    committer.close()
    with pytest.raises(LedgerClosed):
        asyncio.run(committer.submit_async({"op": "register", "user": "late"}))
    ledger.close()


def test_a_cancelled_coroutine_does_not_break_the_batch(sqlite_url: str) -> None:
    ledger = Ledger.open(sqlite_url, Settings())
    committer = GroupCommitter(ledger, queue_max=2)

    async def scenario() -> list[Result]:
        doomed = asyncio.create_task(committer.submit_async({"op": "register", "user": "gone"}))
        await asyncio.sleep(0)
        doomed.cancel()
        # a queue of 2 under 20 submitters: they wait for room without blocking the loop
        return await asyncio.gather(
            *(committer.submit_async({"op": "register", "user": f"s{i}"}) for i in range(20))
        )

    results = asyncio.run(scenario())
    committer.close()
    assert all(result.ok for result in results)
    # The cancelled one may or may not have been committed; the journal says which, and the
    # ledger stays consistent either way.
    assert ledger.head_seq in (20, 21)
    ledger.close()
    store = open_reader(resolve_url(sqlite_url))
    try:
        assert verify(store).ok
    finally:
        store.close()
