"""CSV text from NumPy columns: what `csv.DictWriter` writes for the same values, byte for
byte (tested), without a Python string per number.

DictWriter writes `str()` of each value. For an integer that is its digits. For the float
`fen / 100` (metrics.csv's money) or `units / 10**8` (its EP) it is the shortest text that
reads back as the same double; when the quotient has at most 15 significant digits (every
decimal of 15 digits survives a round trip through a double, so no shorter text reads back
as it) and lies where `repr` writes no exponent (1e-4 to 1e16), that text is the decimal itself
with its trailing zeros dropped and one kept: `12.5`, `0.0`, `-3.07`. NumPy computes those
digits for a whole column at once. Any other float (the price) goes through `repr` one by one,
as does a quotient column with a value outside those bounds.

How: each column becomes a byte matrix, a row for each CSV row, as wide as its widest cell,
with a mask of the bytes that are text (the rest pads). The columns' matrices side by side,
with the commas and line ends between them, are the file's bytes in order once the padding
is masked out. Rows go `CHUNK_ROWS` at a time, so a long table never needs all its matrices
at once.
"""

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bytes = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

# Rows made at once: about 30 MiB of matrices and masks for metrics.csv's 26 columns.
CHUNK_ROWS = 8_192
# The largest magnitude written as a decimal: 15 significant digits at most.
DECIMAL_MAX = 10**15 - 1
# repr writes floats below this in magnitude (other than 0) with an exponent: 1e-05.
REPR_FIXED_MIN = 10**-4


@dataclass(frozen=True)
class Integers:
    """`str(int)` of each value."""

    values: Ints


@dataclass(frozen=True)
class Quotients:
    """`str(value / scale)` of each value (scale a power of ten: 100 for fen, 10**8 for EP
    units): the float DictWriter gets for an amount."""

    values: Ints
    scale: int


@dataclass(frozen=True)
class FloatValues:
    """`str(float)` of each value."""

    values: Floats


@dataclass(frozen=True)
class Labels:
    """Text values given once each (`values`) and which one each row has (`codes`): a sweep
    point's values, the same for every row of a run; quoted as csv.writer quotes them."""

    codes: Ints
    values: list[str]


Column = Integers | Quotients | FloatValues | Labels


def rows_of(column: Column) -> int:
    return len(column.codes if isinstance(column, Labels) else column.values)


def python_values(column: Column) -> list[object]:
    """The Python values the column's text stands for (what the rules engine's dict rows hold)."""
    if isinstance(column, Labels):
        return [column.values[code] for code in column.codes.tolist()]
    if isinstance(column, Quotients):
        return list((column.values / column.scale).tolist())
    return list(column.values.tolist())


def write_csv(handle: TextIO, columns: Sequence[Column]) -> None:
    """The columns' rows onto `handle`, as csv.writer (excel dialect: CRLF line ends) writes
    rows of their Python values."""
    if len(columns) == 1:  # a row of one empty text is '""' (an empty line would be no row)
        writer = csv.writer(handle)
        for value in python_values(columns[0]):
            writer.writerow([value])
        return
    for text in chunks(columns):
        handle.write(text)


def chunks(columns: Sequence[Column]) -> Iterator[str]:
    rows = rows_of(columns[0]) if columns else 0
    for start in range(0, rows, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, rows)
        yield _text(columns, start, stop)


def _text(columns: Sequence[Column], start: int, stop: int) -> str:
    count = stop - start
    planned: dict[int, _Cells] = {}  # by the column's id: columns may be one object
    cells = [planned.setdefault(id(column), _plan(column, start, stop)) for column in columns]
    width = sum(cell.width + 1 for cell in cells) + 1  # a comma after each, CRLF at the end
    matrix = np.empty((count, width), np.uint8)
    keep = np.ones((count, width), np.bool_)
    at = 0
    for cell in cells:
        cell.fill(matrix[:, at : at + cell.width], keep[:, at : at + cell.width])
        at += cell.width
        matrix[:, at] = ord(",")
        at += 1
    matrix[:, at - 1 :] = np.frombuffer(b"\r\n", np.uint8)  # the last comma is the CR
    text: bytes = matrix[keep].tobytes()
    return text.decode("utf-8")


