"""The real `tokenmall` command line, run as a subprocess (SPEC §7, §8; decisions 26-29)."""

import errno
import fcntl
import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.test_api import free_port

GOLDEN = Path(__file__).parent / "golden"
EXIT_BAD_INPUT = 2


def tokenmall(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    environment = {k: v for k, v in os.environ.items() if k != "TOKENMALL_DB"}
    environment["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", "tokenmall.cli", *map(str, args)],
        capture_output=True,
        env=environment,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def replay_json(scenario: Path, *extra: str | Path) -> dict[str, Any]:
    result = tokenmall("replay", scenario, *extra)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    state: dict[str, Any] = json.loads(result.stdout)
    return state


def assert_one_line_failure(result: subprocess.CompletedProcess[bytes]) -> str:
    """Exit status 2, nothing on stdout, exactly one line on stderr, no traceback."""
    assert result.returncode == EXIT_BAD_INPUT, result
    assert result.stdout == b""
    message = result.stderr.decode("utf-8")
    assert message.endswith("\n")
    assert len(message.splitlines()) == 1, message
    assert "Traceback" not in message
    return message


# -- golden files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["small", "seed100", "small-v2"])
def test_replay_golden_is_byte_identical(name: str) -> None:
    args: list[str | Path] = ["replay", GOLDEN / f"{name}.jsonl"]
    if (GOLDEN / f"{name}.params.json").exists():
        args += ["--params", GOLDEN / f"{name}.params.json"]
    first = tokenmall(*args)
    assert first.returncode == 0, first.stderr
    assert first.stderr == b""
    assert first.stdout == (GOLDEN / f"{name}.expected.json").read_bytes()
    # Replaying again gives the same bytes (SPEC §6).
    assert tokenmall(*args).stdout == first.stdout


def test_replay_reads_standard_input_for_a_dash() -> None:
    scenario = (GOLDEN / "small.jsonl").read_bytes()
    params = GOLDEN / "small.params.json"
    result = subprocess.run(
        [sys.executable, "-m", "tokenmall.cli", "replay", "-", "--params", str(params)],
        input=scenario,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (GOLDEN / "small.expected.json").read_bytes()


V2_ONLY_FIELDS = frozenset(
    {"agent_commissions", "agents", "cash_owed", "collections", "items", "withdrawals"}
    | {"cash", "frozen", "withdrawing", "withdrawn"}  # in each user and merchant
)


def without_v2_fields(state: object) -> object:
    if isinstance(state, dict):
        return {k: without_v2_fields(v) for k, v in state.items() if k not in V2_ONLY_FIELDS}
    return state


@pytest.mark.parametrize("name", ["small", "seed100"])
def test_v1_goldens_are_the_v2_goldens_without_the_v2_fields(name: str) -> None:
    """The v1 files are what the build before SPEC v2 printed (the reference model still
    prints them): every number in them is the one the v2 golden file holds."""
    v2 = json.loads((GOLDEN / f"{name}.expected.json").read_bytes())
    v1 = json.loads((GOLDEN / f"{name}.expected-v1.json").read_bytes())
    assert without_v2_fields(v2) == v1


def test_golden_files_match_the_shared_examples() -> None:
    # ../shared sits beside the checkout in development and CI; a user's clone has no copy.
    shared = Path(__file__).resolve().parents[2] / "shared" / "examples"
    if not shared.is_dir():
        pytest.skip("shared examples not present beside this checkout")
    for path in shared.iterdir():
        assert (GOLDEN / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize("name", ["small", "seed100", "small-v2"])
def test_golden_through_ingest_state_export_and_audit(tmp_path: Path, name: str) -> None:
    """Each golden scenario (v2 commands too) through the durable ledger by the command line:
    `state` prints the golden bytes, `journal export` replays to them, `audit verify` passes."""
    params = GOLDEN / f"{name}.params.json"
    extra: list[str | Path] = ["--params", params] if params.exists() else []
    ingested = tokenmall("ingest", GOLDEN / f"{name}.jsonl", "--db", "l.db", *extra, cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    expected = (GOLDEN / f"{name}.expected.json").read_bytes()
    assert tokenmall("state", "--db", "l.db", cwd=tmp_path).stdout == expected
    exported = tokenmall(
        "journal", "export", "--db", "l.db", "--params-out", "p.json", cwd=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    (tmp_path / "j.jsonl").write_bytes(exported.stdout)
    replayed = tokenmall("replay", "j.jsonl", "--params", "p.json", cwd=tmp_path)
    assert replayed.stdout == expected, replayed.stderr
    audit = tokenmall("audit", "verify", "--db", "l.db", cwd=tmp_path)
    assert audit.returncode == 0, audit.stderr
    lines = len((GOLDEN / f"{name}.jsonl").read_text().splitlines())
    assert f"audit: ok: {lines} entries" in audit.stdout.decode()


def test_replay_with_the_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "tokenmall"
    if not script.exists():
        pytest.skip("console script not installed next to the interpreter")
    result = subprocess.run(
        [script, "replay", GOLDEN / "seed100.jsonl"], capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert result.stdout == (GOLDEN / "seed100.expected.json").read_bytes()


# -- demo -----------------------------------------------------------------------------------------


def test_demo_prints_the_seeds_numbers() -> None:
    result = tokenmall("demo")
    assert result.returncode == 0, result.stderr
    output = result.stdout.decode("utf-8")
    for number in ("1.4286", "1.6807", "1.8674", "2.0188", "5.1731", "108.6351"):
        assert number in output, number


def test_demo_rejects_zero_orders() -> None:
    assert_one_line_failure(tokenmall("demo", "--orders", "0"))


# -- input that cannot be replayed at all ---------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line_failure(tokenmall("replay", tmp_path / "nope.jsonl"))


def test_directory(tmp_path: Path) -> None:
    assert_one_line_failure(tokenmall("replay", tmp_path))


def test_binary_file_with_nul_bytes(tmp_path: Path) -> None:
    scenario = tmp_path / "binary.jsonl"
    scenario.write_bytes(b'{"op": "register", "user": "alice"}\n\x00\x01\x02\xff\n')
    assert_one_line_failure(tokenmall("replay", scenario))


@pytest.mark.parametrize(
    "params_text",
    [
        b"{not json",
        b'{"referral_rates": ["0.1"]',  # truncated
        b'{"bogus": "1"}',  # unknown key
        b'{"dividend_rate": 0.2}',  # a JSON number, not a string
        b'{"exit_enabled": "yes"}',
        b'["dividend_rate", "0.2"]',  # not an object
        b'{"buyer_share": "0.9", "referral_rates": ["0.2"]}',  # sum > 1
        b'{"dividend_rate": "0.2"}\x00',
        b"\xff\xfe",
        b"",
    ],
    ids=repr,
)
def test_invalid_params_file(tmp_path: Path, params_text: bytes) -> None:
    params = tmp_path / "params.json"
    params.write_bytes(params_text)
    scenario = tmp_path / "s.jsonl"
    scenario.write_text('{"op": "register", "user": "alice"}\n')
    assert_one_line_failure(tokenmall("replay", scenario, "--params", params))


def test_missing_params_file(tmp_path: Path) -> None:
    scenario = tmp_path / "s.jsonl"
    scenario.write_text("")
    assert_one_line_failure(tokenmall("replay", scenario, "--params", tmp_path / "none.json"))


def test_missing_argument() -> None:
    assert_one_line_failure(tokenmall("replay"))


def test_unknown_option(tmp_path: Path) -> None:
    scenario = tmp_path / "s.jsonl"
    scenario.write_text("")
    assert_one_line_failure(tokenmall("replay", scenario, "--bogus"))


def test_unknown_subcommand() -> None:
    assert_one_line_failure(tokenmall("frobnicate"))


def test_params_option_without_value(tmp_path: Path) -> None:
    scenario = tmp_path / "s.jsonl"
    scenario.write_text("")
    assert_one_line_failure(tokenmall("replay", scenario, "--params"))


# -- bad lines: listed in "errors", replay goes on ------------------------------------------------


def test_bad_lines_are_errors_with_physical_line_numbers(tmp_path: Path) -> None:
    lines = [
        b'{"op": "register", "user": "alice"}',  # 1
        b"",  # 2: blank, skipped but counted
        b"{op: register}",  # 3: not JSON
        b'["op", "register"]',  # 4: a JSON array
        b'{"op": "fly"}',  # 5: unknown op
        b'{"op": "register", "user": "\xff\xfe"}',  # 6: invalid UTF-8
        b'{"op": "register", "user": "bob", "pad": "' + b"x" * (70 * 1024) + b'"}',  # 7: 70 KiB
        b"[" * 100_000 + b"]" * 100_000,  # 8: nested too deep
        b'{"op": "register", "user": "bob"}',  # 9: applied (line 7 did not register bob)
        b'{"op": "order", "id": "o1", "user": "alice", "amount": "100.00"}',  # 10
        b"   \t",  # 11: whitespace only: blank
        b'"just a string"',  # 12
        b'{"op": "order", "id": "o1", "user": "bob", "amount": "1.00"}',  # 13: duplicate_order
        b"42",  # 14
        b'{"op": "register", "user": "carol"}',  # 15: last line, no newline after it
    ]
    scenario = tmp_path / "bad.jsonl"
    scenario.write_bytes(b"\n".join(lines))
    state = replay_json(scenario)
    assert state["errors"] == [
        {"line": 3, "code": "invalid_command"},
        {"line": 4, "code": "invalid_command"},
        {"line": 5, "code": "unknown_op"},
        {"line": 6, "code": "invalid_command"},
        {"line": 7, "code": "invalid_command"},
        {"line": 8, "code": "invalid_command"},
        {"line": 12, "code": "invalid_command"},
        {"line": 13, "code": "duplicate_order"},
        {"line": 14, "code": "invalid_command"},
    ]
    assert sorted(state["users"]) == ["alice", "bob", "carol"]
    assert state["users"]["alice"]["ep"] == "21.00000000"
    assert state["pool"] == "30.00"


def test_line_of_exactly_64_kib_is_accepted(tmp_path: Path) -> None:
    head = b'{"op": "register", "user": "bob", "pad": "'
    tail = b'"}'
    line = head + b"x" * (64 * 1024 - len(head) - len(tail)) + tail
    assert len(line) == 64 * 1024
    scenario = tmp_path / "edge.jsonl"
    scenario.write_bytes(line + b"\n" + line + b"x\n")
    state = replay_json(scenario)
    # Line 1 fits the limit and registers bob; line 2 is one byte over.
    assert list(state["users"]) == ["bob"]
    assert state["errors"] == [{"line": 2, "code": "invalid_command"}]


def test_crlf_line_endings(tmp_path: Path) -> None:
    scenario = tmp_path / "crlf.jsonl"
    scenario.write_bytes(
        b'{"op": "register", "user": "alice"}\r\n\r\n{"op": "fly"}\r\n'
        b'{"op": "order", "id": "o1", "user": "alice", "amount": "100.00"}\r\n'
    )
    state = replay_json(scenario)
    assert state["errors"] == [{"line": 3, "code": "unknown_op"}]
    assert state["price"] == "1.42857143"


def test_empty_scenario_prints_the_initial_state(tmp_path: Path) -> None:
    scenario = tmp_path / "empty.jsonl"
    scenario.write_bytes(b"")
    state = replay_json(scenario)
    assert state["price"] == "1.00000000"
    assert state["unissued"] == "100000000.00000000"
    assert state["errors"] == []
    assert (state["users"], state["merchants"]) == ({}, {})


def test_output_is_canonical_json(tmp_path: Path) -> None:
    scenario = tmp_path / "s.jsonl"
    scenario.write_text('{"op": "register", "user": "\u00e9l\u00e8ve"}\n', encoding="utf-8")
    result = tokenmall("replay", scenario)
    assert result.returncode == 0
    text = result.stdout.decode("ascii")  # ensure_ascii: no raw non-ASCII bytes
    state = json.loads(text)
    assert text == json.dumps(state, indent=1, sort_keys=True, ensure_ascii=True) + "\n"
    assert list(state["users"]) == ["\u00e9l\u00e8ve"]


def test_lines_are_strict_json(tmp_path: Path) -> None:
    # decisions 27: NaN/Infinity, lone surrogates and non-JSON whitespace are not valid lines;
    # an integer of more than 40 digits is out of range (invalid_amount), not a parse failure.
    lines = [
        b'{"op": "register", "user": "alice"}',  # 1
        b'{"op": "order", "id": "o1", "user": "alice", "amount": NaN}',  # 2
        b'{"op": "register", "user": "\\ud800"}',  # 3: lone surrogate escape
        b"\x0c",  # 4: form feed is not JSON whitespace
        b"\xc2\xa0",  # 5: no-break space
        b'{"op": "grant_stable", "user": "alice", "amount": "1", "days": 1' + b"0" * 41 + b"}",
        b" \t ",  # 7: JSON whitespace only: blank
        b'{"op": "order", "id": "o2", "user": "alice", "amount": "1.00", "x": Infinity}',  # 8
        b'{"op": "order", "id": "o3", "user": "alice", "amount": "1.00"}',  # 9
    ]
    scenario = tmp_path / "strict.jsonl"
    scenario.write_bytes(b"\n".join(lines) + b"\n")
    state = replay_json(scenario)
    assert state["errors"] == [
        {"line": 2, "code": "invalid_command"},
        {"line": 3, "code": "invalid_command"},
        {"line": 4, "code": "invalid_command"},
        {"line": 5, "code": "invalid_command"},
        {"line": 6, "code": "invalid_amount"},
        {"line": 8, "code": "invalid_command"},
    ]
    assert state["sales"] == "1.00"


# -- absurd input anywhere on the command line: one line, exit status 2, nothing written ----------


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    message = assert_one_line_failure(result)
    assert message.startswith("tokenmall: error: "), message
    return message


def listing(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


REGISTER_LINE = b'{"op": "register", "user": "alice"}\n'


def scenario_file(directory: Path, content: bytes = REGISTER_LINE) -> Path:
    path = directory / "s.jsonl"
    path.write_bytes(content)
    return path


def db_commands(scenario: Path) -> list[list[str | Path]]:
    """Every command that takes --db (serve on a free port, so that it gets to open it)."""
    return [
        ["state"],
        ["ingest", scenario],
        ["journal", "export"],
        ["audit", "verify"],
        ["token", "create", "--role", "admin"],
        ["serve", "--port", str(free_port())],
    ]


# -- --db and --host: malformed URLs, driver options, paths that are not files --------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("postgresql://h:abc/x", "the port after the host's ':' must be a number"),
        ("postgresql://[::1", "an IPv6 host must be written [address]"),
        ("postgresql://alice:s3cret@h:abc/x", "the port"),
        ("postgresql://alice:s3cret@[::1/x", "an IPv6 host"),
    ],
)
def test_a_malformed_database_url_is_one_line(tmp_path: Path, url: str, why: str) -> None:
    scenario = scenario_file(tmp_path)
    for command in db_commands(scenario):
        message = one_line_error(tokenmall(*command, "--db", url, cwd=tmp_path))
        assert "not a valid database URL: postgresql" in message, (command, message)
        assert why in message, (command, message)
        assert "s3cret" not in message
        assert listing(tmp_path) == ["s.jsonl"]


@pytest.mark.parametrize(
    "options",
    ["timeout=abc", "check_same_thread=maybe", "busy_timout=5", "uri=true", "timeout=1&timeout=2"],
)
def test_sqlite_url_options_the_driver_refuses_are_one_line(tmp_path: Path, options: str) -> None:
    scenario = scenario_file(tmp_path)
    url = f"sqlite:///{tmp_path / 'ledger.db'}?{options}"
    for command in (["ingest", scenario], ["token", "create", "--role", "admin"]):
        one_line_error(tokenmall(*command, "--db", url, cwd=tmp_path))
    assert listing(tmp_path) == ["s.jsonl"]


def test_a_file_path_with_url_characters_is_that_file(tmp_path: Path) -> None:
    # '?' would start a URL's options and '%' an escape: a path is taken as it is.
    scenario = scenario_file(tmp_path)
    name = "odd?name%20here.db"
    done = tokenmall("ingest", scenario, "--db", name, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / name).is_file()
    assert not (tmp_path / "odd").exists()
    state = tokenmall("state", "--db", name, cwd=tmp_path)
    assert list(json.loads(state.stdout)["users"]) == ["alice"]


@pytest.mark.parametrize("db", ["", "   ", "a" * 5_000, "sqlite:///" + "a" * 5_000])
def test_an_empty_or_impossible_db_path_is_one_line(tmp_path: Path, db: str) -> None:
    scenario = scenario_file(tmp_path)
    for command in db_commands(scenario):
        one_line_error(tokenmall(*command, "--db", db, cwd=tmp_path))
    assert listing(tmp_path) == ["s.jsonl"]  # an empty --db is not taken for tokenmall.db


def sqlite_side_files(path: Path) -> list[Path]:
    suffixes = ("-writer.lock", "-journal", "-wal", "-shm")
    return [Path(f"{path}{suffix}") for suffix in suffixes if Path(f"{path}{suffix}").exists()]


def test_a_sqlite_path_that_is_a_device_is_one_line(tmp_path: Path) -> None:
    scenario = scenario_file(tmp_path)
    before = sqlite_side_files(Path("/dev/null"))
    for command in db_commands(scenario):
        message = one_line_error(tokenmall(*command, "--db", "/dev/null", cwd=tmp_path))
        assert (
            message
            == "tokenmall: error: /dev/null: is not a regular file (a device, pipe or socket)\n"
        )
    assert sqlite_side_files(Path("/dev/null")) == before  # no /dev/null-writer.lock
    assert listing(tmp_path) == ["s.jsonl"]


def test_a_sqlite_path_that_is_a_pipe_is_one_line(tmp_path: Path) -> None:
    scenario = scenario_file(tmp_path)
    os.mkfifo(tmp_path / "pipe.db")
    for command in db_commands(scenario):
        message = one_line_error(tokenmall(*command, "--db", "pipe.db", cwd=tmp_path))
        assert "pipe.db: is not a regular file" in message
    assert listing(tmp_path) == ["pipe.db", "s.jsonl"]


def test_a_database_that_fails_to_migrate_is_one_line(tmp_path: Path) -> None:
    """Errors other than StoreError while the ledger opens, serve's writer process included:
    a table the migrations would create, a schema revision this version does not know."""
    scenario = scenario_file(tmp_path)
    clash = tmp_path / "clash.db"
    with closing(sqlite3.connect(clash)) as connection:
        connection.execute("CREATE TABLE journal (x INTEGER)")
        connection.commit()
    writers = [command for command in db_commands(scenario) if command[0] in ("ingest", "serve")]
    for command in writers:
        message = one_line_error(tokenmall(*command, "--db", clash, cwd=tmp_path))
        assert "table journal already exists" in message
    newer = tmp_path / "newer.db"
    with closing(sqlite3.connect(newer)) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        connection.execute("INSERT INTO alembic_version VALUES ('9999')")
        connection.commit()
    for command in db_commands(scenario):
        message = one_line_error(tokenmall(*command, "--db", newer, cwd=tmp_path))
        assert "has schema 9999, which this tokenmall does not know" in message


@pytest.mark.parametrize("host", ["", " ", "é" * 100, "a..b"])
def test_serve_refuses_an_impossible_host(tmp_path: Path, host: str) -> None:
    port = str(free_port())
    one_line_error(tokenmall("serve", "--host", host, "--port", port, cwd=tmp_path))
    assert listing(tmp_path) == []


# -- integer options: bounded ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        ["--key-days", "99999999999999"],  # was an OverflowError in timedelta
        ["--key-days", "36501"],
        ["--key-days", "9" * 5_000],  # more digits than int() takes
        ["--snapshot-every", "1" + "0" * 30],
        ["--batch-size", "1" + "0" * 30],
    ],
    ids=lambda options: f"{options[0]} {options[1][:20]}",
)
def test_ingest_refuses_absurd_integers(tmp_path: Path, options: list[str]) -> None:
    keyed = b'{"op": "register", "user": "alice", "key": "k1"}\n'
    scenario = scenario_file(tmp_path, keyed)
    one_line_error(tokenmall("ingest", scenario, "--db", "ledger.db", *options, cwd=tmp_path))
    assert listing(tmp_path) == ["s.jsonl"]


def test_the_longest_key_retention_works(tmp_path: Path) -> None:
    keyed = b'{"op": "register", "user": "alice", "key": "k1"}\n'
    scenario = scenario_file(tmp_path, keyed + keyed)
    done = tokenmall("ingest", scenario, "--db", "ledger.db", "--key-days", "36500", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert b"1 applied" in done.stdout and b"1 already applied" in done.stdout


SCENARIOS = Path(__file__).parent.parent / "examples" / "scenarios"


@pytest.mark.parametrize(
    "command",
    [
        ["simulate", SCENARIOS / "order-only.toml", "--seed", str(2**53), "--out", "out"],
        ["simulate", SCENARIOS / "order-only.toml", "--seed", "-1", "--out", "out"],
        ["simulate", SCENARIOS / "order-only.toml", "--runs", "1" + "0" * 30, "--out", "out"],
        ["simulate", SCENARIOS / "order-only.toml", "--workers", "1000000", "--out", "out"],
        ["demo", "--orders", "1" + "0" * 30],
        ["serve", "--port", "1" + "0" * 30],
        ["serve", "--port", "0"],
    ],
    ids=lambda command: " ".join(map(str, command[-4:]))[:40],
)
def test_other_absurd_integers(tmp_path: Path, command: list[str | Path]) -> None:
    one_line_error(tokenmall(*command, cwd=tmp_path))
    assert listing(tmp_path) == []


# -- scenario and params files: nesting, size, long values ----------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 100_000 + "]" * 100_000,
        "a = " + "{b = " * 100_000 + "1" + "}" * 100_000,
        '[scenario]\nname = "x"\ndays = 5\n[params]\nreferral_rates = ' + "[" * 1_000 + "]" * 1_000,
    ],
    ids=["arrays", "inline tables", "params"],
)
def test_a_scenario_nested_too_deeply_is_one_line(tmp_path: Path, text: str) -> None:
    scenario = tmp_path / "deep.toml"
    scenario.write_text(text)
    result = tokenmall("simulate", scenario, "--out", "out", cwd=tmp_path)
    assert "deep.toml: nested too deeply to be a scenario" in one_line_error(result)
    assert listing(tmp_path) == ["deep.toml"]


@pytest.mark.parametrize("path", ["/dev/zero", "/proc/self/mem"])
def test_a_scenario_that_never_ends_or_cannot_be_read_is_one_line(
    tmp_path: Path, path: str
) -> None:
    if not Path(path).exists():
        pytest.skip(f"no {path} here")
    one_line_error(tokenmall("simulate", path, "--out", "out", cwd=tmp_path))
    assert listing(tmp_path) == []


DEEP_JSON = [b"[" * 30_000 + b"]" * 30_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000]


@pytest.mark.parametrize("params_text", DEEP_JSON, ids=["arrays", "objects"])
def test_a_params_file_nested_too_deeply_is_one_line(tmp_path: Path, params_text: bytes) -> None:
    assert len(params_text) < 64 * 1024  # within the size limit: the depth is what fails
    scenario = scenario_file(tmp_path)
    (tmp_path / "p.json").write_bytes(params_text)
    commands: list[list[str | Path]] = [["replay", scenario], ["ingest", scenario, "--db", "x.db"]]
    for command in commands:
        message = one_line_error(tokenmall(*command, "--params", "p.json", cwd=tmp_path))
        assert message == "tokenmall: error: p.json: not a JSON file\n"
    assert listing(tmp_path) == ["p.json", "s.jsonl"]


@pytest.mark.parametrize("line", DEEP_JSON, ids=["arrays", "objects"])
def test_a_command_line_nested_too_deeply(tmp_path: Path, line: bytes) -> None:
    scenario = scenario_file(tmp_path, REGISTER_LINE + line + b"\n")
    assert replay_json(scenario)["errors"] == [{"line": 2, "code": "invalid_command"}]
    result = tokenmall("ingest", scenario, "--db", "ledger.db", cwd=tmp_path)
    assert "s.jsonl:2: not a JSON object" in one_line_error(result)
    assert listing(tmp_path) == ["s.jsonl"]


def test_a_long_bad_value_is_quoted_short(tmp_path: Path) -> None:
    scenario = scenario_file(tmp_path)
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"dividend_rate": "9" * 60_000}))
    message = one_line_error(tokenmall("replay", scenario, "--params", params))
    assert "dividend_rate must be a decimal string" in message and len(message) < 300


