"""One or more tests per command of SPEC §4, with every expected value worked out by hand.

Units: money and SP are int fen (1 CNY = 100 fen), EP int units (1 EP = 10**8 units). Comments show
the arithmetic in CNY and EP; P is the price before the command. With default parameters the first
cash order of 100.00 puts c = 30.00 into the pool and grants 30.00 * 0.7 / 1 = 21 EP.
"""

from typing import Any

import pytest

from tests.helpers import EP, Command, make_engine, run
from tokenmall.core.canonical import canonical_json, canonical_state
from tokenmall.core.engine import Engine
from tokenmall.core.errors import ErrorCode


def register(user: str, referrer: str | None = None) -> Command:
    command: Command = {"op": "register", "user": user}
    if referrer is not None:
        command["referrer"] = referrer
    return command


def cash(order_id: str, user: str, amount: str) -> Command:
    return {"op": "order", "id": order_id, "user": user, "amount": amount, "pay": "cash"}


def stable(order_id: str, user: str, amount: str, merchant: str) -> Command:
    return {
        "op": "order",
        "id": order_id,
        "user": user,
        "amount": amount,
        "pay": "stable",
        "merchant": merchant,
    }


SETTLE: Command = {"op": "settle_day"}


def state(engine: Engine) -> dict[str, Any]:
    return canonical_state(engine, [])


# -- register / register_merchant ---------------------------------------------------------------


def test_register_creates_an_empty_consumer() -> None:
    engine = Engine()
    run(engine, register("alice"), register("bob", "alice"))
    assert engine.consumers["alice"].referrer is None
    assert engine.consumers["bob"].referrer == "alice"
    assert state(engine)["users"]["bob"] == {
        "ep": "0.00000000",
        "sp": "0.00",
        "locked_sp": "0.00",
        "quota": "0.00",
        "level": 0,
        "cash_out": "0.00",
        "goods": "0.00",
        "dividends": "0.00",
        "exited": False,
        "cash": "0.00",
        "withdrawing": "0.00",
        "withdrawn": "0.00",
        "frozen": False,
    }
    # Nothing circulates yet: the price is initial_price.
    assert state(engine)["price"] == "1.00000000"


def test_register_ignores_unknown_extra_fields() -> None:
    engine = Engine()
    run(engine, {"op": "register", "user": "alice", "colour": "blue"})
    assert "alice" in engine.consumers


def test_register_merchant_creates_an_empty_merchant() -> None:
    engine = Engine()
    run(engine, {"op": "register_merchant", "merchant": "shop"})
    assert state(engine)["merchants"] == {
        "shop": {
            "ep": "0.00000000",
            "sp": "0.00",
            "cash_out": "0.00",
            "cash": "0.00",
            "withdrawing": "0.00",
            "withdrawn": "0.00",
            "frozen": False,
        }
    }
    assert state(engine)["users"] == {}


# -- order (cash) -------------------------------------------------------------------------------


def test_first_cash_order_matches_the_seeds() -> None:
    engine = Engine()
    run(engine, register("alice"), cash("o1", "alice", "100.00"))
    alice = engine.consumers["alice"]
    # c = floor(100.00 * 0.30) = 30.00; EP = floor(30.00 * 0.70 / 1) = 21; quota = 100 * 2 = 200.
    assert engine.pool == 3000
    assert engine.supply == engine.issued == 21 * EP
    assert alice.ep == 21 * EP
    assert alice.quota == 20000
    assert alice.exited is False
    assert (engine.day_sales, engine.sales, engine.contributions) == (10000, 10000, 3000)
    # P = 30 / 21 = 1.428571428... -> 1.42857143 (half-up, 8 places).
    assert state(engine)["price"] == "1.42857143"


def test_seed_prices_of_the_first_four_orders() -> None:
    engine = Engine()
    prices = []
    for number in range(1, 5):
        run(engine, register(f"c{number}"), cash(f"o{number}", f"c{number}", "100.00"))
        prices.append(state(engine)["price"])
    # Order 2: 21 / (30/21) = 14.7 EP, P = 60 / 35.7 = 1.68067227.
    # Order 3: 21 / (60/35.7) = 12.495 EP, P = 90 / 48.195 = 1.86741363.
    # Order 4: 21 / (90/48.195) = 11.2455 EP, P = 120 / 59.4405 = 2.018825548...
    assert prices == ["1.42857143", "1.68067227", "1.86741363", "2.01882555"]
    assert engine.consumers["c2"].ep == 1_470_000_000
    assert engine.consumers["c3"].ep == 1_249_500_000
    assert engine.consumers["c4"].ep == 1_124_550_000


