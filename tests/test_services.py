"""The services behind the API, on their own, with their clocks turned by hand: payment codes,
rate limits and token durations."""

from datetime import UTC, datetime, timedelta

import pytest

from tokenmall.core.units import Fen
from tokenmall.services import payment_codes
from tokenmall.services.payment_codes import (
    LIVE_PER_CONSUMER_MAX,
    CodeRefused,
    PaymentCodes,
    TooManyCodes,
)
from tokenmall.services.rate_limit import BURST_S, RateLimiter
from tokenmall.services.tokens import TokenError, parse_duration


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def codes_with_clock() -> tuple[PaymentCodes, Clock]:
    clock = Clock()
    wall = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    return PaymentCodes(monotonic=clock, wall_clock=lambda: wall), clock


def test_a_code_pays_once_for_its_consumer_until_it_expires() -> None:
    codes, clock = codes_with_clock()
    issued = codes.issue("alice", "tk_alice", 60, max_fen=Fen(500))
    assert issued.expires_at == "2026-11-30T12:01:00.000000Z"
    with pytest.raises(CodeRefused, match="limit"):
        codes.spend(issued.code, "tk_shop", None, 501)  # over the cap: refused, not spent
    consent = codes.spend(issued.code, "tk_shop", "k1", 500)
    assert (consent.user, consent.issued_by) == ("alice", "tk_alice")
    assert consent.code.startswith("pc_") and issued.code not in consent.code
    # the same request again gets the same consent (the ledger answers it as a replay)
    assert codes.spend(issued.code, "tk_shop", "k1", 500) == consent
    for token, key in (("tk_shop", "k2"), ("tk_shop", None), ("tk_other", "k1")):
        with pytest.raises(CodeRefused, match="used"):
            codes.spend(issued.code, token, key, 100)
    late = codes.issue("alice", "tk_alice", 60, None)
    clock.now_s += 60
    with pytest.raises(CodeRefused, match="expired"):
        codes.spend(late.code, "tk_shop", None, 1)
    with pytest.raises(CodeRefused, match="unknown"):
        codes.spend("123456789012345678", "tk_shop", None, 1)


def test_a_code_not_committed_can_be_used_again_and_only_by_its_spender() -> None:
    codes, _ = codes_with_clock()
    issued = codes.issue("alice", "tk_alice", 60, None)
    codes.spend(issued.code, "tk_shop", "k1", 100)
    codes.unspend(issued.code, "tk_other", "k1")  # not theirs to give back
    with pytest.raises(CodeRefused, match="used"):
        codes.spend(issued.code, "tk_other", "k9", 100)
    codes.unspend(issued.code, "tk_shop", "k1")
    assert codes.spend(issued.code, "tk_other", "k9", 100).user == "alice"


def test_a_consumer_holds_a_few_live_codes_and_the_server_a_bounded_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codes, clock = codes_with_clock()
    issued = [codes.issue("alice", "tk_alice", 60, None) for _ in range(LIVE_PER_CONSUMER_MAX + 1)]
    with pytest.raises(CodeRefused):  # the oldest was voided by the newest
        codes.spend(issued[0].code, "tk_shop", None, 1)
    for code in issued[1:]:
        assert codes.spend(code.code, "tk_shop", None, 1).user == "alice"
    monkeypatch.setattr(payment_codes, "LIVE_MAX", 10)
    for n in range(10 - LIVE_PER_CONSUMER_MAX):
        codes.issue(f"user{n}", "tk", 30, None)
    with pytest.raises(TooManyCodes):
        codes.issue("bob", "tk_bob", 60, None)
    clock.now_s += 61  # every code expired: forgotten at the next issue
    codes.issue("bob", "tk_bob", 60, None)


def test_a_token_may_burst_then_goes_at_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter({"consumer": 5, "admin": 0}, clock=clock)
    burst = int(5 * BURST_S)
    assert [limiter.wait_s("tk_a", "consumer") for _ in range(burst)] == [0] * burst
    assert limiter.wait_s("tk_a", "consumer") == 1
    assert limiter.wait_s("tk_b", "consumer") == 0  # each token has its own bucket
    assert all(limiter.wait_s("tk_root", "admin") == 0 for _ in range(1000))  # 0: no limit
    clock.now_s += 0.2  # one request's worth at 5 per second
    assert limiter.wait_s("tk_a", "consumer") == 0
    assert limiter.wait_s("tk_a", "consumer") == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("30d", timedelta(days=30))],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "1y", "-5d", "0s", "3651d", "99999999d", "1.5h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(TokenError):
        parse_duration(text)
