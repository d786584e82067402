"""The bank file channel and reconciliation (issue 13) on a real ledger, SQLite and
PostgreSQL: a withdrawal goes into one batch only, a result file completes or fails each line
exactly once (the same file twice changes nothing; an unknown withdrawal or another amount is
reported and changes nothing), and `tokenmall payouts reconcile` finds every difference. The
import is killed with SIGKILL half way and run again: nothing is paid twice, nothing lost."""

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openpyxl  # type: ignore[import-untyped]
import pytest

from tests.test_cli import tokenmall
from tokenmall.ledger.ledger import Ledger, Result, Settings, Submission
from tokenmall.ledger.views import open_reader, read_state
from tokenmall.payouts.channels import (
    ALREADY,
    AMOUNT_DIFFERS,
    APPLIED,
    NOT_HELD,
    TWICE,
    UNKNOWN,
    Routes,
    batch_file,
    enqueue_payouts,
    export_batch,
    import_results,
    ledger_submitter,
)
from tokenmall.payouts.store import PayoutStore

BANK = {"method": "bank", "name": "张三", "account": "6222020200001234567", "bank": "工商银行"}
WECHAT = {"method": "wechat", "name": "李四", "account": "o6_bmjrPTlm6"}
SETUP: list[dict[str, Any]] = [
    {"op": "set_params", "params": {"withdraw_min": "0.01"}},
    {"op": "register", "user": "alice"},
    {"op": "order", "id": "o1", "user": "alice", "amount": "5000.00"},
    {"op": "sell", "user": "alice", "points": "all"},
]


def withdrawals(
    count: int, payee: dict[str, str] | None = BANK, first: int = 1
) -> list[dict[str, Any]]:
    """`count` withdrawals of 1.00 + n fen each, requested and approved."""
    commands: list[dict[str, Any]] = []
    for number in range(first, first + count):
        command: dict[str, Any] = {"op": "withdraw", "id": f"w{number}", "user": "alice"}
        command["amount"] = f"1.{number % 100:02d}"
        if payee is not None:
            command["payee"] = payee
        commands += [command, {"op": "approve_withdrawal", "id": f"w{number}"}]
    return commands


def run(ledger: Ledger, commands: list[dict[str, Any]]) -> list[Result]:
    results = ledger.execute([Submission.of(command) for command in commands])
    assert all(result.ok for result in results), results
    return results


def import_file(ledger: Ledger, data: bytes, name: str) -> dict[str, Any]:
    payouts = PayoutStore(ledger.store)
    submit_all = ledger_submitter(ledger)
    return asyncio.run(import_results(payouts, submit_all, data, name, "finance:tk_test"))


