"""`tokenmall ingest` shows a progress bar on a terminal, and nothing but its summary in a pipe."""

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.support.workload import MixGenerator

COMMANDS = 3_000


def write_scenario(path: Path) -> None:
    commands = MixGenerator(100, 5).commands(COMMANDS)
    path.write_text("".join(json.dumps(command) + "\n" for command in commands))


def ingest(scenario: Path, db: Path, stderr: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenmall.cli", "ingest", str(scenario), "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_terminal_gets_a_progress_bar(tmp_path: Path) -> None:
    scenario = tmp_path / "mix.jsonl"
    write_scenario(scenario)
    controller, terminal = pty.openpty()
    try:
        result = ingest(scenario, tmp_path / "ledger.db", terminal)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal side is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert result.returncode == 0
    text = shown.decode()
    assert "ingest" in text
    assert f"{COMMANDS}/{COMMANDS}" in text  # show_pos: the bar ends at the whole file
    assert "100%" in text


def test_a_pipe_gets_only_the_summary(tmp_path: Path) -> None:
    scenario = tmp_path / "mix.jsonl"
    write_scenario(scenario)
    result = ingest(scenario, tmp_path / "ledger.db", subprocess.PIPE)
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.startswith(f"{scenario}: ")
    assert len(result.stdout.splitlines()) == 1