class _Cells:
    """A column's cells for some rows: how wide the widest is, and how to write them into a
    matrix of that width (its bytes, and the mask of those that are text: true on entry)."""

    width = 0

    def fill(self, text: Bytes, keep: Mask) -> None:
        raise NotImplementedError


def _plan(column: Column, start: int, stop: int) -> _Cells:
    if isinstance(column, Labels):
        return _Strings(*_labels(column.codes[start:stop], column.values))
    if isinstance(column, FloatValues):
        return _Strings(*_strings(list(map(repr, column.values[start:stop].tolist()))))
    values = column.values[start:stop]
    scale = column.scale if isinstance(column, Quotients) else 1
    if not values.size:
        return _Strings(np.zeros((0, 0), np.uint8), np.zeros(0, np.int64))
    low, high = int(values.min()), int(values.max())
    if low == high:  # one value in every row (many of metrics.csv's columns are all 0)
        return _Same(str(low / scale if scale != 1 else low).encode("ascii"))
    if not _decimal_is_repr(values, low, high, scale):
        floats = values / scale if scale != 1 else values
        return _Strings(*_strings(list(map(str, floats.tolist()))))
    return _Decimals(values, scale, low, high)


def _decimal_is_repr(values: Ints, low: int, high: int, scale: int) -> bool:
    """Whether str() of each value / scale is its decimal (see the module's docstring)."""
    if max(-low, high) > DECIMAL_MAX:
        return False
    if scale == 1:
        return True
    nonzero = np.abs(values[values != 0])
    return not nonzero.size or int(nonzero.min()) >= scale * REPR_FIXED_MIN


class _Same(_Cells):
    def __init__(self, cell: bytes) -> None:
        self.cell = np.frombuffer(cell, np.uint8)
        self.width = len(cell)

    def fill(self, text: Bytes, keep: Mask) -> None:
        text[:] = self.cell


class _Strings(_Cells):
    """Cells made in Python, left-aligned and padded (`matrix`), and their lengths."""

    def __init__(self, matrix: Bytes, lengths: Ints) -> None:
        self.matrix, self.lengths = matrix, lengths
        self.width = matrix.shape[1]

    def fill(self, text: Bytes, keep: Mask) -> None:
        text[:] = self.matrix
        keep[:] = np.arange(self.width) < self.lengths[:, None]