def test_cash_order_rounds_contribution_ep_and_quota_down() -> None:
    engine = make_engine(quota_multiple="0.333")
    run(engine, register("alice"), cash("o1", "alice", "33.33"))
    # c = floor(33.33 * 0.3 = 9.999) = 9.99; EP = 9.99 * 0.7 / 1 = 6.993 (exact).
    assert engine.pool == 999
    assert engine.consumers["alice"].ep == 699_300_000
    # quota = floor(33.33 * 0.333 = 11.09889) = 11.09.
    assert engine.consumers["alice"].quota == 1109
    assert engine.day_sales == 3333


def test_cash_order_pays_two_referral_levels() -> None:
    engine = make_engine(referral_rates=["0.10", "0.05"])
    run(
        engine,
        register("alice"),
        register("bob", "alice"),
        register("carol", "bob"),
        cash("o1", "alice", "100.00"),
        cash("o2", "bob", "100.00"),
    )
    # o2 at P = 30/21: bob 21 * 21/30 = 14.7 EP, alice (level 1) 3 * 21/30 = 2.1 EP.
    assert engine.consumers["bob"].ep == 1_470_000_000
    assert engine.consumers["alice"].ep == 2_310_000_000
    assert state(engine)["price"] == "1.58730159"  # 60 / 37.8
    run(engine, cash("o3", "carol", "100.00"))
    # o3 at P = 60/37.8: carol 21 * 37.8/60 = 13.23, bob 3 * 37.8/60 = 1.89,
    # alice (level 2) 1.5 * 37.8/60 = 0.945 EP.
    assert engine.consumers["carol"].ep == 1_323_000_000
    assert engine.consumers["bob"].ep == 1_470_000_000 + 189_000_000
    assert engine.consumers["alice"].ep == 2_310_000_000 + 94_500_000
    # supply = 37.8 + 13.23 + 1.89 + 0.945 = 53.865
    assert engine.supply == 5_386_500_000
    assert engine.pool == 9000


def test_inactive_referrer_gets_nothing_but_the_second_level_still_does() -> None:
    engine = make_engine(referral_rates=["0.10", "0.05"])
    run(
        engine,
        register("alice"),
        register("bob", "alice"),
        register("carol", "bob"),
        cash("o1", "alice", "100.00"),
        cash("o2", "carol", "100.00"),
    )
    # bob never bought: quota 0, not active, no grant. alice: 1.5 * 21/30 = 1.05 EP.
    assert engine.consumers["bob"].ep == 0
    assert engine.consumers["carol"].ep == 1_470_000_000
    assert engine.consumers["alice"].ep == 21 * EP + 105_000_000
    assert engine.supply == 3_675_000_000  # 21 + 14.7 + 1.05


def test_cash_order_stops_issuing_at_total_issuance_but_still_funds_the_pool() -> None:
    engine = make_engine(total_issuance="25", referral_rates=["0.10"])
    run(
        engine,
        register("alice"),
        register("bob", "alice"),
        register("carol"),
        cash("o1", "alice", "100.00"),
        cash("o2", "bob", "100.00"),
    )
    # bob wants 14.7 but only 25 - 21 = 4 remain; alice's 2.1 referral gets min(2.1, 0) = 0.
    assert engine.consumers["bob"].ep == 4 * EP
    assert engine.consumers["alice"].ep == 21 * EP
    assert engine.consumers["bob"].quota == 20000
    assert state(engine)["unissued"] == "0.00000000"
    run(engine, cash("o3", "carol", "100.00"))
    assert engine.consumers["carol"].ep == 0
    assert engine.consumers["carol"].quota == 20000
    assert (engine.pool, engine.contributions, engine.issued) == (9000, 9000, 25 * EP)
    assert state(engine)["price"] == "3.60000000"  # 90 / 25


def test_cash_order_with_a_merchant_field_ignores_it() -> None:
    engine = Engine()
    command = cash("o1", "alice", "100.00")
    command["merchant"] = "no-such-shop"
    run(engine, register("alice"), command)
    assert engine.consumers["alice"].ep == 21 * EP


