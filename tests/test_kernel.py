"""The compiled kernel (core/_kernel.c) is the Python rules, faster: `Engine.place_orders` and
settle_day's holding fund leave exactly the state the Python code leaves, on the same
commands, whatever the parameters, and a full-rules simulation is the same run with it or
without it. Under CI the kernel must have been built (a missing compiler fails, not skips)."""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import MERCHANTS, SETUP, USERS, commands, param_overrides
from tokenmall.core import kernel
from tokenmall.core.engine import Engine
from tokenmall.core.errors import Rejected
from tokenmall.core.fields import FEN_MAX
from tokenmall.core.kernel import Kernel
from tokenmall.core.params import Params
from tokenmall.core.snapshot import take_snapshot
from tokenmall.core.units import Fen
from tokenmall.sim.model import run
from tokenmall.sim.scenario import scenario_of

COMPILED = kernel.KERNEL
needs_kernel = pytest.mark.skipif(
    COMPILED is None and os.environ.get("CI") != "true",
    reason="the compiled kernel was not built (no C compiler when tokenmall was installed)",
)


@contextmanager
def kernel_set(module: Kernel | None) -> Iterator[None]:
    saved = kernel.KERNEL
    kernel.KERNEL = module
    try:
        yield
    finally:
        kernel.KERNEL = saved


def with_kernel(module: Kernel | None, call: Callable[[], object]) -> object:
    """What `call` returns with the kernel on (module) or off (None); a rejection's code."""
    with kernel_set(module):
        try:
            return call()
        except Rejected as rejected:
            return str(rejected.code)


def state_of(engine: Engine) -> dict[str, Any]:
    """Everything the two paths must agree on: the snapshot, and what it leaves out that
    decides later commands (the exit queue's heap and keys, the levels' order, today's
    orders as refunds read them, the last price)."""
    return {
        "snapshot": take_snapshot(engine),
        "heap": sorted(engine.exit_queue.heap),
        "offset": engine.exit_queue.offset,
        "trigger_key": list(engine.book.trigger_key),
        "leveled": list(engine.leveled),
        "today": dict(engine.orders.today),
        "last_price": engine.last_price,
        "totals": {name: getattr(engine, name) for name in ("pool", "supply", "issued")},
    }


# Ids the kernel takes (letters and digits) and ids it leaves to Python: valid ones with
# other characters, and invalid ones; users that exist and that do not; amounts it takes and
# amounts beyond it (2**62 and more), or invalid.
plain_ids = st.sampled_from([f"k{i}" for i in range(40)])
order_ids = st.one_of(
    plain_ids,
    plain_ids,
    plain_ids,
    st.sampled_from(["k-1", "k.2", "k@3", "订单", "", "x" * 65, "x" * 64, "a b"]),
)
users = st.one_of(st.sampled_from(USERS[:4]), st.sampled_from([*USERS[4:], "nobody", "u-0", ""]))
amounts = st.one_of(
    st.integers(1, 50_000),
    st.integers(1, 300),  # within the SP that dividends give
    st.integers(1, 50_000),
    st.integers(1, 50_000),
    st.sampled_from([0, -5, 2**62, 2**62 + 1, 2**63, FEN_MAX, FEN_MAX + 1, True]),
)
# Most in cash; some in SP at a merchant that exists, or one that does not.
merchants = st.one_of(st.none(), st.none(), st.sampled_from([*MERCHANTS, "ghost", "m-0"]))
order_batch = st.lists(st.tuples(order_ids, users, amounts, merchants), min_size=1, max_size=25)
# After SETUP: EP for u0-u3 turned into SP, for orders paid in SP (when the rates allow).
SP_TO_SPEND: list[dict[str, Any]] = [
    *({"op": "order", "id": f"sp{n}", "user": f"u{n}", "amount": "2000.00"} for n in range(4)),
    *({"op": "convert", "user": f"u{n}", "points": "all"} for n in range(4)),
]
# Half batches, half any other command (one_of would flatten commands' fifty branches, and
# draw a batch one time in fifty).
steps = st.lists(
    st.booleans().flatmap(lambda batch: order_batch if batch else commands), min_size=4, max_size=40
)


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(overrides=param_overrides, steps=steps)
def test_the_kernel_leaves_the_state_python_leaves(
    overrides: dict[str, Any], steps: list[Any]
) -> None:
    params = Params().with_overrides(overrides)
    compiled, python = Engine(params), Engine(params)
    for step in [*SETUP, *SP_TO_SPEND, *steps]:
        got = with_kernel(COMPILED, partial(apply_step, compiled, step))
        assert got == with_kernel(None, partial(apply_step, python, step)), step
    assert state_of(compiled) == state_of(python)


def apply_step(
    engine: Engine, step: list[tuple[str, str, int, str | None]] | dict[str, Any]
) -> object:
    """A batch of orders (which were accepted), or any command (its postings)."""
    if isinstance(step, list):
        return engine.place_orders(step)
    return engine.apply(step).postings