def result_csv(lines: list[tuple[str, str, str, str]]) -> bytes:
    """A bank's result file: (withdrawal, amount, status, reference) per line."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["序号", "备注", "金额", "处理结果", "银行流水号", "失败原因"])
    for number, (withdrawal, amount, status, reference) in enumerate(lines, start=1):
        reason = "户名不符" if status == "失败" else ""
        writer.writerow([number, withdrawal, amount, status, reference, reason])
    return out.getvalue().encode("gb18030")  # as Chinese banks' exports often are


def statuses(ledger: Ledger) -> dict[str, str]:
    state = read_state(ledger.store)
    return {wid: w["status"] for wid, w in state["withdrawals"].items()}


def test_a_withdrawal_goes_into_one_batch_and_its_file_reads_back(db_url: str) -> None:
    with Ledger.open(db_url, Settings()) as ledger:
        run(ledger, SETUP + withdrawals(3) + withdrawals(1, None, first=4))
        run(
            ledger,
            [{"op": "withdraw", "id": "w5", "user": "alice", "amount": "2.00", "payee": WECHAT}],
        )
        run(ledger, [{"op": "approve_withdrawal", "id": "w5"}])
        run(
            ledger,
            [{"op": "withdraw", "id": "w6", "user": "alice", "amount": "2.00", "payee": BANK}],
        )
        payouts = PayoutStore(ledger.store)
        routes = Routes({"bank": "manual", "wechat": "webhook", "alipay": "manual"})
        made = export_batch(payouts, routes, "finance:tk_a")
        # w4 has no payee (listed, not claimed); w5 goes to the service; w6 is not approved
        assert (made.lines, made.total_fen) == (3, 101 + 102 + 103)
        assert made.skipped == [
            {"withdrawal": "w4", "reason": "no usable payee (收款账户) in the request: reject it"}
        ]
        assert made.batch is not None and made.batch.startswith("B")
        again = export_batch(payouts, routes, "finance:tk_b")
        assert (again.batch, again.lines) == (None, 0)  # nothing goes into a second batch
        # finance may send a withdrawal to the bank by name, whatever its route
        chosen = export_batch(payouts, routes, "finance:tk_b", ids=["w5", "w6", "w1"])
        assert (chosen.lines, chosen.total_fen) == (1, 200)
        assert [s["withdrawal"] for s in chosen.skipped] == ["w6", "w1"]
        assert chosen.batch is not None and chosen.batch > made.batch
        for fmt in ("csv", "xlsx"):
            data = batch_file(payouts, made.batch, fmt)
            assert data is not None
            assert batch_file(payouts, made.batch, fmt) == data
        csv_data = batch_file(payouts, made.batch, "csv")
        assert csv_data is not None and csv_data.startswith(b"\xef\xbb\xbf")
        header = csv_data.decode("utf-8-sig").splitlines()[0]
        assert header == "序号,收款人姓名,收款账号,开户行,金额,备注"
        workbook = openpyxl.load_workbook(
            io.BytesIO(batch_file(payouts, made.batch, "xlsx") or b"")
        )
        rows = list(workbook.active.iter_rows(values_only=True))
        assert rows[1][1:] == ("张三", "6222020200001234567", "工商银行", "1.01", "w1")
        assert [row[5] for row in rows[1:]] == ["w1", "w2", "w3"]
        # every claim names its batch and who made it
        held = payouts.payouts_in(made.batch)
        assert [(row.withdrawal, row.state, row.claimed_by) for row in held] == [
            (f"w{n}", "exported", "finance:tk_a") for n in (1, 2, 3)
        ]


def test_a_result_file_applies_each_line_once(db_url: str) -> None:
    with Ledger.open(db_url, Settings()) as ledger:
        run(ledger, SETUP + withdrawals(4))
        payouts = PayoutStore(ledger.store)
        made = export_batch(payouts, Routes(), "finance:tk_a")
        assert made.lines == 4
        cash_before = read_state(ledger.store)["users"]["alice"]["cash"]
        data = result_csv(
            [
                ("w1", "1.01", "成功", "BANK001"),
                ("w2", "1.02", "失败", ""),
                ("w3", "9.99", "成功", "BANK003"),  # not the amount handed over
                ("w9", "1.00", "成功", "BANK009"),  # no such withdrawal
                ("w1", "1.01", "成功", "BANK001"),  # twice in the file
            ]
        )
        report = import_file(ledger, data, "result.csv")
        assert [(r["withdrawal"], r["result"]) for r in report["results"]] == [
            ("w1", APPLIED),
            ("w2", APPLIED),
            ("w3", AMOUNT_DIFFERS),
            ("w9", UNKNOWN),
            ("w1", TWICE),
        ]
        assert (report["applied"], report["refused"], report["imported_before"]) == (2, 3, False)
        assert statuses(ledger) == {
            "w1": "paid",
            "w2": "failed",
            "w3": "approved",
            "w4": "approved",
        }
        state = read_state(ledger.store)
        assert state["withdrawals"]["w1"]["reference"] == "BANK001"
        # the failed line's money is back in alice's cash
        assert _fen(state["users"]["alice"]["cash"]) == _fen(cash_before) + 102
        head = ledger.head_seq

        # the same file again: its first report, nothing applied, no journal entry
        again = import_file(ledger, data, "result-copy.csv")
        assert again["imported_before"] is True
        assert again["results"] == report["results"]
        assert ledger.head_seq == head
        # another file with w1 again: applied before (the key payout:w1), nothing changes
        later = import_file(
            ledger,
            result_csv([("w1", "1.01", "成功", "BANK001"), ("w4", "1.04", "成功", "BANK004")]),
            "r2.csv",
        )
        assert [(r["withdrawal"], r["result"]) for r in later["results"]] == [
            ("w1", ALREADY),
            ("w4", APPLIED),
        ]
        assert ledger.head_seq == head + 1
        # a withdrawal not exported in a bank batch is not the bank's to report
        run(ledger, withdrawals(1, first=5))
        refused = import_file(ledger, result_csv([("w5", "1.05", "成功", "BANK005")]), "r3.csv")
        assert refused["results"][0]["result"] == NOT_HELD
        assert statuses(ledger)["w5"] == "approved"
        # each outcome's journal entry names who imported the file, under the key payout:<id>
        with ledger.store.reading() as connection:
            entries = [
                (r.idem_key, r.actor) for r in ledger.store.journal_rows(connection) if r.idem_key
            ]
        assert entries == [
            ("payout:w1", "finance:tk_test"),
            ("payout:w2", "finance:tk_test"),
            ("payout:w4", "finance:tk_test"),
        ]


def _fen(text: str) -> int:
    whole, _, cents = text.partition(".")
    return int(whole) * 100 + int(cents)


def test_an_unreadable_result_file_changes_nothing(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url, Settings()) as ledger:
        run(ledger, SETUP + withdrawals(1))
        export_batch(PayoutStore(ledger.store), Routes(), "finance:tk_a")
        head = ledger.head_seq
        for data in (b"\x00\x01garbage", "备注,金额\nw1,1.01\n".encode(), b""):
            with pytest.raises(ValueError, match=r"."):
                import_file(ledger, data, "result.csv")
        assert ledger.head_seq == head
        assert statuses(ledger) == {"w1": "approved"}


# -- the command line: export, import killed half way, reconcile ---------------------------------


def ingest(directory: Path, commands: list[dict[str, Any]]) -> None:
    scenario = directory / "setup.jsonl"
    scenario.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in commands))
    done = tokenmall("ingest", scenario, "--db", "ledger.db", cwd=directory)
    assert done.returncode == 0, done.stderr


def journal_outcomes(directory: Path) -> list[dict[str, Any]]:
    exported = tokenmall("journal", "export", "--db", "ledger.db", cwd=directory)
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    return [c for c in lines if c["op"] in ("complete_withdrawal", "fail_withdrawal")]


def test_an_import_killed_half_way_and_run_again_pays_each_line_once(tmp_path: Path) -> None:
    count = 300
    ingest(tmp_path, SETUP + withdrawals(count))
    exported = tokenmall(
        "payouts",
        "export",
        "--db",
        "ledger.db",
        "--format",
        "xlsx",
        "--out",
        "b.xlsx",
        cwd=tmp_path,
    )
    assert exported.returncode == 0, exported.stderr
    assert f": {count} withdrawals" in exported.stdout.decode()
    sheet = openpyxl.load_workbook(tmp_path / "b.xlsx").active
    lines = [(str(row[5]), str(row[4])) for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert len(lines) == count
    result = tmp_path / "result.csv"
    result.write_bytes(
        result_csv(
            [
                (withdrawal, amount, "成功", f"B{n:05d}")
                for n, (withdrawal, amount) in enumerate(lines)
            ]
        )
    )
    command = [
        sys.executable,
        "-m",
        "tokenmall.cli",
        "payouts",
        "import",
        str(result),
        "--db",
        "ledger.db",
        "--batch-size",  # many transactions, so that the kill lands between two
        "5",
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    store = open_reader(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        deadline = time.monotonic() + 60
        while True:  # until some lines are applied, not all
            paid = _paid_count(store)
            if paid >= 20 or process.poll() is not None:
                break
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        assert 0 < (killed_at := _paid_count(store)) < count, "the import was not stopped half way"
    finally:
        store.close()
    again = tokenmall("payouts", "import", result, "--db", "ledger.db", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    summary = again.stderr.decode()
    assert f"{count - killed_at} applied, {killed_at} applied before, 0 refused" in summary, summary
    outcomes = journal_outcomes(tmp_path)
    assert sorted(c["id"] for c in outcomes) == sorted(f"w{n}" for n in range(1, count + 1))
    audit = tokenmall("audit", "verify", "--db", "ledger.db", cwd=tmp_path)
    assert audit.returncode == 0, audit.stdout
    # and once more: imported before, nothing applied
    third = tokenmall("payouts", "import", result, "--db", "ledger.db", cwd=tmp_path)
    assert "imported before; nothing applied now" in third.stderr.decode()
    assert len(journal_outcomes(tmp_path)) == count


def _paid_count(store: Any) -> int:
    with store.reading() as connection:
        return int(
            connection.exec_driver_sql(
                "SELECT count(*) FROM withdrawal_list WHERE status = 'paid'"
            ).scalar_one()
        )


def _money(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def test_reconcile_lists_every_difference(tmp_path: Path) -> None:
    ingest(tmp_path, SETUP + withdrawals(5))
    assert (
        tokenmall(
            "payouts",
            "export",
            "--db",
            "ledger.db",
            "--out",
            "b.csv",
            "--format",
            "csv",
            cwd=tmp_path,
        ).returncode
        == 0
    )
    result = tmp_path / "result.csv"
    result.write_bytes(
        result_csv(
            [
                ("w1", "1.01", "成功", "R1"),
                ("w2", "1.02", "成功", "R2"),
                ("w3", "1.03", "成功", "R3"),
                ("w4", "1.04", "失败", ""),
            ]
        )
    )
    assert tokenmall("payouts", "import", result, "--db", "ledger.db", cwd=tmp_path).returncode == 0

    def reconcile(lines: list[tuple[str, str, str, str]], *extra: str) -> tuple[int, str]:
        (tmp_path / "statement.csv").write_bytes(result_csv(lines))
        done = tokenmall(
            "payouts", "reconcile", "statement.csv", "--db", "ledger.db", *extra, cwd=tmp_path
        )
        assert done.returncode in (0, 1), done.stderr
        return done.returncode, done.stdout.decode()

    agree = [
        ("w1", "1.01", "成功", "R1"),
        ("w2", "1.02", "成功", "R2"),
        ("w3", "1.03", "成功", "R3"),
    ]
    assert reconcile(agree) == (0, "")
    status, text = reconcile(
        [
            ("w1", "1.01", "成功", "R1"),
            ("w1", "1.01", "成功", "R1b"),  # paid twice by the bank
            ("w2", "1.20", "成功", "R2"),  # another amount
            ("w4", "1.04", "成功", "R4"),  # the ledger says failed: money left without a record
            ("w9", "5.00", "成功", "R9"),  # no such withdrawal
        ],
        "--xlsx",
        "diff.xlsx",
    )
    assert status == 1
    kinds = sorted((line.split("\t")[0], line.split("\t")[1]) for line in text.splitlines())
    assert kinds == sorted(
        [
            ("paid_there_not_here", "w4"),
            ("paid_there_not_here", "w9"),
            ("paid_here_not_there", "w3"),
            ("amount_differs", "w2"),
            ("paid_twice", "w1"),
        ]
    )
    workbook = openpyxl.load_workbook(tmp_path / "diff.xlsx")
    assert len(workbook.sheetnames) == 2
    assert (
        tokenmall(
            "payouts", "reconcile", "missing.csv", "--db", "ledger.db", cwd=tmp_path
        ).returncode
        == 2
    )


def test_withdrawals_waiting_for_the_bank_do_not_hide_the_services(sqlite_url: str) -> None:
    """The payout service's withdrawals are found behind any number of the bank's."""
    alipay = {"method": "alipay", "name": "王五", "account": "wangwu@example.com"}
    with Ledger.open(sqlite_url, Settings()) as ledger:
        run(ledger, SETUP + withdrawals(3) + withdrawals(1, alipay, first=4))
        payouts = PayoutStore(ledger.store)
        assert [w.id for w in payouts.each_approved_unclaimed(page=2)] == ["w1", "w2", "w3", "w4"]
        routes = Routes({"bank": "manual", "alipay": "webhook"})
        assert enqueue_payouts(payouts, routes, limit=1) == 1
        assert [m.id for m in payouts.messages("payout")] == ["payout_w4"]
        assert payouts.payout("w4") is not None and payouts.payout("w1") is None
        assert enqueue_payouts(payouts, routes, limit=1) == 0  # claimed once