def test_pay_defaults_to_cash() -> None:
    engine = Engine()
    run(engine, register("alice"), {"op": "order", "id": "o1", "user": "alice", "amount": "100"})
    assert engine.pool == 3000
    assert engine.consumers["alice"].ep == 21 * EP


# -- order (stable) -----------------------------------------------------------------------------


def test_stable_order_moves_sp_to_the_merchant_and_earns_nothing() -> None:
    engine = Engine()
    run(
        engine,
        register("alice"),
        {"op": "register_merchant", "merchant": "shop"},
        cash("o1", "alice", "100.00"),
        {"op": "convert", "user": "alice", "points": "7"},
    )
    # convert: 7 * 30/21 = 10.00 SP; quota 200 - 10 = 190.
    assert engine.consumers["alice"].sp == 1000
    before = state(engine)
    run(engine, stable("s1", "alice", "4.50", "shop"))
    after = state(engine)
    assert after["users"]["alice"]["sp"] == "5.50"
    assert after["merchants"]["shop"]["sp"] == "4.50"
    assert after["sp_outstanding"] == "10.00"
    # No EP, no quota, no sales, no contribution, pool and price unchanged.
    for key in ("pool", "supply", "issued", "price", "sales", "day_sales", "contributions"):
        assert after[key] == before[key]
    assert after["users"]["alice"]["quota"] == "190.00"
    assert after["users"]["alice"]["ep"] == "14.00000000"
    assert "s1" in engine.orders


# -- sell -----------------------------------------------------------------------------------------


def test_sell_pays_out_less_the_fee_and_consumes_quota() -> None:
    engine = Engine()
    run(engine, register("alice"), cash("o1", "alice", "100.00"))
    run(engine, {"op": "sell", "user": "alice", "points": "10"})
    alice = engine.consumers["alice"]
    # payout = floor(10 * 30/21 * 0.9 = 12.857...) = 12.85
    assert alice.cash_out == 1285
    assert engine.pool == 3000 - 1285
    assert (engine.supply, engine.burned, alice.ep) == (11 * EP, 10 * EP, 11 * EP)
    assert alice.quota == 20000 - 1285
    # P = 17.15 / 11 = 1.5590909... (the fee stayed in the pool, the price rose).
    assert state(engine)["price"] == "1.55909091"


def test_sell_all_of_a_consumer() -> None:
    engine = Engine()
    run(engine, register("alice"), cash("o1", "alice", "100.00"))
    run(engine, {"op": "sell", "user": "alice", "points": "all"})
    alice = engine.consumers["alice"]
    # payout = floor(21 * 30/21 * 0.9) = 27.00; pool 30 - 27 = 3.00.
    assert alice.cash_out == 2700
    assert (alice.ep, engine.supply, engine.burned, engine.pool) == (0, 0, 21 * EP, 300)
    assert alice.quota == 17300
    # Nothing circulates: the last defined price stays.
    assert state(engine)["price"] == "1.42857143"


def _merchant_with_seven_ep() -> Engine:
    engine = Engine()
    run(
        engine,
        register("alice"),
        {"op": "register_merchant", "merchant": "shop"},
        cash("o1", "alice", "100.00"),
        {"op": "convert", "user": "alice", "points": "7"},  # 10.00 SP, treasury 7 EP
        stable("s1", "alice", "10.00", "shop"),
        # qty = floor(10.00 / (30/21)) = 7 EP, all from the treasury.
        {"op": "merchant_redeem", "merchant": "shop", "amount": "10.00"},
    )
    assert engine.merchants["shop"].ep == 7 * EP
    assert engine.treasury == 0
    assert engine.mint_funding == 0
    return engine


def test_sell_by_a_merchant_then_all() -> None:
    engine = _merchant_with_seven_ep()
    run(engine, {"op": "sell", "merchant": "shop", "points": "2"})
    shop = engine.merchants["shop"]
    # payout = floor(2 * 30/21 * 0.9 = 2.5714) = 2.57
    assert shop.cash_out == 257
    assert (engine.pool, engine.supply, shop.ep) == (2743, 19 * EP, 5 * EP)
    run(engine, {"op": "sell", "merchant": "shop", "points": "all"})
    # payout = floor(5 * 27.43/19 * 0.9 = 6.4966) = 6.49
    assert shop.cash_out == 257 + 649
    assert (engine.pool, engine.supply, engine.burned, shop.ep) == (2094, 14 * EP, 7 * EP, 0)
    # The consumer's quota was not touched by the merchant's sales.
    assert engine.consumers["alice"].quota == 19000


