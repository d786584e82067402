"""The PostgreSQL tests must fail, not skip, under CI=true when the server is unreachable (and
skip outside CI, so a laptop without PostgreSQL can still run the rest)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONE_POSTGRES_TEST = "tests/test_ledger.py::test_keys_survive_a_restart[postgresql]"
NOTHING_LISTENS = "postgresql://postgres@127.0.0.1:9/postgres"  # port 9 (discard): closed here


def run_one_postgres_test(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["TOKENMALL_TEST_PG"] = NOTHING_LISTENS
    if ci is not None:
        env["CI"] = ci
    # -n 0: one test in this process, not in the xdist workers pyproject's addopts would start
    # (each imports the suite's libraries again: 7.7 s against 3.6 s here).
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-rs"]
    return subprocess.run(
        [*command, ONE_POSTGRES_TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_unreachable_postgresql_fails_under_ci() -> None:
    result = run_one_postgres_test("true")
    assert result.returncode == 1, result.stdout
    assert "1 error" in result.stdout  # the fixture fails: an error, which fails the run
    assert "PostgreSQL at" in result.stdout


def test_unreachable_postgresql_skips_outside_ci() -> None:
    result = run_one_postgres_test(None)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