# -- reading and writing: files that cannot be read, closed standard streams, --params-out --------


def test_a_file_that_opens_but_cannot_be_read(tmp_path: Path) -> None:
    # /proc/self/mem opens, and every read of it fails (nothing is mapped at offset 0).
    if not Path("/proc/self/mem").exists():
        pytest.skip("no /proc/self/mem here")
    scenario = scenario_file(tmp_path)
    commands: list[list[str | Path]] = [
        ["replay", "/proc/self/mem"],
        ["ingest", "/proc/self/mem", "--db", "ledger.db"],
        ["replay", scenario, "--params", "/proc/self/mem"],
    ]
    for command in commands:
        message = one_line_error(tokenmall(*command, cwd=tmp_path))
        assert message == "tokenmall: error: /proc/self/mem: cannot read: Input/output error\n"
    assert listing(tmp_path) == ["s.jsonl"]


def test_standard_streams_that_are_closed(tmp_path: Path) -> None:
    scenario = scenario_file(tmp_path)
    command = [sys.executable, "-m", "tokenmall.cli", "replay"]
    # The shell starts the command with the stream closed (<&- and >&-), not at end of file.
    no_input = subprocess.run(
        ["sh", "-c", 'exec "$@" <&-', "sh", *command, "-"], capture_output=True, check=False
    )
    assert one_line_error(no_input) == "tokenmall: error: -: standard input is closed\n"
    no_output = subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", *command, str(scenario)],
        stderr=subprocess.PIPE,
        check=False,
    )
    assert no_output.returncode == 1  # the output could not be written (docs/operations.md)
    assert no_output.stderr == (
        b"tokenmall: error: cannot write the output (standard output is closed)\n"
    )


