"""The order-only model: the seeds' figures, the closed form, independence of the contribution
rate, and the NumPy fast path against the exact rules engine."""

import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.orderonly import (
    FAST_PATH_RELATIVE_TOLERANCE,
    closed_form_price,
    exact_prices,
    fast_prices,
    order_only_params,
)
from tokenmall.core.params import Params

SEEDS_FIGURES = {1: "1.4286", 2: "1.6807", 3: "1.8674", 4: "2.0188", 100: "5.1731"}


def four_places(price: float) -> str:
    return f"{price:.4f}"


def four_places_exact(price: Fraction) -> str:
    """Half-up to 4 places, as the seeds print prices."""
    quotient = Decimal(price.numerator) / Decimal(price.denominator)
    return str(quotient.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def test_the_seeds_figures_exactly_and_fast() -> None:
    params = order_only_params()
    exact = exact_prices([100_00] * 100, params)
    fast = fast_prices(np.full(100, 100_00, dtype=np.int64), params)
    for orders, shown in SEEDS_FIGURES.items():
        assert four_places_exact(exact[orders - 1]) == shown
        assert four_places(float(fast[orders - 1])) == shown


def test_the_closed_form_at_ten_thousand_orders() -> None:
    fast = fast_prices(np.full(10_000, 100_00, dtype=np.int64), order_only_params())
    assert round(float(fast[-1]), 3) == 20.573
    assert round(closed_form_price(10_000, 0.7), 3) == 20.573
    for orders in (1, 2, 10, 1_000, 10_000):
        assert math.isclose(fast[orders - 1], closed_form_price(orders, 0.7), rel_tol=1e-9)


@pytest.mark.parametrize("rate", ["0.05", "0.3", "0.77", "1"])
def test_the_price_does_not_depend_on_the_contribution_rate(rate: str) -> None:
    params = order_only_params(Params().with_overrides({"contribution_rate": rate}))
    exact = exact_prices([100_00] * 50, params)
    baseline = exact_prices([100_00] * 50, order_only_params())
    for ours, theirs in zip(exact, baseline, strict=True):
        assert math.isclose(float(ours), float(theirs), rel_tol=FAST_PATH_RELATIVE_TOLERANCE)


@given(
    st.lists(st.integers(1_00, 5_000_00), min_size=1, max_size=60),
    st.sampled_from(["0.1", "0.3", "0.5"]),
    st.sampled_from(["0.2", "0.7", "1"]),
)
@settings(max_examples=60, deadline=None)
def test_the_fast_path_follows_the_exact_engine(
    values_fen: list[int], rate: str, share: str
) -> None:
    params = order_only_params(
        Params().with_overrides({"contribution_rate": rate, "buyer_share": share})
    )
    exact = exact_prices(values_fen, params)
    fast = fast_prices(np.array(values_fen, dtype=np.int64), params)
    for ours, theirs in zip(fast, exact, strict=True):
        assert math.isclose(float(ours), float(theirs), rel_tol=FAST_PATH_RELATIVE_TOLERANCE)


def test_many_runs_at_once_equal_each_run_alone() -> None:
    generator = np.random.default_rng(np.random.SeedSequence(7))
    values = generator.integers(10_00, 1_000_00, size=(5, 200), dtype=np.int64)
    together = fast_prices(values, order_only_params())
    for run in range(5):
        alone = fast_prices(values[run], order_only_params())
        assert np.array_equal(together[run], alone)
