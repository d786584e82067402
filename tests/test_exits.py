"""Forced exits (出局, SPEC §5), checked against hand-worked numbers, invariants after every step.

A consumer exits when ep * P >= quota: all their EP are sold by the sell rule (10% fee stays in the
pool), then quota = 0, exited = true, exits += 1, and the next one is looked for at the new price.
Money in fen, EP in units of 1e-8 (EP).
"""

from typing import Any

from tests.helpers import EP, Command, make_engine, run
from tokenmall.core.canonical import canonical_state


def buy(order_id: str, user: str, amount: str = "100.00") -> Command:
    return {"op": "order", "id": order_id, "user": user, "amount": amount}


def register(*users: str) -> list[Command]:
    return [{"op": "register", "user": user} for user in users]


def set_params(**params: Any) -> Command:
    return {"op": "set_params", "params": params}


SETTLE: Command = {"op": "settle_day"}


def test_one_exit() -> None:
    engine = make_engine(quota_multiple="0.35")
    run(engine, *register("alice", "bob"), buy("o1", "alice"))
    # alice: 21 EP, quota 35.00, worth 21 * 30/21 = 30.00 < 35.00.
    assert engine.exits == 0
    run(engine, buy("o2", "bob"))
    # bob 14.7 EP; P = 60/35.7; alice worth 21 * 60/35.7 = 35.29 >= 35.00: she exits.
    # payout = floor(21 * 60/35.7 * 0.9 = 31.7647) = 31.76
    alice, bob = engine.consumers["alice"], engine.consumers["bob"]
    assert engine.exits == 1
    assert (alice.ep, alice.quota, alice.exited, alice.cash_out) == (0, 0, True, 3176)
    assert (engine.pool, engine.supply, engine.burned) == (6000 - 3176, 1_470_000_000, 21 * EP)
    # P = 28.24 / 14.7 = 1.921; bob worth 28.24 < 35.00: he stays.
    assert (bob.ep, bob.quota, bob.exited) == (1_470_000_000, 3500, False)


def test_cascade_each_exit_triggers_the_next() -> None:
    engine = make_engine(quota_multiple="0.357")
    run(engine, *register("a", "b", "c"), buy("o1", "a"))  # a: 21 EP, quota 35.70
    run(engine, set_params(quota_multiple="0.2646"), buy("o2", "b"))  # b: 14.7 EP, quota 26.46
    # P = 60/35.7 = 1.6807: a worth 35.29 < 35.70, b worth 24.71 < 26.46.
    assert engine.exits == 0
    run(engine, set_params(quota_multiple="2"))
    run(engine, buy("o3", "c", "10.00"))
    # c: 2.10 * 35.7/60 = 1.2495 EP; P = 63 / 36.9495 = 1.70503.
    # a worth 21 * 1.70503 = 35.81 >= 35.70 (b worth 25.06 < 26.46: b is not due yet).
    # a exits: payout floor(21 * 63/36.9495 * 0.9 = 32.2250) = 32.22; pool 30.78, supply 15.9495.
    # P = 30.78 / 15.9495 = 1.92984: b worth 14.7 * 1.92984 = 28.37 >= 26.46: b exits.
    # b: payout floor(14.7 * 30.78/15.9495 * 0.9 = 25.5318) = 25.53; pool 5.25, supply 1.2495.
    # P = 5.25 / 1.2495 = 4.2017: c worth 5.25 < quota 20.00.
    a, b, c = (engine.consumers[name] for name in "abc")
    assert engine.exits == 2
    assert (a.cash_out, a.quota, a.exited, a.ep) == (3222, 0, True, 0)
    assert (b.cash_out, b.quota, b.exited, b.ep) == (2553, 0, True, 0)
    assert (c.ep, c.quota, c.exited) == (124_950_000, 2000, False)
    assert (engine.pool, engine.supply, engine.burned) == (525, 124_950_000, 3570 * 10**6)


