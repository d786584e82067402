"""Water-filling (SPEC §4): split a fund pro rata to weights, never paying anyone past their cap.

SPEC describes rounds: share = remaining × w / Σw over the active accounts; everyone whose share
reaches their cap is paid the cap and dropped; repeat; when nobody reaches a cap, pay floor(share).

Dropping an account whose cap/weight ≤ remaining/Σw can only raise remaining/Σw, so the accounts
capped in the end are exactly a prefix of the accounts sorted by cap/weight. We therefore sort once
(O(n log n)) and walk the prefix, instead of SPEC's O(n) passes per round. The sort uses float keys
for speed; every decision is an exact integer comparison, and the final pass re-checks each
uncapped account exactly, so a float tie broken the wrong way can never change the result.
"""

from collections.abc import Sequence


def water_fill(fund: int, weights: Sequence[int], caps: Sequence[int]) -> list[int]:
    """Payments per account (same order as `weights`); their sum is ≤ fund.

    Every weight and cap must be > 0.
    """
    count = len(weights)
    paid = [0] * count
    if fund <= 0 or count == 0:
        return paid
    remaining = fund
    weight_total = sum(weights)
    capped = [False] * count
    order = sorted(range(count), key=lambda i: caps[i] / weights[i])
    while True:
        for i in order:
            if capped[i]:
                continue
            # share_i >= cap_i  <=>  remaining * w_i / W >= cap_i, compared exactly.
            if caps[i] * weight_total > remaining * weights[i]:
                break
            paid[i] = caps[i]
            capped[i] = True
            remaining -= caps[i]
            weight_total -= weights[i]
        if weight_total == 0:
            return paid
        late = _late_capped(remaining, weight_total, weights, caps, capped)
        if not late:
            break
        # Only reachable when float keys misordered two nearly equal ratios: cap them and walk on.
        for i in late:
            paid[i] = caps[i]
            capped[i] = True
            remaining -= caps[i]
            weight_total -= weights[i]
    for i in range(count):
        if not capped[i]:
            paid[i] = remaining * weights[i] // weight_total
    return paid


def _late_capped(
    remaining: int,
    weight_total: int,
    weights: Sequence[int],
    caps: Sequence[int],
    capped: list[bool],
) -> list[int]:
    """Uncapped accounts whose exact share reaches their cap."""
    return [
        i
        for i in range(len(weights))
        if not capped[i] and caps[i] * weight_total <= remaining * weights[i]
    ]
