"""Water-filling (SPEC §4): hand-worked cases, and a property test against SPEC's literal loop."""

import math
from collections.abc import Sequence
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmall.core.waterfill import water_fill


def literal_fill(fund: int, weights: Sequence[int], caps: Sequence[int]) -> list[int]:
    """SPEC §4 word for word: exact shares per round; cap everyone whose share >= cap; repeat."""
    paid = [0] * len(weights)
    active = list(range(len(weights)))
    remaining = Fraction(fund)
    while active:
        total = sum(weights[i] for i in active)
        shares = {i: remaining * weights[i] / total for i in active}
        capped = [i for i in active if shares[i] >= caps[i]]
        if not capped:
            for i in active:
                paid[i] = math.floor(shares[i])
            break
        for i in capped:
            paid[i] = caps[i]
            remaining -= caps[i]
        active = [i for i in active if i not in capped]
    return paid


BIG = 10**12


@pytest.mark.parametrize(
    ("fund", "weights", "caps", "expected"),
    [
        # No caps reached: 100 * 1/6 = 16.67, 100 * 2/6 = 33.33, 100 * 3/6 = 50 -> floors, dust 1.
        pytest.param(100, [1, 2, 3], [BIG] * 3, [16, 33, 50], id="no caps"),
        # Round 1: shares 33.33 each; only #0 (cap 10) is capped. Round 2: 90 / 2 = 45 each,
        # now #1 (cap 40) is capped too. Round 3: #2 takes the remaining 50.
        pytest.param(100, [1, 1, 1], [10, 40, 100], [10, 40, 50], id="cascade"),
        # Weighted cascade: round 1 shares 10, 30, 60 -> #0 (cap 5) capped; round 2 95 * 3/9 =
        # 31.67 >= 31 -> #1 capped; round 3 #2 takes 95 - 31 = 64 (< 70).
        pytest.param(100, [1, 3, 6], [5, 31, 70], [5, 31, 64], id="weighted cascade"),
        # Everyone capped: 10 + 20 + 30 = 60 paid, 40 left over.
        pytest.param(100, [1, 1, 1], [10, 20, 30], [10, 20, 30], id="all capped"),
        # Everyone capped in the second round.
        pytest.param(100, [1, 1], [30, 69], [30, 69], id="all capped after a cascade"),
        # Dust: 10 / 3 = 3.33 each, 1 fen left.
        pytest.param(10, [1, 1, 1], [BIG] * 3, [3, 3, 3], id="dust"),
        pytest.param(1, [1, 1, 1], [BIG] * 3, [0, 0, 0], id="all dust"),
        # Ties at the cap: share 25 == cap 25 counts as capped, paid exactly 25.
        pytest.param(100, [1, 1, 2], [25, 100, 100], [25, 25, 50], id="share equals cap"),
        pytest.param(90, [1, 1, 1], [30, 30, 30], [30, 30, 30], id="all shares equal caps"),
        # Round 1: 60 / 3 = 20 each; #0 capped at 10. Round 2: 50 / 2 = 25 == cap 25 of #1.
        pytest.param(60, [1, 1, 1], [10, 25, 100], [10, 25, 25], id="tie in the second round"),
        # Equal weights (a level fund): 1000 / 3 = 333.33 each; #0 capped at 100;
        # then 900 / 2 = 450 each.
        pytest.param(1000, [1, 1, 1], [100, 1000, 1000], [100, 450, 450], id="level fund"),
        pytest.param(1000, [1, 1, 1], [BIG] * 3, [333, 333, 333], id="level fund dust"),
        pytest.param(7, [1], [BIG], [7], id="one account"),
        pytest.param(7, [5], [3], [3], id="one account capped"),
        pytest.param(100, [], [], [], id="empty"),
        pytest.param(0, [1, 2, 3], [1, 1, 1], [0, 0, 0], id="zero fund"),
        pytest.param(0, [], [], [], id="zero fund and empty"),
        # Large EP weights (units of 1e-8): 40.00 over 21 EP and 14.7 EP (SPEC §8 day).
        pytest.param(
            4000, [2_100_000_000, 1_470_000_000], [20000, 20000], [2352, 1647], id="EP weights"
        ),
    ],
)
def test_water_fill_cases(
    fund: int, weights: list[int], caps: list[int], expected: list[int]
) -> None:
    fill = water_fill(fund, weights, caps)
    assert fill.payments == expected
    assert literal_fill(fund, weights, caps) == expected


def test_payments_never_exceed_caps_or_fund() -> None:
    fill = water_fill(1000, [3, 1, 4, 1, 5], [100, 2, 700, 1, 50])
    # Round 1 shares 214.29, 71.43, 285.71, 71.43, 357.14: #0, #1, #3, #4 capped (100+2+1+50).
    # Round 2: #2 alone takes 1000 - 153 = 847 >= 700: capped too.
    assert fill.payments == [100, 2, 700, 1, 50]
    assert sum(fill.payments) <= 1000


def test_level_bounds_every_payment_per_weight() -> None:
    weights, caps = [1, 3, 6], [5, 31, 70]
    fill = water_fill(100, weights, caps)
    for paid, weight in zip(fill.payments, weights, strict=True):
        assert Fraction(paid, weight) <= Fraction(fill.level_fen, fill.level_weight)


weights_and_caps = st.integers(0, 8).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(1, 10**10), min_size=n, max_size=n),
        st.lists(st.integers(1, 10**6), min_size=n, max_size=n),
    )
)


@settings(max_examples=400, deadline=None)
@given(fund=st.integers(0, 5 * 10**6), weights_caps=weights_and_caps)
def test_water_fill_matches_the_literal_loop(
    fund: int, weights_caps: tuple[list[int], list[int]]
) -> None:
    weights, caps = weights_caps
    fill = water_fill(fund, weights, caps)
    assert fill.payments == literal_fill(fund, weights, caps)
    assert sum(fill.payments) <= fund
    assert all(0 <= paid <= cap for paid, cap in zip(fill.payments, caps, strict=True))
    for paid, weight in zip(fill.payments, weights, strict=True):
        assert paid * fill.level_weight <= fill.level_fen * weight


small_values = st.integers(1, 6)


@settings(max_examples=300, deadline=None)
@given(
    fund=st.integers(0, 60),
    weights_caps=st.integers(1, 5).flatmap(
        lambda n: st.tuples(
            st.lists(small_values, min_size=n, max_size=n),
            st.lists(st.integers(1, 20), min_size=n, max_size=n),
        )
    ),
)
def test_water_fill_matches_the_literal_loop_with_many_ties(
    fund: int, weights_caps: tuple[list[int], list[int]]
) -> None:
    # Small numbers make shares land exactly on caps often.
    weights, caps = weights_caps
    assert water_fill(fund, weights, caps).payments == literal_fill(fund, weights, caps)


def test_fund_is_fully_spent_unless_everyone_is_capped() -> None:
    # 每天的分红基金都会分完: only floor dust (< number of accounts) stays.
    fill = water_fill(10_001, [7, 11, 13], [10**9] * 3)
    assert 10_001 - sum(fill.payments) < 3