class _Decimals(_Cells):
    """[sign][integer digits][. fraction digits, trailing zeros dropped, one kept] of each
    value / scale; integers (scale 1) without the fraction. Digits go four at a time, looked
    up in a table of "0000" to "9999"; each part as wide as its widest value."""

    def __init__(self, values: Ints, scale: int, low: int, high: int) -> None:
        self.values, self.scale = values, scale
        self.signed = low < 0
        self.digits = len(str(max(-low, high) // scale))
        self.places = len(str(scale)) - 1  # 0 for integers
        self.width = self.signed + self.digits + (self.places + 1 if self.places else 0)

    def fill(self, text: Bytes, keep: Mask) -> None:
        values, digits, places = self.values, self.digits, self.places
        magnitude = np.abs(values)
        whole, fraction = np.divmod(magnitude, self.scale) if places else (magnitude, magnitude)
        at = 0
        if self.signed:
            text[:, 0] = ord("-")
            keep[:, 0] = values < 0
            at = 1
        _fill_digits(text[:, at : at + digits], whole)
        # the digits written: as many as the number has (one for 0), at the right
        length = np.searchsorted(_POWERS, whole, side="right") + 1
        keep[:, at : at + digits] = np.arange(digits, 0, -1) <= length[:, None]
        if not places:
            return
        at += digits
        text[:, at] = ord(".")
        _fill_digits(text[:, at + 1 :], fraction)
        padded = -(-places // 4) * 4  # the fraction's digits, left-aligned in 4-digit groups
        groups = fraction * 10 ** (padded - places)
        # written: up to the last digit that is not 0, at least one
        zeros = np.zeros(len(values), np.int64)  # the trailing zeros of the padded digits
        all_zero = np.ones(len(values), np.bool_)
        for group in range(padded // 4):
            quad = groups // 10 ** (4 * group) % 10_000
            zeros += np.where(all_zero, _TRAILING_ZEROS4[quad], 0)
            all_zero &= quad == 0
        written = np.maximum(padded - zeros, 1)
        keep[:, at + 1 :] = np.arange(places) < written[:, None]


def _fill_digits(text: Bytes, magnitude: Ints) -> None:
    """The magnitudes' last digits, as many as text is wide, zero-padded on the left."""
    right = text.shape[1]
    power = 1
    while right > 0:
        quad = _DIGITS4[magnitude // power % 10_000]
        left = max(right - 4, 0)
        text[:, left:right] = quad[:, 4 - (right - left) :]
        right, power = left, power * 10_000


# "0000" to "9999", four ASCII digits a row; the trailing zeros of each (4 for 0000); and
# 10**1 to 10**18, for the count of digits
_QUADS = np.arange(10_000, dtype=np.int64)
_DIGITS4 = (_QUADS[:, None] // np.array([1000, 100, 10, 1]) % 10 + ord("0")).astype(np.uint8)
_TRAILING_ZEROS4 = (
    (_QUADS % 10 == 0).astype(np.int64)
    + (_QUADS % 100 == 0)
    + (_QUADS % 1000 == 0)
    + (_QUADS % 10_000 == 0)
)
_POWERS = 10 ** np.arange(1, 19, dtype=np.int64)


def _strings(cells: list[str]) -> tuple[Bytes, Ints]:
    """Cells made in Python (numbers: no commas, quotes or line ends in them), as a matrix:
    joined with line ends into one text, which NumPy cuts at them."""
    if not cells:
        return np.zeros((0, 0), np.uint8), np.zeros(0, np.int64)
    text = np.frombuffer("\n".join(cells).encode("ascii") + b"\n", np.uint8)
    ends = np.flatnonzero(text == ord("\n"))
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    width = int(lengths.max())
    # each cell's bytes and then the next's (masked off); the last cell's run past the text
    # reads its line end, then the padding
    padded = np.concatenate((text, np.zeros(width, np.uint8)))
    return padded[starts[:, None] + np.arange(width)], lengths


def _labels(codes: Ints, values: list[str]) -> tuple[Bytes, Ints]:
    encoded = [_csv_cell(value).encode("utf-8") for value in values]
    table = np.array(encoded or [b""])
    lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
    width = table.dtype.itemsize
    # NumPy's "S" type pads with NUL; the lengths say where each cell ends (it may end in NUL)
    return table.view(np.uint8).reshape(len(encoded), width)[codes], lengths[codes]


def _csv_cell(value: str) -> str:
    """The value as csv.writer writes it in a row of several (quoted when it must be)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow([value, ""])
    return buffer.getvalue()[: -len(",\r\n")]


def concatenated(parts: Sequence[Column]) -> Column:
    """One column of the parts' rows in turn (parts of one kind: a column of several runs)."""
    first = parts[0]
    if isinstance(first, Labels):
        codes, values, offset = [], [], 0
        for part in parts:
            assert isinstance(part, Labels)
            codes.append(part.codes + offset)
            values += part.values
            offset += len(part.values)
        return Labels(np.concatenate(codes), values)
    arrays = [part.values for part in parts if not isinstance(part, Labels)]
    if isinstance(first, Quotients):
        assert all(isinstance(p, Quotients) and p.scale == first.scale for p in parts)
        return Quotients(np.concatenate(arrays), first.scale)
    if isinstance(first, Integers):
        return Integers(np.concatenate(arrays))
    return FloatValues(np.concatenate(arrays))


def numbers(column: Column) -> npt.NDArray[np.int64] | Floats | list[str]:
    """The column's values for computing with: integers, floats (quotients divided out), or
    the labels' text."""
    if isinstance(column, Labels):
        return [column.values[code] for code in column.codes.tolist()]
    if isinstance(column, Quotients):
        quotients: Floats = column.values / column.scale
        return quotients
    return column.values
