"""Server-side sessions and staff passwords, on both databases: a session lives until its
expiry, its idle timeout or its logout, and its row outlives it so that a journal actor
"role:ws_…" still names a person; five wrong passwords lock a staff account."""

import subprocess
import sys
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tokenmall.ledger.store import Store, resolve_url
from tokenmall.services import staff, web_sessions

NOW_S = 1_800_000_000
PASSWORD = "a long enough password"


@pytest.fixture
def store(db_url: str) -> Store:
    opened = Store(resolve_url(db_url), create=True)
    opened.migrate()
    return opened


def test_a_session_ends_at_idle_expiry_and_logout_and_its_owner_is_kept(store: Store) -> None:
    cookie = web_sessions.start(store, "staff", "fin", "finance", NOW_S)
    found = web_sessions.find(store, cookie, NOW_S + 60)
    assert found is not None and (found.name, found.role) == ("fin", "finance")
    assert web_sessions.find(store, cookie + "x", NOW_S) is None
    # seen at +60: idle up to STAFF_IDLE_S after that
    assert web_sessions.find(store, cookie, NOW_S + 60 + web_sessions.STAFF_IDLE_S) is not None
    idle = NOW_S + 60 + 2 * web_sessions.STAFF_IDLE_S + 1
    assert web_sessions.find(store, cookie, idle) is None
    owner = web_sessions.owner_of(store, found.session_id)  # ended, and still on record
    assert owner is not None and owner.name == "fin" and owner.expires_s == idle

    other = web_sessions.start(store, "account", "alice", "consumer", NOW_S)
    assert web_sessions.find(store, other, NOW_S + web_sessions.ACCOUNT_TTL_S - 1) is None  # idle
    again = web_sessions.start(store, "account", "alice", "consumer", NOW_S)
    web_sessions.end(store, again, NOW_S + 1)
    assert web_sessions.find(store, again, NOW_S + 2) is None
    third = web_sessions.start(store, "staff", "boss", "admin", NOW_S)
    assert web_sessions.end_all_of(store, "staff", "boss", NOW_S + 1) == 1
    assert web_sessions.find(store, third, NOW_S + 2) is None


def test_passwords_and_the_lockout(store: Store) -> None:
    staff.create_staff(store, "fin", staff.StaffRole.FINANCE, PASSWORD)
    with pytest.raises(staff.StaffError, match="exists already"):
        staff.create_staff(store, "fin", staff.StaffRole.ADMIN, PASSWORD)
    with pytest.raises(staff.StaffError, match="characters"):
        staff.create_staff(store, "x", staff.StaffRole.ADMIN, PASSWORD)
    with pytest.raises(staff.StaffError, match="password"):
        staff.create_staff(store, "short", staff.StaffRole.ADMIN, "short")
    assert staff.log_in(store, "fin", PASSWORD, NOW_S).role is staff.StaffRole.FINANCE
    for _ in range(staff.FAILURES_MAX):
        with pytest.raises(staff.LoginRefused, match="wrong"):
            staff.log_in(store, "fin", "wrong password!", NOW_S)
    with pytest.raises(staff.LoginRefused, match="locked"):
        staff.log_in(store, "fin", PASSWORD, NOW_S + staff.LOCKED_S - 1)
    assert staff.log_in(store, "fin", PASSWORD, NOW_S + staff.LOCKED_S).username == "fin"
    staff.disable(store, "fin")
    with pytest.raises(staff.LoginRefused, match="wrong"):
        staff.log_in(store, "fin", PASSWORD, NOW_S + staff.LOCKED_S)
    stored = {m.username: m for m in staff.list_staff(store)}
    assert stored["fin"].disabled_at is not None


def run_staff(directory: Path, *args: str, password: str | None = None) -> CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenmall.cli", "staff", *args],
        input=None if password is None else password + "\n",
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_staff_commands(tmp_path: Path) -> None:
    made = run_staff(
        tmp_path, "create", "fin", "--role", "finance", "--password-stdin", password=PASSWORD
    )
    assert made.returncode == 0 and made.stderr == "tokenmall: created finance staff fin\n"
    listed = run_staff(tmp_path, "list").stdout.splitlines()
    assert listed[0].split() == ["USERNAME", "ROLE", "STATUS", "CREATED"]
    assert listed[1].split()[:3] == ["fin", "finance", "active"]
    again = run_staff(
        tmp_path, "create", "fin", "--role", "admin", "--password-stdin", password=PASSWORD
    )
    assert again.returncode == 2 and again.stderr == (
        "tokenmall: error: staff 'fin' exists already\n"
    )
    short = run_staff(
        tmp_path, "create", "boss", "--role", "admin", "--password-stdin", password="short"
    )
    assert short.returncode == 2 and short.stderr.count("\n") == 1 and "password" in short.stderr
    assert run_staff(tmp_path, "create", "x", "--role", "cook").returncode == 2
    assert run_staff(tmp_path, "unlock", "nobody").returncode == 2
    assert (
        run_staff(
            tmp_path, "password", "fin", "--password-stdin", password="another long password"
        ).returncode
        == 0
    )
    disabled = run_staff(tmp_path, "disable", "fin")
    assert disabled.returncode == 0 and "0 sessions ended" in disabled.stderr
    assert "disabled" in run_staff(tmp_path, "list").stdout


def test_a_journal_actor_names_its_person(store: Store) -> None:
    cookie = web_sessions.start(store, "staff", "fin", "finance", NOW_S)
    found = web_sessions.find(store, cookie, NOW_S)
    assert found is not None
    web_sessions.end(store, cookie, NOW_S + 1)  # ended sessions still name their person
    actor = f"finance:{found.session_id}"
    assert web_sessions.people(store, [actor, "admin:tk_0123456789ab", None]) == {actor: "fin"}
    assert web_sessions.people(store, ["cli:root"]) == {}
