"""Replay (SPEC §7): read a JSONL scenario, apply every line, return the canonical state.

This module does the file I/O and line decoding; the rules are all in `tokenmall.core`.
"""

import itertools
import json
import math
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from tokenmall.core.canonical import StateJson, canonical_state
from tokenmall.core.engine import Engine
from tokenmall.core.errors import ErrorCode, ParamsError, Rejected
from tokenmall.core.params import Params

# A limit on every input: no real command needs more than this.
LINE_BYTES_MAX = 64 * 1024
PARAMS_FILE_BYTES_MAX = 64 * 1024
JSON_INT_DIGITS_MAX = 40
JSON_WHITESPACE = " \t\r\n"


class InputError(Exception):
    """Input that cannot be replayed at all (missing file, binary data, bad params): one line."""


def read_params(path: Path | None) -> Params:
    if path is None:
        return Params()
    data = _read_bytes(path, PARAMS_FILE_BYTES_MAX)
    try:
        overrides = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InputError(f"{path}: not a JSON file") from None
    try:
        return Params().with_overrides(overrides)
    except ParamsError as error:
        raise InputError(f"{path}: invalid params: {error}") from None


def scenario_lines(stream: BinaryIO, name: str) -> Iterator[bytes | None]:
    """The lines of a JSONL stream without their line end (JSON Lines: `\n`, or `\r\n`), read
    one bounded line at a time; None stands for a line longer than LINE_BYTES_MAX, which is
    skipped without being held in memory. InputError on a NUL byte: the input is not text.
    """
    for line_number in itertools.count(1):
        line = _read_line(stream, name, LINE_BYTES_MAX + 2)  # room for a \r\n at the limit
        if not line:
            return
        if b"\0" in line:
            raise InputError(f"{name}: binary data (a NUL byte on line {line_number}), not JSONL")
        if not line.endswith(b"\n") and len(line) > LINE_BYTES_MAX:
            _skip_rest_of_line(stream, name)
            yield None
            continue
        yield line.removesuffix(b"\n").removesuffix(b"\r")


def _skip_rest_of_line(stream: BinaryIO, name: str) -> None:
    while True:
        chunk = _read_line(stream, name, LINE_BYTES_MAX)
        if not chunk or chunk.endswith(b"\n"):
            return


def _read_line(stream: BinaryIO, name: str, limit: int) -> bytes:
    # Opening is not reading: /proc/self/mem opens, then every read fails.
    try:
        return stream.readline(limit)
    except OSError as error:
        raise _cannot_read(name, error) from None


def _cannot_read(name: object, error: OSError) -> InputError:
    return InputError(f"{name}: cannot read: {error.strerror or error}")


@contextmanager
def open_input(path: Path) -> Iterator[BinaryIO]:
    """An input file (scenario or params) opened for reading in binary; `-` is standard input.
    InputError if it cannot be opened."""
    if str(path) == "-":
        if sys.stdin is None:  # started with it closed (<&-)
            raise InputError("-: standard input is closed")
        yield sys.stdin.buffer
        return
    try:
        if path.is_dir():
            raise InputError(f"{path}: is a directory, not a file")
        stream = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as error:
        raise _cannot_read(path, error) from None
    with stream:
        yield stream


def decode_command(raw_line: bytes | None) -> dict[str, Any] | ErrorCode | None:
    """One line as a command object, None for a blank line, or invalid_command.

    Strict JSON (RFC 8259): no NaN/Infinity, no lone surrogate escapes; whitespace is JSON's.
    `raw_line` None is a line that was too long to read.
    """
    if raw_line is None or len(raw_line) > LINE_BYTES_MAX:
        return ErrorCode.INVALID_COMMAND
    try:
        text = raw_line.decode("utf-8")
    except UnicodeDecodeError:
        return ErrorCode.INVALID_COMMAND
    if not text.strip(JSON_WHITESPACE):
        return None
    try:
        command = json.loads(text, parse_constant=_reject_constant, parse_int=_bounded_int)
        if "\\u" in text:
            # Escapes may spell a lone surrogate (\ud800), which is not Unicode text.
            json.dumps(command, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError, UnicodeEncodeError):
        return ErrorCode.INVALID_COMMAND
    if not isinstance(command, dict):
        return ErrorCode.INVALID_COMMAND
    return command


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _bounded_int(text: str) -> int | float:
    # A longer integer is out of every range we accept; Python's int() refuses 4,301+ digits.
    if len(text.lstrip("-")) > JSON_INT_DIGITS_MAX:
        return math.inf
    return int(text)


def numbered_commands(
    raw_lines: Iterable[bytes | None],
) -> Iterator[tuple[int, dict[str, Any] | ErrorCode]]:
    """(1-based physical line number, command or error) for every non-blank line."""
    for line_number, raw_line in enumerate(raw_lines, start=1):
        decoded = decode_command(raw_line)
        if decoded is not None:
            yield line_number, decoded


def replay_lines(raw_lines: Iterable[bytes | None], params: Params) -> StateJson:
    engine = Engine(params)
    errors: list[dict[str, Any]] = []
    for line_number, command in numbered_commands(raw_lines):
        if isinstance(command, ErrorCode):
            errors.append({"line": line_number, "code": str(command)})
            continue
        try:
            engine.apply(command)
        except Rejected as rejected:
            errors.append({"line": line_number, "code": str(rejected.code)})
    return canonical_state(engine, errors)


def _read_bytes(path: Path, limit: int) -> bytes:
    with open_input(path) as stream:
        try:
            data = stream.read(limit + 1)
        except OSError as error:
            raise _cannot_read(path, error) from None
    if len(data) > limit:
        raise InputError(f"{path}: larger than {limit} bytes")
    return data
