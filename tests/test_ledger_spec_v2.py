"""SPEC v2 in the durable ledger: a ledger journaled under SPEC v1, opened by this build
(decision 81), and v2's read models rebuilt from the journal.

Its entries stay what they were: they are replayed as v1 checked them (ids of any characters,
no regions, no v2 ops or parameters), a sale's payout becomes cash owed (cash = cash_out),
and from the next entry on SPEC v2 applies. The ledger is real: `tests/data/ledger-v1.sql`
was written by the build before v2 (tests/data/README.md).
"""

import json
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.test_ledger import reader, state_of
from tokenmall.core.accounts import CONSUMER_FIELDS
from tokenmall.core.params import Params
from tokenmall.ledger.audit import verify
from tokenmall.ledger.ledger import Ledger, Settings, Submission
from tokenmall.ledger.store import Store

DATA = Path(__file__).parent / "data"
V2_USER_FIELDS = {"cash", "withdrawing", "withdrawn", "frozen"}
V2_TOTALS = {"cash_owed", "withdrawn", "agent_commissions", "agents", "withdrawals"}
V2_TOTALS |= {"collections", "items"}


def v1_ledger(tmp_path: Path) -> str:
    path = tmp_path / "ledger-v1.db"
    connection = sqlite3.connect(path)
    connection.executescript((DATA / "ledger-v1.sql").read_text())
    connection.close()
    return f"sqlite:///{path}"


def without_v2(state: dict[str, Any]) -> dict[str, Any]:
    """The state as SPEC v1 printed it."""
    users = {
        name: {k: v for k, v in fields.items() if k not in V2_USER_FIELDS}
        for name, fields in state["users"].items()
    }
    merchants = {
        name: {k: v for k, v in fields.items() if k not in V2_USER_FIELDS}
        for name, fields in state["merchants"].items()
    }
    rest = {k: v for k, v in state.items() if k not in V2_TOTALS}
    return {**rest, "users": users, "merchants": merchants}


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with reader(url) as store, store.reading() as connection:
        return [tuple(row) for row in connection.execute(sa.text(query))]


def test_a_v1_ledger_keeps_its_history_and_owes_its_sales_as_cash(tmp_path: Path) -> None:
    url = v1_ledger(tmp_path)
    v1_state = json.loads((DATA / "ledger-v1.state-v1.json").read_text())
    with Ledger.open(url) as ledger:  # migrates, loads the v1 build's snapshot
        assert ledger.head_seq == 18
    state = state_of(url)
    errors = state.pop("errors")
    assert without_v2(state) == {k: v for k, v in v1_state.items() if k != "errors"}
    assert [e["line"] for e in errors] == [e["line"] for e in v1_state["errors"]]
    for kind in ("users", "merchants"):
        for fields in state[kind].values():
            assert fields["cash"] == fields["cash_out"]
            assert (fields["withdrawing"], fields["withdrawn"]) == ("0.00", "0.00")
    owed = sum(int(f["cash"].replace(".", "")) for f in state["users"].values())
    assert state["cash_owed"] == f"{owed // 100}.{owed % 100:02d}"
    assert rows(url, "SELECT spec_v2_from FROM ledger_meta") == [(19,)]
    with reader(url) as store:
        report = verify(store)  # from genesis, the v1 entries as v1 checked them
    assert report.ok, report.problem
    assert report.entries == 18


def test_the_v1_entries_replay_without_the_snapshot(tmp_path: Path) -> None:
    url = v1_ledger(tmp_path)
    with Ledger.open(url):
        pass
    expected = state_of(url)
    with reader(url) as store, store.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM snapshots"))
    with Ledger.open(url) as ledger:
        assert ledger.snapshot_seq == 0  # rebuilt from genesis
    assert state_of(url) == expected


def test_after_the_upgrade_commands_follow_spec_v2(tmp_path: Path) -> None:
    url = v1_ledger(tmp_path)
    with Ledger.open(url) as ledger:
        results = ledger.execute(
            [
                Submission.of({"op": "register", "user": "carol smith"}),
                Submission.of({"op": "withdraw", "id": "w1", "user": "alice", "amount": "10.00"}),
                Submission.of({"op": "sell", "user": "alice", "points": "1", "agent": "x y"}),
            ]
        )
    assert [r.outcome for r in results] == ["invalid_command", "ok", "invalid_command"]
    state = state_of(url)
    alice = state["users"]["alice"]
    assert (alice["cash"], alice["withdrawing"]) == ("5.12", "10.00")
    with reader(url) as store:
        assert verify(store).ok
        with store.reading() as connection:
            _, lines = Store.statement(connection, "alice", 0, 100)
    # The statements were rebuilt with SPEC v2's fields, the new entry included.
    assert all(text.count(",") + 1 == len(CONSUMER_FIELDS) for *_, text in lines)
    assert lines[-1][0] == 20


def test_v2_read_models_rebuilt_from_the_journal_are_what_the_writer_wrote(db_url: str) -> None:
    """The withdrawal list and the items' provenance, written with each batch, are the same
    when a writer rebuilds them from the journal (as after migration 0007)."""
    golden = Path(__file__).parent / "golden"
    params = Params().with_overrides(json.loads((golden / "small-v2.params.json").read_text()))
    lines = (golden / "small-v2.jsonl").read_text().splitlines()
    with Ledger.open(db_url, Settings(batch_max=4), params) as ledger:
        for first in range(0, len(lines), 4):
            ledger.execute([Submission.of(json.loads(line)) for line in lines[first : first + 4]])
    tables = ("withdrawal_list", "item_moves")
    written = {table: rows(db_url, f"SELECT * FROM {table} ORDER BY 1, 2") for table in tables}
    assert len(written["withdrawal_list"]) == 3 and len(written["item_moves"]) == 4
    with reader(db_url) as store, store.engine.begin() as connection:
        for table in tables:
            connection.execute(sa.text(f"DELETE FROM {table}"))
        connection.execute(sa.text("UPDATE ledger_head SET projected_seq = 0"))
    with Ledger.open(db_url):
        pass
    assert {table: rows(db_url, f"SELECT * FROM {table} ORDER BY 1, 2") for table in tables} == (
        written
    )