# -- redeem / convert ---------------------------------------------------------------------------


def test_redeem_burns_ep_for_goods_and_keeps_the_pool() -> None:
    engine = Engine()
    run(engine, register("alice"), cash("o1", "alice", "100.00"))
    run(engine, {"op": "redeem", "user": "alice", "points": "5"})
    alice = engine.consumers["alice"]
    # value = floor(5 * 30/21 = 7.142857) = 7.14
    assert alice.goods == 714
    assert alice.quota == 20000 - 714
    assert (engine.pool, engine.supply, engine.burned, alice.ep) == (3000, 16 * EP, 5 * EP, 16 * EP)
    assert state(engine)["price"] == "1.87500000"  # 30 / 16


def test_convert_moves_ep_to_the_treasury() -> None:
    engine = Engine()
    run(engine, register("alice"), cash("o1", "alice", "100.00"))
    run(engine, {"op": "convert", "user": "alice", "points": "3"})
    alice = engine.consumers["alice"]
    # sp = floor(3 * 30/21 = 4.2857) = 4.28; EP still circulate (supply unchanged).
    assert alice.sp == 428
    assert engine.sp_outstanding == 428
    assert alice.quota == 20000 - 428
    assert (alice.ep, engine.treasury, engine.supply, engine.burned) == (
        18 * EP,
        3 * EP,
        21 * EP,
        0,
    )
    assert state(engine)["price"] == "1.42857143"


def test_convert_all() -> None:
    engine = Engine()
    run(engine, register("alice"), cash("o1", "alice", "100.00"))
    run(engine, {"op": "convert", "user": "alice", "points": "all"})
    # sp = 21 * 30/21 = 30.00
    assert engine.consumers["alice"].sp == 3000
    assert engine.treasury == 21 * EP
    assert engine.consumers["alice"].ep == 0


# -- merchant_redeem ----------------------------------------------------------------------------


def _shop_with_sp() -> Engine:
    """alice holds 18 EP, the treasury 3 EP, the shop 24.28 SP; pool 30.00, supply 21 EP."""
    engine = Engine()
    run(
        engine,
        register("alice"),
        {"op": "register_merchant", "merchant": "shop"},
        cash("o1", "alice", "100.00"),
        {"op": "convert", "user": "alice", "points": "3"},  # 4.28 SP
        # F1 = 100 * 0.2 = 20.00, all to alice (the only holder); F2 = 10.00 carried.
        SETTLE,
    )
    assert engine.consumers["alice"].sp == 428 + 2000
    assert engine.carry == 1000
    run(engine, stable("s1", "alice", "24.28", "shop"))
    return engine


def test_merchant_redeem_from_the_treasury_only() -> None:
    engine = _shop_with_sp()
    run(engine, {"op": "merchant_redeem", "merchant": "shop", "amount": "2.00"})
    # qty = floor(2.00 / (30/21)) = 1.4 EP, fewer than the treasury's 3: nothing minted.
    shop = engine.merchants["shop"]
    assert shop.ep == 140_000_000
    assert shop.sp == 2428 - 200
    assert engine.treasury == 160_000_000
    assert (engine.supply, engine.issued, engine.pool, engine.mint_funding) == (
        21 * EP,
        21 * EP,
        3000,
        0,
    )
    assert engine.sp_outstanding == 2228


def test_merchant_redeem_mints_the_shortfall_and_funds_it_rounded_up() -> None:
    engine = _shop_with_sp()
    run(engine, {"op": "merchant_redeem", "merchant": "shop", "amount": "24.28"})
    # qty = floor(24.28 * 21/30) = 16.996 EP: 3 from the treasury, 13.996 minted.
    # funding = ceil(13.996 * 30/21 = 19.99428...) = 20.00
    shop = engine.merchants["shop"]
    assert shop.ep == 1_699_600_000
    assert shop.sp == 0
    assert engine.treasury == 0
    assert engine.supply == engine.issued == 21 * EP + 1_399_600_000
    assert engine.mint_funding == 2000
    assert engine.pool == 5000
    assert engine.sp_outstanding == 0
    # P = 50 / 34.996 = 1.42873471 >= 30/21: the price did not fall.
    assert state(engine)["price"] == "1.42873471"


