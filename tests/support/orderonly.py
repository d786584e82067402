"""The order-only model (the seeds' recurrence): cash orders and nothing else, no dividends, no
sells, no exits. Two ways to compute its price path:

- `exact_prices`: through the rules engine, to the fen and 1e-8 EP (the reference);
- `fast_prices`: NumPy, float64, for sweeps and Monte Carlo (the package's
  `tokenmall.sim.fast`, which `tokenmall simulate` takes for order-only scenarios).

Why a cumulative product is enough. With contributions a_1..a_n (fen) and A_n = a_1 + … + a_n,
order n adds a_n to the pool and k·a_n / p_{n-1} EP to the supply (k = buyer_share). Since the
pool before it is A_{n-1} = p_{n-1} · S_{n-1},

    p_n = (A_{n-1} + a_n) / (S_{n-1} + k·a_n / p_{n-1}) = p_{n-1} · A_n / (A_{n-1} + k·a_n),

a product of known factors: the price does not depend on the contribution rate when every
order is the same size, and p_n = Γ(n+1)·Γ(1+k) / (k·Γ(n+k)) · p_0 then (`closed_form_price`).
The exact engine floors each grant to 1e-8 EP, which keeps its price a hair above the float
path; `FAST_PATH_RELATIVE_TOLERANCE` bounds the gap (tested here and in test_sim_fast.py).
"""

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from tokenmall.core.engine import Engine
from tokenmall.core.params import Params
from tokenmall.sim import fast
from tokenmall.sim.fast import FAST_PATH_RELATIVE_TOLERANCE, contributions_fen

__all__ = [
    "FAST_PATH_RELATIVE_TOLERANCE",
    "closed_form_price",
    "contributions_fen",
    "exact_prices",
    "fast_prices",
    "order_only_params",
]
ORDER_ONLY = {"exit_enabled": False, "referral_rates": []}  # overrides: nothing but orders


def order_only_params(base: Params | None = None) -> Params:
    return (base or Params()).with_overrides(ORDER_ONLY)


def fast_prices(values_fen: npt.NDArray[np.int64], params: Params) -> npt.NDArray[np.float64]:
    """The price (CNY per EP) after each order, for one run (1-D) or many (2-D: runs × orders),
    as float64: `tokenmall.sim.fast.fast_prices`, which `tokenmall simulate` uses."""
    contributions = contributions_fen(values_fen, params.contribution_rate)
    prices, _supply = fast.fast_prices(
        contributions, float(params.buyer_share), float(params.initial_price)
    )
    return prices


def exact_prices(values_fen: Sequence[int], params: Params) -> list[Fraction]:
    """The price after each order through the rules engine (one consumer per order, so that no
    quota or level ever matters), as exact fractions in CNY per EP."""
    engine = Engine(order_only_params(params))
    prices = []
    for number, value_fen in enumerate(values_fen):
        user = f"c{number}"
        engine.apply({"op": "register", "user": user})
        amount = f"{value_fen // 100}.{value_fen % 100:02d}"
        engine.apply({"op": "order", "id": f"o{number}", "user": user, "amount": amount})
        pool_fen, supply_units = engine.price()
        prices.append(Fraction(pool_fen * 10**8, supply_units * 100))
    return prices


def closed_form_price(orders: int, buyer_share: float, initial_price: float = 1.0) -> float:
    """p_n = Γ(n+1)·Γ(1+k) / (k·Γ(n+k)) · p_0: equal orders, any contribution rate."""
    k = buyer_share
    log_price = math.lgamma(orders + 1) + math.lgamma(1 + k) - math.lgamma(orders + k)
    return initial_price * math.exp(log_price) / k
