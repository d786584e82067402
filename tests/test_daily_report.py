"""The daily report kept up to date: the report of a day's first entries plus the report of
the entries after them is the report of all of them (daily_report.add), for every way of
cutting a day of the benchmarks' mix in two."""

from datetime import UTC, datetime
from pathlib import Path

from tests.support.workload import MixGenerator
from tokenmall.core.params import Params
from tokenmall.ledger.ledger import Ledger, Settings, Submission
from tokenmall.services.daily_report import (
    DailyReport,
    add,
    daily_report,
    day_entries,
    report_accounts,
)

PARAMS = Params().with_overrides(
    {
        "referral_rates": ["0.10", "0.05"],
        "agent_rates": ["0.02", "0.01", "0"],
        "withdraw_min": "0.01",
    }
)
BANK = {"method": "bank", "name": "张三", "account": "6222020200001234567", "bank": "工商银行"}


def report(ledger: Ledger, day: str, after_seq: int = 0) -> DailyReport:
    entries = day_entries(ledger.store, day, after_seq)
    accounts = report_accounts(ledger.engine, entries.buyers())
    return daily_report(ledger.store, entries, accounts)


def test_a_report_brought_up_to_date_equals_one_made_whole(tmp_path: Path) -> None:
    commands = MixGenerator(60, seed=3, settle_every=150).commands(900)
    commands += [{"op": "register_agent", "agent": "gz", "region": "4401"}]
    commands += [
        {"op": "order", "id": f"r{n}", "user": "u00001", "amount": "300.00", "region": "440106"}
        for n in range(3)
    ]
    commands += [
        {"op": "withdraw", "id": f"w{n}", "user": user, "amount": "0.50", "payee": BANK}
        for n, user in enumerate(sorted({c["user"] for c in commands if c["op"] == "sell"}))
    ]
    day = datetime.now(UTC).date().isoformat()
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", Settings(), PARAMS) as ledger:
        made = {}  # the report as the page made it at each journal head
        for first in range(0, len(commands), 97):
            ledger.execute([Submission.decoded(c) for c in commands[first : first + 97]])
            made[ledger.head_seq] = report(ledger, day)
        whole = report(ledger, day)
        assert whole.cash_orders > 100 and whole.referral_units > 0 and whole.settlements > 3
        assert whole.withdrawals_requested > 0 and whole.agent_commissions_fen > 0
        for cut, earlier in made.items():
            assert add(earlier, report(ledger, day, after_seq=cut)) == whole, cut
        assert add(whole, report(ledger, day, after_seq=ledger.head_seq)) == whole