# -- refund ---------------------------------------------------------------------------------------


def test_refund_reclaims_referral_grants_and_withdraws_what_keeps_the_price() -> None:
    engine = make_engine(referral_rates=["0.10", "0.05"])
    run(
        engine,
        register("alice"),
        register("bob", "alice"),
        cash("o1", "alice", "100.00"),
        cash("o2", "bob", "100.00"),
        {"op": "refund", "order": "o2"},
    )
    # P = 60/37.8; reclaim bob 14.7 and alice 2.1 -> supply 21.
    # w = min(30.00, 60.00 - ceil(60/37.8 * 21 = 33.333...)) = min(30.00, 60.00 - 33.34) = 26.66
    assert engine.supply == engine.issued == 21 * EP
    assert engine.consumers["alice"].ep == 21 * EP
    assert engine.consumers["bob"].ep == 0
    assert engine.pool == 3334
    assert engine.consumers["bob"].quota == 0
    assert engine.consumers["alice"].quota == 20000
    assert (engine.day_sales, engine.refunds, engine.sales) == (10000, 10000, 20000)
    assert state(engine)["price"] == "1.58761905"  # 33.34 / 21 >= 1.58730159


def test_refund_takes_from_a_referrer_only_what_they_still_hold() -> None:
    engine = make_engine(referral_rates=["0.10", "0.05"])
    run(
        engine,
        register("alice"),
        register("bob", "alice"),
        register("carol"),
        cash("o1", "alice", "100.00"),
        cash("o2", "bob", "100.00"),  # bob 14.7, alice +2.1
        cash("o3", "carol", "100.00"),  # carol 21 * 37.8/60 = 13.23; supply 51.03, pool 90
        # payout = floor(22 * 90/51.03 * 0.9 = 34.9206) = 34.92; alice keeps 1.1 EP.
        {"op": "sell", "user": "alice", "points": "22"},
    )
    assert engine.pool == 5508
    assert engine.consumers["alice"].ep == 110_000_000
    run(engine, {"op": "refund", "order": "o2"})
    # reclaim bob 14.7 and alice min(2.1, 1.1) = 1.1: supply 29.03 - 15.8 = 13.23.
    # w = min(30.00, 55.08 - ceil(55.08 * 13.23 / 29.03 = 25.1019...)) = 55.08 - 25.11 = 29.97
    assert engine.consumers["alice"].ep == 0
    assert engine.consumers["bob"].ep == 0
    assert engine.supply == 1_323_000_000
    assert engine.issued == 1_323_000_000 + 22 * EP  # supply + burned
    assert engine.pool == 2511
    assert engine.consumers["bob"].quota == 0
    assert engine.consumers["alice"].quota == 20000 - 3492  # the referrer's quota is untouched
    assert (engine.day_sales, engine.refunds) == (20000, 10000)
    code = engine.try_apply({"op": "refund", "order": "o2"})
    assert code == ErrorCode.NOT_REFUNDABLE


def test_refund_withdraws_the_whole_contribution_when_the_price_allows() -> None:
    engine = make_engine(buyer_share="1")
    run(
        engine,
        register("alice"),
        register("bob"),
        cash("o1", "alice", "100.00"),  # 30 EP at P = 1
        cash("o2", "bob", "100.00"),  # 30 EP at P = 30/30 = 1
        {"op": "refund", "order": "o2"},
    )
    # supply 30; w = min(30.00, 60.00 - ceil(1 * 30)) = 30.00
    assert engine.pool == 3000
    assert engine.supply == 30 * EP
    assert state(engine)["price"] == "1.00000000"


def test_refund_of_the_only_order_keeps_the_last_price() -> None:
    engine = Engine()
    run(engine, register("alice"), cash("o1", "alice", "100.00"), {"op": "refund", "order": "o1"})
    # supply after the reclaim is 0, so ceil(P * 0) = 0 and w = min(30.00, 30.00) = 30.00.
    assert (engine.pool, engine.supply, engine.issued) == (0, 0, 0)
    assert engine.consumers["alice"].quota == 0
    assert state(engine)["price"] == "1.42857143"


# -- grant_stable ---------------------------------------------------------------------------------