def test_journal_export_names_a_params_file_it_cannot_write(tmp_path: Path) -> None:
    scenario = scenario_file(tmp_path)
    assert tokenmall("ingest", scenario, "--db", "ledger.db", cwd=tmp_path).returncode == 0
    before = listing(tmp_path)
    target = tmp_path / "no" / "such" / "dir" / "p.json"
    result = tokenmall(
        "journal", "export", "--db", "ledger.db", "--params-out", target, cwd=tmp_path
    )
    message = one_line_error(result)  # and nothing on stdout: the journal was not streamed
    assert message == f"tokenmall: error: {target}: cannot write: No such file or directory\n"
    assert listing(tmp_path) == before


# -- simulate: the scheduler, the output directory, memory, the sweep grid ------------------------


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        ("bogus", "cannot reach the Dask scheduler 'bogus': missing port number"),
        ("tcp://h:abc", "cannot reach the Dask scheduler 'tcp://h:abc'"),
        ("bogus://h:1", "cannot reach the Dask scheduler 'bogus://h:1': unknown address scheme"),
        ("tls://127.0.0.1:9", "cannot reach the Dask scheduler 'tls://127.0.0.1:9'"),
        ("", "--scheduler is empty"),
    ],
)
def test_simulate_refuses_a_scheduler_that_is_no_address(
    tmp_path: Path, scheduler: str, message: str
) -> None:
    scenario = SCENARIOS / "order-only.toml"
    started = time.monotonic()
    result = tokenmall("simulate", scenario, "--scheduler", scheduler, "--out", "out", cwd=tmp_path)
    assert message in one_line_error(result)
    assert time.monotonic() - started < 30  # no connection attempt to wait for
    assert listing(tmp_path) == []


