"""csvtext writes what csv.writer writes for the same Python values, byte for byte."""

import csv
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmall.sim import csvtext

INT64 = st.integers(-(2**63) + 1, 2**63 - 1)
# values near the edges the module switches at: 15 digits, repr's exponent below 1e-4
EDGES = st.sampled_from(
    [0, 1, -1, 9, 10, 99, 100, 101, 9_999, 10_000, 10**8, 10**15 - 1, 10**15, -(10**15) + 1]
)
VALUES = st.one_of(EDGES, st.integers(-(10**12), 10**12), INT64)
TEXT = st.text(st.characters(codec="utf-8"), max_size=8)


def reference(columns: list[csvtext.Column]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in zip(*(csvtext.python_values(column) for column in columns), strict=True):
        writer.writerow(row)
    return buffer.getvalue()


def written(columns: list[csvtext.Column]) -> str:
    buffer = io.StringIO()
    csvtext.write_csv(buffer, columns)
    return buffer.getvalue()


@st.composite
def tables(draw: st.DrawFn) -> list[csvtext.Column]:
    rows = draw(st.integers(1, 40))
    kinds = draw(
        st.lists(
            st.sampled_from(["int", "fen", "units", "price", "float", "label"]),
            min_size=1,
            max_size=6,
        )
    )
    columns: list[csvtext.Column] = []
    for kind in kinds:
        ints = np.array(draw(st.lists(VALUES, min_size=rows, max_size=rows)), dtype=np.int64)
        if kind == "int":
            columns.append(csvtext.Integers(ints))
        elif kind == "fen":
            columns.append(csvtext.Quotients(ints, 100))
        elif kind in ("units", "price"):
            columns.append(csvtext.Quotients(ints, 10**8))
        elif kind == "float":
            floats = draw(st.lists(st.floats(allow_nan=True), min_size=rows, max_size=rows))
            columns.append(csvtext.FloatValues(np.array(floats, dtype=np.float64)))
        else:
            labels = draw(st.lists(TEXT, min_size=1, max_size=3))
            codes = draw(st.lists(st.integers(0, len(labels) - 1), min_size=rows, max_size=rows))
            columns.append(csvtext.Labels(np.array(codes, dtype=np.int64), labels))
    if draw(st.booleans()):  # a column that is one object twice, as metrics.csv has
        columns.append(columns[0])
    return columns


@settings(max_examples=300, deadline=None)
@given(tables())
def test_the_text_is_csv_writers(columns: list[csvtext.Column]) -> None:
    assert written(columns) == reference(columns)


@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 8_192])
def test_rows_go_in_chunks_and_the_text_is_the_same(
    chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = np.random.default_rng(7)
    rows = 50
    columns: list[csvtext.Column] = [
        csvtext.Integers(np.arange(rows, dtype=np.int64)),
        csvtext.Quotients(generator.integers(-(10**9), 10**9, rows), 100),
        csvtext.Quotients(generator.integers(0, 10**13, rows), 10**8),
        csvtext.Quotients(np.zeros(rows, dtype=np.int64), 100),  # one value in every row
        csvtext.FloatValues(generator.random(rows) * 1_000),
        csvtext.Labels(np.repeat(np.arange(5), 10), ["a,b", 'say "hi"', "两", "x\ny", ""]),
    ]
    monkeypatch.setattr(csvtext, "CHUNK_ROWS", chunk_rows)
    assert written(columns) == reference(columns)


def test_columns_of_several_runs_join_into_one() -> None:
    first: list[csvtext.Column] = [
        csvtext.Integers(np.array([1, 2])),
        csvtext.Quotients(np.array([5, 10]), 100),
        csvtext.Labels(np.array([0, 0]), ["0.3"]),
    ]
    second: list[csvtext.Column] = [
        csvtext.Integers(np.array([3])),
        csvtext.Quotients(np.array([-7]), 100),
        csvtext.Labels(np.array([0]), ["0.25"]),
    ]
    joined = [csvtext.concatenated([a, b]) for a, b in zip(first, second, strict=True)]
    assert written(joined) == "1,0.05,0.3\r\n2,0.1,0.3\r\n3,-0.07,0.25\r\n"
    assert [csvtext.python_values(column) for column in joined] == [
        [1, 2, 3],
        [0.05, 0.1, -0.07],
        ["0.3", "0.3", "0.25"],
    ]
    assert list(csvtext.numbers(joined[1])) == [0.05, 0.1, -0.07]