def test_grant_stable_vests_over_settlements_with_the_remainder_last() -> None:
    engine = Engine()
    run(
        engine,
        register("alice"),
        {"op": "grant_stable", "user": "alice", "amount": "10.00", "days": 3},
    )
    alice = engine.consumers["alice"]
    assert (alice.locked_sp, alice.sp, engine.sp_outstanding) == (1000, 0, 0)
    # floor(10.00 / 3) = 3.33 per settlement, the last one takes 10.00 - 6.66 = 3.34.
    seen = []
    for _ in range(4):
        run(engine, SETTLE)
        seen.append((alice.locked_sp, alice.sp, engine.sp_outstanding))
    assert seen == [(667, 333, 333), (334, 666, 666), (0, 1000, 1000), (0, 1000, 1000)]
    assert engine.dividends_paid == 0


def test_grant_stable_smaller_than_days_releases_everything_on_the_last_day() -> None:
    engine = Engine()
    run(
        engine,
        register("alice"),
        {"op": "grant_stable", "user": "alice", "amount": "0.02", "days": 3},
    )
    alice = engine.consumers["alice"]
    seen = []
    for _ in range(3):
        run(engine, SETTLE)
        seen.append((alice.locked_sp, alice.sp))
    # floor(0.02 / 3) = 0.00, 0.00, then the remainder 0.02.
    assert seen == [(2, 0), (2, 0), (0, 2)]


def test_overlapping_grants_vest_independently() -> None:
    engine = Engine()
    run(
        engine,
        register("alice"),
        {"op": "grant_stable", "user": "alice", "amount": "1.00", "days": 2},
    )
    run(engine, SETTLE)  # releases 0.50
    run(engine, {"op": "grant_stable", "user": "alice", "amount": "0.07", "days": 2})
    alice = engine.consumers["alice"]
    assert (alice.locked_sp, alice.sp) == (50 + 7, 50)
    run(engine, SETTLE)  # first grant: last 0.50; second: floor(0.07 / 2) = 0.03
    assert (alice.locked_sp, alice.sp) == (4, 50 + 50 + 3)
    run(engine, SETTLE)  # second grant: remainder 0.04
    assert (alice.locked_sp, alice.sp, engine.sp_outstanding) == (0, 107, 107)


# -- set_params -----------------------------------------------------------------------------------


def test_set_params_applies_from_the_next_command() -> None:
    engine = Engine()
    run(engine, register("alice"), register("bob"), cash("o1", "alice", "100.00"))
    run(engine, {"op": "set_params", "params": {"contribution_rate": "0.5", "buyer_share": "1"}})
    # Nothing already done changes.
    assert (engine.pool, engine.consumers["alice"].ep) == (3000, 21 * EP)
    run(engine, cash("o2", "bob", "100.00"))
    # c = 100 * 0.5 = 50.00; EP = 50.00 * 1 / (30/21) = 35.
    assert engine.consumers["bob"].ep == 35 * EP
    assert engine.pool == 8000


def test_set_params_empty_object_changes_nothing() -> None:
    engine = Engine()
    run(engine, register("alice"), cash("o1", "alice", "100.00"))
    before = canonical_json(state(engine))
    params_before = engine.params
    run(engine, {"op": "set_params", "params": {}})
    assert canonical_json(state(engine)) == before
    assert engine.params == params_before


def test_set_params_level_thresholds_recomputes_levels_at_once() -> None:
    engine = Engine()
    run(engine, register("alice"), cash("o1", "alice", "100.00"))
    assert engine.consumers["alice"].level == 0
    run(engine, {"op": "set_params", "params": {"level_thresholds": ["10", "20", "30"]}})
    assert engine.consumers["alice"].level == 2  # 10 <= 21 and 20 <= 21
    # Levels never fall.
    run(engine, {"op": "set_params", "params": {"level_thresholds": ["100"]}})
    assert engine.consumers["alice"].level == 2


def test_set_params_raises_total_issuance_after_the_cap() -> None:
    engine = make_engine(total_issuance="21")
    run(engine, register("alice"), register("bob"), cash("o1", "alice", "100.00"))
    run(engine, cash("o2", "bob", "100.00"))
    assert engine.consumers["bob"].ep == 0
    run(engine, {"op": "set_params", "params": {"total_issuance": "1000"}})
    run(engine, register("carol"), cash("o3", "carol", "100.00"))
    # P = 60 / 21; carol: 21 * 21/60 = 7.35 EP.
    assert engine.consumers["carol"].ep == 735_000_000


# -- settle_day -----------------------------------------------------------------------------------