def test_simulate_refuses_a_population_that_cannot_fit_in_memory(tmp_path: Path) -> None:
    scenario = tmp_path / "absurd.toml"
    scenario.write_text(
        '[scenario]\nname = "absurd"\ndays = 3650\n[arrivals]\nkind = "fixed"\nrate = 1000000\n'
    )
    started = time.monotonic()
    result = tokenmall("simulate", scenario, "--out", "out", cwd=tmp_path)
    elapsed_s = time.monotonic() - started
    message = one_line_error(result)
    assert elapsed_s < 5, elapsed_s
    assert "this scenario would need about" in message
    assert "3,650,000,000 consumers" in message and "this machine has" in message
    assert listing(tmp_path) == ["absurd.toml"]


def test_simulate_refuses_a_sweep_grid_before_building_it(tmp_path: Path) -> None:
    values = ",".join(["0.1"] * 1_000)
    sweeps = [f"--sweep={name}={values}" for name in ("contribution_rate", "sell_fee_rate")]
    sweeps.append(f"--sweep=dividend_rate={values}")
    started = time.monotonic()
    result = tokenmall("simulate", SCENARIOS / "order-only.toml", *sweeps, "--out", "out")
    assert "the sweep has 1,000,000,000 points" in one_line_error(result)
    assert time.monotonic() - started < 10


