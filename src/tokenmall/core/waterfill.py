"""Water-filling (SPEC §4): split a fund pro rata to weights, never paying anyone past their cap.

SPEC describes rounds: share = remaining × w / Σw over the active accounts; everyone whose share
reaches their cap is paid the cap and dropped; repeat; when nobody reaches a cap, pay floor(share).

Two facts make this O(n log n) and usually O(n):
- Caps are integers, so share ≥ cap exactly when floor(share) ≥ cap: the first round's floors
  both pay and test the accounts. When nobody reaches a cap (the common day), we are done.
- Dropping an account whose cap/weight ≤ remaining/Σw never lowers remaining/Σw, so the accounts
  capped in the end are exactly a prefix of the accounts sorted by cap/weight. We sort once and
  walk that prefix with exact integer comparisons, instead of SPEC's full pass per round.
"""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Fill:
    """Payments per account, and the water level: the largest payment per unit of weight.

    Every account received at most `level_fen / level_weight` per unit of its weight.
    """

    payments: list[int]
    level_fen: int
    level_weight: int


def water_fill(fund: int, weights: Sequence[int], caps: Sequence[int]) -> Fill:
    """Payments (same order as `weights`, summing to ≤ fund). Weights and caps must be > 0."""
    if fund <= 0 or not weights:
        return Fill([0] * len(weights), 0, 1)
    weight_total = sum(weights)
    payments = [fund * weight // weight_total for weight in weights]
    if all(paid < cap for paid, cap in zip(payments, caps, strict=True)):
        return Fill(payments, fund, weight_total)
    return fill_with_caps(fund, weights, caps)


def fill_with_caps(fund: int, weights: Sequence[int], caps: Sequence[int]) -> Fill:
    """Water-filling for when the first round caps someone (callers that already know it)."""
    remaining = fund
    weight_total = sum(weights)
    # Exact order by cap/weight: with 2**shift ≥ w1 × w2, different ratios get different
    # integer keys (they differ by ≥ 1/(w1 × w2)). Tied accounts are capped together or not.
    shift = 2 * max(weights).bit_length() + 1
    order = sorted(range(len(weights)), key=lambda i: (caps[i] << shift) // weights[i])
    last_capped = order[0]
    for i in order:
        # share_i >= cap_i  <=>  remaining × w_i / W >= cap_i, compared exactly.
        if caps[i] * weight_total > remaining * weights[i]:
            break
        remaining -= caps[i]
        weight_total -= weights[i]
        last_capped = i
    if weight_total == 0:
        # Everyone is capped: the largest payment per weight is the last capped ratio.
        return Fill(list(caps), caps[last_capped], weights[last_capped])
    payments = [
        min(remaining * weight // weight_total, cap)
        for weight, cap in zip(weights, caps, strict=True)
    ]
    return Fill(payments, remaining, weight_total)