def _two_holders(**overrides: Any) -> Engine:
    """alice 21 EP, bob 14.7 EP, quota 200 each, day_sales 200.00, pool 60.00."""
    engine = make_engine(**overrides)
    run(
        engine,
        register("alice"),
        register("bob"),
        cash("o1", "alice", "100.00"),
        cash("o2", "bob", "100.00"),
    )
    return engine


def test_settle_day_carry_mode_keeps_dust_and_the_empty_level_fund() -> None:
    engine = _two_holders()
    run(engine, SETTLE)
    alice, bob = engine.consumers["alice"], engine.consumers["bob"]
    # F1 = 200 * 0.2 = 40.00: alice 40 * 21/35.7 = 23.529 -> 23.52, bob 40 * 14.7/35.7 -> 16.47.
    # F2 = 20.00, nobody has a level. leftover = 40.00 + 20.00 - 39.99 = 20.01.
    assert (alice.sp, bob.sp) == (2352, 1647)
    assert (alice.dividends, bob.dividends) == (2352, 1647)
    assert (alice.quota, bob.quota) == (20000 - 2352, 20000 - 1647)
    assert engine.carry == 2001
    assert (engine.dividends_paid, engine.sp_outstanding) == (3999, 3999)
    assert (engine.day, engine.day_sales, engine.pool) == (1, 0, 6000)
    # Next day, no sales: F1 = 0 + 20.01: alice 20.01 * 21/35.7 = 11.77, bob 8.2394 -> 8.23.
    run(engine, SETTLE)
    assert (alice.sp, bob.sp) == (2352 + 1177, 1647 + 823)
    assert engine.carry == 1
    assert engine.day == 2


def test_settle_day_pool_mode_adds_the_leftover_to_the_pool() -> None:
    engine = _two_holders(dividend_remainder="pool")
    run(engine, SETTLE)
    assert engine.carry == 0
    assert engine.pool == 6000 + 2001
    assert engine.dividends_paid == 3999
    assert state(engine)["price"] == "2.24117647"  # 80.01 / 35.7


def test_settle_day_platform_mode_returns_the_leftover() -> None:
    engine = _two_holders(dividend_remainder="platform")
    run(engine, SETTLE)
    assert (engine.carry, engine.pool, engine.dividends_paid) == (0, 6000, 3999)


def test_settle_day_switching_from_carry_to_platform() -> None:
    engine = _two_holders()
    run(engine, SETTLE)
    assert engine.carry == 2001
    run(engine, {"op": "set_params", "params": {"dividend_remainder": "platform"}})
    run(engine, SETTLE)
    # The carried 20.01 is paid as F1 (20.00 as above), the 0.01 of dust is returned.
    assert engine.carry == 0
    assert engine.dividends_paid == 3999 + 2000
    assert engine.pool == 6000


def test_settle_day_level_dividends() -> None:
    engine = _two_holders(level_thresholds=["10", "20"])
    alice, bob = engine.consumers["alice"], engine.consumers["bob"]
    assert (alice.level, bob.level) == (2, 1)
    run(engine, SETTLE)
    # F1 as before: 23.52 and 16.47. F2 = 20.00, L = 2, part = 10.00:
    # level 1 (alice, bob) 5.00 each; level 2 (alice) 10.00. leftover = 60.00 - 59.99 = 0.01.
    assert alice.sp == 2352 + 500 + 1000
    assert bob.sp == 1647 + 500
    assert engine.carry == 1
    assert engine.dividends_paid == 5999


def test_settle_day_empty_level_and_part_dust_are_left_over() -> None:
    engine = _two_holders(level_thresholds=["10", "20", "30"])
    run(engine, SETTLE)
    # part = floor(20.00 / 3) = 6.66: level 1 3.33 each, level 2 alice 6.66, level 3 nobody.
    alice, bob = engine.consumers["alice"], engine.consumers["bob"]
    assert alice.sp == 2352 + 333 + 666
    assert bob.sp == 1647 + 333
    # leftover = 40.00 + 20.00 - 39.99 - 13.32 = 6.69
    assert engine.carry == 669


