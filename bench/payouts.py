"""What a day of bank payouts costs: export a batch, write its file, import the bank's result
file, reconcile the statement, for N approved withdrawals, on SQLite.

    .venv/bin/python bench/payouts.py [--withdrawals 5000] [--runs 3]

The baseline, measured in the same run: the same N complete_withdrawal commands applied by
the ledger directly, in one batch (what the outcomes cost the ledger alone). The import does
more per line (its checks, one transaction each, so that a kill loses at most the line in
flight): the ratio says what that costs. Medians of the runs.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The repository's root instead of bench/ (whose http.py would shadow the standard library's
# http package that httpx, imported by the tests' helpers, needs).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from tests.test_payouts import SETUP, result_csv, withdrawals  # noqa: E402

from tokenmall.ledger.ledger import Ledger, Settings, Submission  # noqa: E402
from tokenmall.payouts.channels import (  # noqa: E402
    Routes,
    batch_file,
    export_batch,
    import_results,
    ledger_submitter,
)
from tokenmall.payouts.service import reconcile_file  # noqa: E402
from tokenmall.payouts.store import PayoutStore  # noqa: E402


def prepared(directory: Path, count: int) -> Ledger:
    """A ledger with `count` approved withdrawals of alice's."""
    setup: list[dict[str, Any]] = [dict(c) for c in SETUP]
    setup[2] = {**setup[2], "amount": "100000.00"}
    setup[0] = {
        "op": "set_params",
        "params": {"withdraw_min": "0.01", "withdraw_daily_max": "1000000.00"},
    }
    ledger = Ledger.open(str(directory / "ledger.db"), Settings())
    commands = setup + withdrawals(count)
    for start in range(0, len(commands), 4096):
        results = ledger.execute([Submission.of(c) for c in commands[start : start + 4096]])
        assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
    return ledger


def one_run(count: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        ledger = prepared(Path(scratch), count)
        payouts = PayoutStore(ledger.store)
        started = time.perf_counter()
        made = export_batch(payouts, Routes(), "bench")
        figures["export"] = time.perf_counter() - started
        assert made.lines == count and made.batch is not None
        started = time.perf_counter()
        data = batch_file(payouts, made.batch, "xlsx")
        figures["xlsx file"] = time.perf_counter() - started
        assert data is not None
        lines = [(f"w{n}", f"1.{n % 100:02d}", "成功", f"B{n:06d}") for n in range(1, count + 1)]
        result = result_csv(lines)

        started = time.perf_counter()
        submit_all = ledger_submitter(ledger)
        report = asyncio.run(import_results(payouts, submit_all, result, "r.csv", "bench"))
        figures["import"] = time.perf_counter() - started
        assert report["applied"] == count, report["refused"]
        started = time.perf_counter()
        differences, _ = reconcile_file(payouts, result, "s.csv", "manual", None, None)
        figures["reconcile"] = time.perf_counter() - started
        assert differences == []
        ledger.close()
    # the baseline: the same outcomes applied by the ledger alone, in one batch
    with tempfile.TemporaryDirectory() as scratch:
        ledger = prepared(Path(scratch), count)
        commands = [
            Submission.of({"op": "complete_withdrawal", "id": f"w{n}", "reference": f"B{n:06d}"})
            for n in range(1, count + 1)
        ]
        started = time.perf_counter()
        for start in range(0, count, 4096):
            assert all(r.ok for r in ledger.execute(commands[start : start + 4096]))
        figures["baseline: outcomes in one batch"] = time.perf_counter() - started
        ledger.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--withdrawals", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    runs = [one_run(arguments.withdrawals) for _ in range(arguments.runs)]
    count = arguments.withdrawals
    print(f"{count} withdrawals, median of {arguments.runs} runs (SQLite):")
    for name in runs[0]:
        seconds = statistics.median(run[name] for run in runs)
        print(f"  {name:34s} {seconds:8.3f} s  {count / seconds:10,.0f} lines/s")


if __name__ == "__main__":
    main()