def test_exit_order_is_smallest_quota_per_ep_first() -> None:
    # z buys first (cheaper EP, smaller quota/ep) but has the larger id.
    engine = make_engine(
        quota_multiple="0.35",
        exit_enabled=False,
        dividend_rate="0",
        level_dividend_rate="1",
        dividend_remainder="pool",
    )
    run(engine, *register("z", "a"), buy("o1", "z"), buy("o2", "a"))
    # z: 21 EP, quota 35 (trigger 35/21 = 1.667); a: 14.7 EP, quota 35 (trigger 2.381).
    # settle: F1 = 0; F2 = 200.00, nobody has a level: all of it goes to the pool.
    run(engine, SETTLE)
    assert (engine.pool, engine.exits) == (26000, 0)  # P = 260 / 35.7 = 7.28: both due
    run(engine, set_params(exit_enabled=True))
    # z first: floor(21 * 260/35.7 * 0.9 = 137.647) = 137.64; pool 122.36, supply 14.7.
    # a then: floor(14.7 * 122.36/14.7 * 0.9 = 110.124) = 110.12; pool 12.24.
    # (a first would have paid a floor(14.7 * 260/35.7 * 0.9 = 96.35) = 96.35.)
    z, a = engine.consumers["z"], engine.consumers["a"]
    assert engine.exits == 2
    assert (z.cash_out, a.cash_out) == (13764, 11012)
    assert (engine.pool, engine.supply) == (1224, 0)


def test_tie_on_quota_per_ep_is_broken_by_smallest_id() -> None:
    engine = make_engine(
        quota_multiple="1",
        dividend_rate="0",
        level_dividend_rate="1",
        dividend_remainder="pool",
    )
    run(engine, *register("b", "a"), buy("o1", "b"))  # b: 21 EP, quota 100.00
    run(engine, set_params(quota_multiple="0.7"), buy("o2", "a"))  # a: 14.7 EP, quota 70.00
    # Both trigger at 100/21 = 70/14.7 = 4.7619 exactly. P = 1.68: nobody due.
    assert engine.exits == 0
    # settle: all of F2 = 20.00 goes to the pool: P = 260 / 35.7 = 7.28.
    run(engine, SETTLE)
    # a (smaller id) first: floor(14.7 * 260/35.7 * 0.9 = 96.3529) = 96.35; pool 163.65.
    # b then: floor(21 * 163.65/21 * 0.9 = 147.285) = 147.28; pool 16.37.
    # (b first would have been paid floor(21 * 260/35.7 * 0.9) = 137.64.)
    a, b = engine.consumers["a"], engine.consumers["b"]
    assert engine.exits == 2
    assert (a.cash_out, b.cash_out) == (9635, 14728)
    assert (engine.pool, engine.supply, engine.burned) == (1637, 0, 3570 * 10**6)
    assert a.exited and b.exited


def test_tie_at_quota_zero_is_broken_by_smallest_id() -> None:
    engine = make_engine(quota_multiple="0", exit_enabled=False)
    run(engine, *register("b", "a"), buy("o1", "b"), buy("o2", "a"))
    # b: 21 EP, a: 14.7 EP, both quota 0: quota / ep = 0 for both.
    run(engine, set_params(exit_enabled=True))
    # a first: floor(14.7 * 60/35.7 * 0.9 = 22.235) = 22.23; pool 37.77, supply 21.
    # b then: floor(21 * 37.77/21 * 0.9 = 33.993) = 33.99; pool 3.78.
    a, b = engine.consumers["a"], engine.consumers["b"]
    assert (a.cash_out, b.cash_out) == (2223, 3399)
    assert (engine.pool, engine.exits) == (378, 2)


def test_exit_after_a_capped_dividend() -> None:
    engine = make_engine(quota_multiple="0.5", dividend_rate="1", level_dividend_rate="0")
    run(engine, *register("alice", "bob"), buy("o1", "alice"))  # alice: 21 EP, quota 50.00
    run(engine, set_params(quota_multiple="2"), buy("o2", "bob"))  # bob: 14.7 EP, quota 200.00
    # P = 60/35.7: alice worth 35.29 < 50.00.
    assert engine.exits == 0
    run(engine, SETTLE)
    # F1 = 200.00. Round 1: alice 200 * 21/35.7 = 117.65 >= 50.00: capped at 50.00;
    # bob 82.35 < 200. Round 2: bob takes 150.00 (< 200). Nothing left over.
    # alice now holds 21 EP with quota 0: forced out at P = 60/35.7:
    # payout floor(21 * 60/35.7 * 0.9 = 31.7647) = 31.76.
    alice, bob = engine.consumers["alice"], engine.consumers["bob"]
    assert (alice.dividends, bob.dividends, engine.carry) == (5000, 15000, 0)
    assert (alice.ep, alice.quota, alice.exited, alice.cash_out) == (0, 0, True, 3176)
    assert alice.sp == 5000
    assert engine.exits == 1
    # bob: quota 50.00, worth 14.7 * 28.24/14.7 = 28.24: stays.
    assert (bob.quota, bob.exited, bob.ep) == (5000, False, 1_470_000_000)
    assert engine.pool == 2824


