"""The daily report (报表) is the `day_totals` read model: what each UTC day's journal entries
did, added to by every batch in the batch's transaction. Checked against totals worked out
apart from the projector (tests/support/day_totals.py), over three days whose batches cross
midnight, on both backends, as the writer wrote it and as a fill from the journal rebuilds it
(one chunk holding entries of several days)."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.support.day_totals import DayReference, same_totals
from tests.support.workload import MixGenerator
from tokenmall.core.engine import Engine
from tokenmall.core.params import Params
from tokenmall.ledger import ledger as ledger_module
from tokenmall.ledger.ledger import Ledger, Settings, Submission, timestamp
from tokenmall.ledger.projections import DayTotals
from tokenmall.ledger.store import resolve_url
from tokenmall.ledger.views import open_reader
from tokenmall.services.daily_report import FIGURES, daily_report, lines

PARAMS = Params().with_overrides(
    {
        "referral_rates": ["0.10", "0.05"],
        "agent_rates": ["0.02", "0.01", "0"],
        "withdraw_min": "0.01",
        "withdraw_review_above": "0.30",
    }
)
BANK = {"method": "bank", "name": "张三", "account": "6222020200001234567", "bank": "工商银行"}
START = datetime(2026, 11, 29, 23, 0, tzinfo=UTC)  # an hour before midnight
STEP = timedelta(hours=4)
DAYS = ("2026-11-29", "2026-11-30", "2026-12-01")


class Clock:
    """The ledger's clock: each batch STEP after the one before, so batches of the
    same day share a day's row and the stream crosses two midnights."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def workload() -> list[dict[str, object]]:
    commands = MixGenerator(60, seed=3, settle_every=150).commands(900)
    commands += [{"op": "register_agent", "agent": "gz", "region": "4401"}]
    commands += [
        {"op": "order", "id": f"r{n}", "user": "u00001", "amount": "300.00", "region": "440106"}
        for n in range(3)
    ]
    sellers = sorted({str(c["user"]) for c in commands if c["op"] == "sell" and "user" in c})
    commands += [
        {"op": "withdraw", "id": f"w{n}", "user": user, "amount": "0.50", "payee": BANK}
        for n, user in enumerate(sellers)
    ]
    small = {"op": "withdraw", "id": "ws", "user": sellers[0], "amount": "0.20", "payee": BANK}
    commands += [
        {"op": "approve_withdrawal", "id": "w0"},
        {"op": "complete_withdrawal", "id": "w0", "reference": "B1"},
        {"op": "reject_withdrawal", "id": "w1", "reason": "户名不符"},
        {"op": "approve_withdrawal", "id": "w2"},
        {"op": "fail_withdrawal", "id": "w2"},
        small,  # under withdraw_review_above: approved as it is requested
        {"op": "complete_withdrawal", "id": "ws", "reference": "B2"},
        {"op": "refund", "order": "r2"},
    ]
    return commands


def test_each_days_report_is_what_its_entries_did(db_url: str) -> None:
    commands = workload()
    clock = Clock()
    recorded: list[str] = []  # the day of each journal entry, in order
    with Ledger.open(db_url, Settings(clock=clock), PARAMS) as ledger:
        for first in range(0, len(commands), 97):
            batch = commands[first : first + 97]
            before = ledger.head_seq
            ledger.execute([Submission.decoded(c) for c in batch])
            recorded += [timestamp(clock.now)[:10]] * (ledger.head_seq - before)
            clock.now += STEP
        assert ledger.head_seq == len(commands)  # nothing replayed: every command an entry

    engine = Engine(PARAMS)
    reference = DayReference(engine)
    expected = {day: DayTotals(day) for day in DAYS}
    for seq, (command, day) in enumerate(zip(commands, recorded, strict=True), start=1):
        reference.apply(command, seq, expected[day])
    with_everything = expected[DAYS[1]]
    assert with_everything.cash_orders > 50 and with_everything.settlements >= 2
    assert sum(expected[day].referral_units for day in DAYS) > 0
    assert expected[DAYS[2]].withdrawals_requested > 0
    assert expected[DAYS[2]].agent_commissions_fen > 0 and expected[DAYS[2]].refunds > 0
    last = expected[DAYS[2]]
    assert (last.withdrawals_paid, last.withdrawals_paid_fen) == (2, 70)
    assert (last.withdrawals_returned, last.withdrawals_returned_fen) == (2, 100)

    store = open_reader(resolve_url(db_url))
    try:
        for day in DAYS:
            assert same_totals(daily_report(store, day), expected[day], reference), day
        assert daily_report(store, "2026-11-28") == DayTotals("2026-11-28")  # no entries
        assert [line.key for line in lines(daily_report(store, DAYS[0]))] == [
            key for key, _unit in FIGURES
        ]
    finally:
        store.close()


def test_a_fill_from_the_journal_rebuilds_the_same_days(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = workload()[:700]
    clock = Clock()
    with Ledger.open(db_url, Settings(clock=clock), PARAMS) as ledger:
        for first in range(0, len(commands), 50):
            ledger.execute([Submission.decoded(c) for c in commands[first : first + 50]])
            clock.now += STEP
    store = open_reader(resolve_url(db_url))
    try:
        written = [daily_report(store, day) for day in DAYS]
        with store.engine.begin() as connection:
            connection.execute(sa.text("UPDATE ledger_head SET projected_seq = 0"))
    finally:
        store.close()
    assert all(report.entries for report in written)
    # a chunk of the fill holds entries of two days: the day changes inside a projection
    monkeypatch.setattr(ledger_module, "PROJECT_CHUNK_ENTRIES", 333)
    with Ledger.open(db_url, Settings(clock=clock)):
        pass
    store = open_reader(resolve_url(db_url))
    try:
        assert [daily_report(store, day) for day in DAYS] == written
    finally:
        store.close()