@needs_kernel
def test_a_batch_is_each_order_in_turn() -> None:
    """place_orders is Engine.order of each in turn (the Python path is that loop itself):
    including the forced exits a batch's rising price causes, a duplicate inside it, and SP
    orders: one with the SP its buyer's dividends gave, one beyond them."""
    params = Params().with_overrides(
        {"referral_rates": ["0.1", "0.05"], "quota_multiple": "0.5", "level_thresholds": ["1"]}
    )
    batch_engine, one_by_one = Engine(params), Engine(params)
    for engine in (batch_engine, one_by_one):
        engine.apply({"op": "register", "user": "u0"})
        for index in range(1, 30):
            engine.apply({"op": "register", "user": f"u{index}", "referrer": f"u{index - 1}"})
        engine.apply({"op": "register_merchant", "merchant": "m0"})
    orders: list[tuple[str, str, int, str | None]] = [
        (f"o{n}", f"u{n * 7 % 30}", 1_000 + n * 37 % 5_000, None) for n in range(400)
    ]
    orders.insert(200, ("o3", "u1", 500, None))  # a duplicate id: refused, nothing changes
    with kernel_set(COMPILED):
        batch_engine.place_orders(orders[:100])
        batch_engine.apply({"op": "settle_day"})  # dividends: SP to spend
    with kernel_set(None):
        one_by_one.place_orders(orders[:100])
        one_by_one.apply({"op": "settle_day"})
    holder = max(range(30), key=lambda index: batch_engine.book.sp[index])
    sp_fen = batch_engine.book.sp[holder]
    orders.insert(300, ("s1", f"u{holder}", sp_fen, "m0"))  # all of its SP: accepted
    orders.insert(301, ("s2", f"u{holder}", 1, "m0"))  # none left: refused
    with kernel_set(COMPILED):
        accepted = batch_engine.place_orders(orders[100:])
    with kernel_set(None):
        expected = []
        for order_id, user_id, amount_fen, merchant_id in orders[100:]:
            try:
                pay = "cash" if merchant_id is None else "stable"
                one_by_one.order(order_id, user_id, Fen(amount_fen), pay, merchant_id)
                expected.append(True)
            except Rejected:
                expected.append(False)
    assert accepted == expected and accepted.count(False) == 2 and sp_fen > 0
    assert batch_engine.merchants["m0"].sp == sp_fen
    assert batch_engine.exits > 0  # the quota of half the amount is reached as the price rises
    assert state_of(batch_engine) == state_of(one_by_one)


@needs_kernel
def test_a_day_that_caps_a_holder_is_left_to_python() -> None:
    """holding_fund answers None, changing nothing, when a payment reaches a quota (the
    water-filling of settlement.py decides); else it pays as _fast_payments pays."""
    holding_fund = cast(Any, COMPILED).holding_fund  # plain int lists (the book's are typed)
    ep, quota = [300, 100, 0, 50], [10, 1_000, 5, 0]
    sp, dividends = [0, 0, 0, 0], [1, 2, 3, 4]
    assert holding_fund(ep, quota, sp, dividends, 400) is None  # 300 of 400 > 10
    unchanged = ([300, 100, 0, 50], [10, 1_000, 5, 0], [0, 0, 0, 0], [1, 2, 3, 4])
    assert (ep, quota, sp, dividends) == unchanged
    quota = [1_000, 1_000, 5, 0]
    assert holding_fund(ep, quota, sp, dividends, 40) == ([30, 10, 0, 0], 400)
    assert (quota, sp, dividends) == ([970, 990, 5, 0], [30, 10, 0, 0], [31, 12, 3, 4])
    assert holding_fund([300, 100], [30, 1_000], [0, 0], [0, 0], 40) is None  # = cap
    assert holding_fund(ep, quota, sp, dividends, 0) is None
    assert holding_fund([2**63], [1], [0], [0], 5) is None  # beyond 63 bits


@needs_kernel
@pytest.mark.parametrize("seed", [1, 2])
def test_a_full_rules_run_is_the_same_with_the_kernel(seed: int) -> None:
    document = {
        "scenario": {"name": "kernel", "days": 40},
        "arrivals": {"kind": "fixed", "rate": 12},
        "orders": {"per_consumer_per_day": 0.8, "value": {"distribution": "lognormal"}},
        "referrals": {"probability": 0.6},
        "params": {"referral_rates": ["0.1", "0.05"], "quota_multiple": "1.5"},
    }
    scenario = scenario_of(document)
    results = []
    for module in (COMPILED, None):
        with kernel_set(module):
            result = run(scenario, np.random.default_rng(seed))
        results.append((result.days, result.orders_total, state_of(result.engine)))
    assert results[0] == results[1]
    assert sum(day.exits for day in results[0][0]) > 0  # the exits are part of what agrees


def test_the_kernel_is_built_under_ci() -> None:
    """CI installs with a C compiler: a kernel that failed to build must not pass unseen (the
    suite would still pass, on the Python path, a third as fast)."""
    if os.environ.get("CI") != "true":
        pytest.skip("only CI must have the compiled kernel")
    assert kernel.KERNEL is not None, "tokenmall.core._kernel was not built"
