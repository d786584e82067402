"""The installed `tokenmall` (tokenmall.cli:main) imports a command's modules only when that
command runs: `simulate`, `replay`, `demo` and `--version` start without the ledger, the
server and their libraries; every command is still there and answers bad input in one line."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.scenarios import SCENARIOS
from tokenmall.cli import LAZY_COMMANDS, app

HEAVY = ("sqlalchemy", "openpyxl", "litestar", "tokenmall.ledger", "tokenmall.api")
RUN_MAIN = (
    "import sys; from tokenmall import cli\n"
    "sys.argv = ['tokenmall', *sys.argv[1:]]\n"
    "try:\n"
    "    cli.main()\n"
    "finally:\n"
    f"    print('loaded:', ' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
)


def tokenmall(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_MAIN, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def loaded(done: subprocess.CompletedProcess[str]) -> list[str]:
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("loaded:"), done.stderr
    return last.removeprefix("loaded:").split()


def test_simulate_starts_without_the_ledger(tmp_path: Path) -> None:
    done = tokenmall(
        "simulate", str(SCENARIOS / "order-only.toml"), "--no-report", "--out", "out", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "engine: order-only fast path" in done.stdout
    assert loaded(done) == []
    assert (tmp_path / "out" / "summary.json").exists()
    refused = tokenmall("simulate", "nowhere.toml", "--out", "out", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[0] == "tokenmall: error: nowhere.toml: no such file"


def test_replay_demo_and_version_start_without_the_ledger(tmp_path: Path) -> None:
    (tmp_path / "s.jsonl").write_text('{"op": "register", "user": "alice"}\n')
    replay = tokenmall("replay", "s.jsonl", cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert '"alice"' in replay.stdout
    demo = tokenmall("demo", "--orders", "4", cwd=tmp_path)
    version = tokenmall("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("tokenmall, version ")
    for done in (replay, demo, version):
        assert done.returncode == 0, done.stderr
        assert loaded(done) == []


def test_the_ledger_commands_load_it_when_they_run(tmp_path: Path) -> None:
    state = tokenmall("state", "--db", str(tmp_path / "new.db"), cwd=tmp_path)
    assert state.returncode == 2, state.stderr
    assert "tokenmall: error:" in state.stderr.splitlines()[0]
    assert "sqlalchemy" in loaded(state)
    usage = tokenmall("nonsense", cwd=tmp_path)
    assert usage.returncode == 2 and usage.stderr.startswith("tokenmall: error: No such command")
    assert loaded(usage) == []
    wrong = tokenmall("audit", "nonsense", cwd=tmp_path)
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("tokenmall: error: No such command 'nonsense'")


def test_help_lists_every_command_with_its_summary(tmp_path: Path) -> None:
    done = tokenmall("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("Commands:")[1]
    names = [line.split()[0] for line in listed.splitlines() if line.startswith("  ")]
    assert names == sorted({"replay", "demo", *LAZY_COMMANDS})


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_every_lazy_command_is_the_command_of_its_name(name: str) -> None:
    import click  # noqa: PLC0415

    command = app.get_command(click.Context(app), name)
    assert command is not None and command.name == name
