"""The README's tour runs as written, from a directory holding only what a clone has.

Every `$ ` line of the tour is run in one bash session (the `simulate` line excepted: it takes
minutes; tests/test_sim.py covers it), with `./dev` standing for this checkout's virtualenv and
port 8000 replaced by a free one. Every output line the README shows must appear in what the
session printed, once run-specific values (tokens, token ids, hashes, times) are masked.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.test_api import free_port

ROOT = Path(__file__).resolve().parent.parent
MASKS = (
    (re.compile(r"tm_[A-Za-z0-9_-]{43}"), "<token>"),
    (re.compile(r"tk_[0-9a-f]{12}"), "<token id>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<hash>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"), "<time>"),
)
DEV = """#!/usr/bin/env sh
# ./dev for the README test: this checkout's virtualenv, the server on a free port
bin="{bin}"
command=$1; shift
case "$command" in
  serve) exec "$bin/tokenmall" serve --port {port} "$@" ;;
  demo) exec "$bin/tokenmall" demo "$@" ;;
  tokenmall) exec "$bin/tokenmall" "$@" ;;
esac
echo "dev: not in the README test: $command" >&2; exit 2
"""


def tour() -> list[tuple[str, list[str]]]:
    """(command, the output lines the README shows after it), in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## A short tour") : text.index("## Where to read on")]
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"^```\n(.*?)^```", section, re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
    return steps


def masked(line: str, port: int) -> str:
    line = line.replace(f":{port}", ":8000")
    for pattern, mask in MASKS:
        line = pattern.sub(mask, line)
    return line.rstrip()


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    port = free_port()
    dev = tmp_path / "dev"
    dev.write_text(DEV.format(bin=Path(sys.executable).parent, port=port))
    dev.chmod(0o755)
    steps = [(c, out) for c, out in tour() if " simulate " not in c]
    assert len(steps) > 20, "the tour was not found in the README"
    # An echo after each command ends output that has no newline (curl's), as a prompt would.
    script = "set -u\n" + "".join(
        f"{command.replace('localhost:8000', f'localhost:{port}')}\necho\n" for command, _ in steps
    )
    session = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    printed = {masked(line, port) for line in (session.stdout + "\n" + session.stderr).splitlines()}
    for command, shown in steps:
        for line in shown:
            if line.strip() and line.strip() != "…":
                assert masked(line, port) in printed, (
                    f"{command}\n  shows: {line}\n{session.stderr}"
                )