def test_simulate_refuses_an_output_that_is_a_file_before_running(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    result = tokenmall("simulate", SCENARIOS / "steady-growth.toml", "--out", "taken", cwd=tmp_path)
    assert "taken: exists and is not a directory" in one_line_error(result)


# -- Ctrl-C: exit status 130, "tokenmall: interrupted" --------------------------------------------


def wait_until_drained(pipe_fd: int) -> None:
    """Until the child has read what was written into the pipe: it is then running a command
    (a SIGINT while Python starts up would be a plain KeyboardInterrupt traceback)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        unread = struct.unpack("i", fcntl.ioctl(pipe_fd, termios.FIONREAD, b"\0" * 4))[0]
        if unread == 0:
            return
        time.sleep(0.02)
    pytest.fail("the command never read its input")


@pytest.fixture
def ctrl_c_reaches_children() -> Iterator[None]:
    """Children see SIGINT as a terminal gives it. A test run started in the background by a
    non-interactive shell ignores SIGINT, children inherit an ignored signal, and Python would
    then never raise KeyboardInterrupt; a handled one is reset to the default at exec."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def assert_interrupted(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert stderr == b"tokenmall: interrupted\n"


@pytest.mark.usefixtures("ctrl_c_reaches_children")
def test_ctrl_c_while_replay_reads_standard_input(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "tokenmall.cli", "replay", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdin is not None
        process.stdin.write(REGISTER_LINE)
        process.stdin.flush()  # and left open: replay waits for more
        wait_until_drained(process.stdin.fileno())
        assert_interrupted(process)


@pytest.mark.usefixtures("ctrl_c_reaches_children")
def test_ctrl_c_while_ingest_reads_its_file(tmp_path: Path) -> None:
    fifo = tmp_path / "commands.jsonl"
    os.mkfifo(fifo)
    with subprocess.Popen(
        [sys.executable, "-m", "tokenmall.cli", "ingest", fifo, "--db", tmp_path / "ledger.db"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        writer = open_when_read(fifo)
        try:
            os.write(writer, REGISTER_LINE)
            wait_until_drained(writer)
            assert_interrupted(process)
        finally:
            os.close(writer)
    assert listing(tmp_path) == ["commands.jsonl"]  # interrupted before the ledger was made


def open_when_read(fifo: Path) -> int:
    """The FIFO's write end, once the child has opened it for reading."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:  # ENXIO: no reader yet
            if error.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
