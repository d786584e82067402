"""The installed `tokenmall` (tokenmall/entry.py): the simulator's commands start without the
ledger's modules, every other command as before, and both answer bad input in one line."""

import subprocess
import sys
from pathlib import Path

from tests.support.scenarios import SCENARIOS

RUN_ENTRY = (
    "import sys; from tokenmall import entry\n"
    "sys.argv = ['tokenmall', *sys.argv[1:]]\n"
    "try:\n"
    "    entry.main()\n"
    "finally:\n"
    "    print('loaded:', ' '.join(m for m in ('sqlalchemy', 'openpyxl', 'tokenmall.ledger')"
    " if m in sys.modules), file=sys.stderr)\n"
)


def entry(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_ENTRY, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_simulate_starts_without_the_ledger(tmp_path: Path) -> None:
    done = entry(
        "simulate", str(SCENARIOS / "order-only.toml"), "--no-report", "--out", "out", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "engine: order-only fast path" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "loaded:"  # none of them
    assert (tmp_path / "out" / "summary.json").exists()
    refused = entry("simulate", "nowhere.toml", "--out", "out", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[0] == "tokenmall: error: nowhere.toml: no such file"


def test_every_other_command_goes_through_the_full_cli(tmp_path: Path) -> None:
    version = entry("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("tokenmall, version ")
    state = entry("state", "--db", str(tmp_path / "new.db"), cwd=tmp_path)
    assert state.returncode == 2, state.stderr
    assert "tokenmall: error:" in state.stderr.splitlines()[0]
    assert "sqlalchemy" in state.stderr.splitlines()[-1]
    usage = entry("nonsense", cwd=tmp_path)
    assert usage.returncode == 2 and usage.stderr.startswith("tokenmall: error: No such command")
