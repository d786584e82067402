"""A token bucket per API token: each role has a rate (requests per second) and a burst of
BURST_S seconds' worth. Over it, a request is answered 429 with the seconds until one more is
allowed. Buckets are kept for at most BUCKETS_MAX tokens; full ones are the first dropped."""

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

BURST_S = 2.0
BUCKETS_MAX = 100_000


@dataclass
class _Bucket:
    tokens: float
    at_s: float


@dataclass
class RateLimiter:
    per_s: Mapping[str, float]  # requests per second by role; 0 or absent: unlimited
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def wait_s(self, token_id: str, role: str) -> int:
        """0 if the request may go ahead now (and count it), else the whole seconds to wait."""
        rate = self.per_s.get(role, 0)
        if rate <= 0:
            return 0
        capacity, now = rate * BURST_S, self.clock()
        bucket = self._buckets.get(token_id)
        if bucket is None:
            if len(self._buckets) >= BUCKETS_MAX:
                self._drop_full(now)
            bucket = self._buckets[token_id] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at_s) * rate)
        bucket.at_s = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0
        return max(1, math.ceil((1 - bucket.tokens) / rate))

    def _drop_full(self, now: float) -> None:
        """Forget the buckets that have refilled (a new one starts full anyway); if none has,
        forget them all rather than grow without bound."""
        idle_s = BURST_S
        full = [t for t, b in self._buckets.items() if now - b.at_s >= idle_s]
        for token_id in full or list(self._buckets):
            del self._buckets[token_id]