def test_exit_disabled_then_enabled_by_set_params() -> None:
    engine = make_engine(quota_multiple="0.35", exit_enabled=False)
    run(engine, *register("alice", "bob"), buy("o1", "alice"), buy("o2", "bob"))
    # alice is due (35.29 >= 35.00) but exits are off.
    alice = engine.consumers["alice"]
    assert (engine.exits, alice.ep, alice.exited) == (0, 21 * EP, False)
    run(engine, {"op": "register", "user": "carol"})  # any command: still no exit
    assert engine.exits == 0
    run(engine, set_params(exit_enabled=True))
    # The set_params command itself triggers the exit (decisions 24): payout 31.76 as above.
    assert (engine.exits, alice.ep, alice.exited, alice.cash_out) == (1, 0, True, 3176)
    assert engine.pool == 2824


def test_reentry_after_exit() -> None:
    engine = make_engine(quota_multiple="0.35")
    run(engine, *register("alice", "bob"), buy("o1", "alice"), buy("o2", "bob"))
    alice = engine.consumers["alice"]
    assert alice.exited
    run(engine, buy("o3", "alice"))
    # P = 28.24 / 14.7: alice gets floor(21 * 14.7 / 28.24 = 10.931303116) = 10.93130311 EP,
    # quota 35.00, exited false. P = 58.24 / 25.63130311 = 2.2722: she is worth 24.84 < 35.00,
    # bob 14.7 * 2.2722 = 33.40 < 35.00.
    assert (alice.ep, alice.quota, alice.exited) == (1_093_130_311, 3500, False)
    assert alice.cash_out == 3176
    assert engine.exits == 1
    assert (engine.pool, engine.supply) == (5824, 1_470_000_000 + 1_093_130_311)


def test_merchants_are_never_force_exited() -> None:
    engine = make_engine(quota_multiple="2")
    run(
        engine,
        *register("alice"),
        {"op": "register_merchant", "merchant": "shop"},
        buy("o1", "alice"),
        {"op": "convert", "user": "alice", "points": "7"},  # 10.00 SP
        {
            "op": "order",
            "id": "s1",
            "user": "alice",
            "amount": "10.00",
            "pay": "stable",
            "merchant": "shop",
        },
        {"op": "merchant_redeem", "merchant": "shop", "amount": "10.00"},  # 7 EP
    )
    assert engine.merchants["shop"].ep == 7 * EP
    assert engine.exits == 0


def test_price_stays_at_the_price_an_exit_sold_the_whole_supply_at() -> None:
    engine = make_engine(quota_multiple="0.1")
    run(engine, *register("alice"), buy("o1", "alice"))
    # The order makes P = 30/21 (it was 1 before); alice's 21 EP are worth 30.00 >= quota 10.00,
    # so she is sold out at once: payout floor(21 * 30/21 * 0.9) = 27.00, supply 0.
    # decisions 25: the last defined price is 30/21, the price the exit sold at.
    alice = engine.consumers["alice"]
    assert (alice.ep, alice.exited, alice.cash_out, engine.exits) == (0, True, 2700, 1)
    assert (engine.pool, engine.supply) == (300, 0)
    assert canonical_state(engine, [])["price"] == "1.42857143"  # 30 / 21
    run(engine, *register("bob"), buy("o2", "bob"))
    # bob buys at 30/21: 21 * 21/30 = 14.7 EP, quota 10.00; P = 33 / 14.7 = 2.2449, worth 33.00:
    # he is sold out too, payout floor(14.7 * 33/14.7 * 0.9 = 29.70); the price stays 33/14.7.
    bob = engine.consumers["bob"]
    assert (bob.ep, bob.exited, bob.cash_out, engine.exits) == (0, True, 2970, 2)
    assert (engine.pool, engine.supply) == (330, 0)
    assert canonical_state(engine, [])["price"] == "2.24489796"  # 33 / 14.7