def test_settle_day_level_fund_needs_quota_but_not_ep() -> None:
    engine = make_engine(level_thresholds=["10", "20"])
    run(
        engine,
        register("alice"),
        register("bob"),
        cash("o1", "alice", "100.00"),  # level 2
        # payout 27.00: quota 200 - 27 = 173, no EP left, level stays 2.
        {"op": "sell", "user": "alice", "points": "all"},
        # supply 0, last P = 30/21: bob 21 * 21/30 = 14.7 EP (level 1); pool 3 + 30 = 33.00.
        cash("o2", "bob", "100.00"),
    )
    alice, bob = engine.consumers["alice"], engine.consumers["bob"]
    assert (alice.level, alice.ep, bob.level, bob.ep) == (2, 0, 1, 1_470_000_000)
    run(engine, SETTLE)
    # F1 = 40.00 to bob alone (alice holds no EP); part = 10.00:
    # level 1 (alice, bob) 5.00 each; level 2 alice 10.00.
    assert alice.sp == 1500
    assert bob.sp == 4000 + 500
    assert engine.carry == 0


def test_settle_day_with_no_consumers_carries_everything() -> None:
    engine = Engine()
    run(engine, SETTLE, SETTLE)
    assert (engine.day, engine.carry, engine.dividends_paid) == (2, 0, 0)


@pytest.mark.parametrize(
    ("mode", "carry", "pool"),
    [("carry", 2001, 6000), ("pool", 0, 8001), ("platform", 0, 6000)],
)
def test_settle_day_remainder_modes_table(mode: str, carry: int, pool: int) -> None:
    engine = _two_holders(dividend_remainder=mode)
    run(engine, SETTLE)
    assert (engine.carry, engine.pool) == (carry, pool)


def test_settle_day_level_fund_respects_quotas_reduced_so_far() -> None:
    engine = make_engine(
        quota_multiple="0.5", level_thresholds=["10", "20"], level_dividend_rate="1"
    )
    run(engine, register("alice"), register("bob"), cash("o1", "alice", "100.00"))
    # alice: 21 EP (level 2), quota 50.00. bob: quota 200.00, 14.7 EP (level 1).
    run(
        engine, {"op": "set_params", "params": {"quota_multiple": "2"}}, cash("o2", "bob", "100.00")
    )
    run(engine, SETTLE)
    alice, bob = engine.consumers["alice"], engine.consumers["bob"]
    # F1 = 40.00: alice 23.52 (quota left 26.48), bob 16.47.
    # F2 = 200.00, part = 100.00. Level 1: 50.00 each, alice capped at 26.48, bob takes
    # 100.00 - 26.48 = 73.52. Level 2: alice has no quota left: nobody eligible.
    # leftover = 40.00 + 200.00 - 39.99 - 100.00 = 100.01.
    assert alice.dividends == 2352 + 2648
    assert bob.dividends == 1647 + 7352
    assert engine.carry == 10001
    # alice holds 21 EP with quota 0: forced out, floor(21 * 60/35.7 * 0.9 = 31.76).
    assert (alice.ep, alice.quota, alice.exited, alice.cash_out) == (0, 0, True, 3176)
    assert bob.quota == 20000 - 1647 - 7352


def test_refund_of_an_order_that_granted_nothing_withdraws_nothing() -> None:
    engine = make_engine(total_issuance="21")
    run(
        engine,
        register("alice"),
        register("bob"),
        cash("o1", "alice", "100.00"),
        cash("o2", "bob", "100.00"),  # no EP left to issue: bob gets 0
        {"op": "refund", "order": "o2"},
    )
    # Nothing reclaimed, supply 21: w = min(30.00, 60.00 - ceil(60/21 * 21)) = 0.
    assert engine.pool == 6000
    assert engine.consumers["bob"].quota == 0
    assert (engine.day_sales, engine.refunds) == (10000, 10000)


def test_sell_and_redeem_never_drive_quota_below_zero() -> None:
    engine = make_engine(quota_multiple="0.1", exit_enabled=False)
    run(engine, register("alice"), cash("o1", "alice", "100.00"))  # quota 10.00, 21 EP
    run(engine, {"op": "redeem", "user": "alice", "points": "1"})
    # value = floor(30/21) = 1.42; quota 10.00 - 1.42 = 8.58.
    assert engine.consumers["alice"].quota == 858
    run(engine, {"op": "sell", "user": "alice", "points": "all"})
    # payout = floor(20 * 30/20 * 0.9) = 27.00 > 8.58: quota 0.
    assert engine.consumers["alice"].cash_out == 2700
    assert engine.consumers["alice"].quota == 0
