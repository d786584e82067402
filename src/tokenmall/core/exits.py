"""The forced-exit queue (出局, SPEC §5): consumers ordered by trigger price quota / ep.

A consumer must exit when ep × P ≥ quota, i.e. when the price reaches quota / ep. Keeping every
EP holder in a heap by that trigger price lets the engine find the next exit in O(log n) instead of
scanning every consumer after every command.

Keys are exact: `(quota << shift) // ep` with 2**shift ≥ ep1 × ep2 for any two holdings, so two
different ratios never share a key and equal ratios always do (the tie then falls to the account
id, as SPEC says). Entries are replaced lazily: an entry is live only while it equals the key
stored on the consumer.
"""

import heapq
from collections.abc import Iterable

from tokenmall.core.accounts import Consumer

# Rebuild the heap when stale entries outnumber live ones by this factor (bounds its memory).
STALE_FACTOR_MAX = 4
HEAP_SLACK = 1024


class ExitQueue:
    def __init__(self, max_holding_units: int) -> None:
        self.shift = _shift_for(max_holding_units)
        self._heap: list[tuple[int, str]] = []

    def key(self, consumer: Consumer) -> int:
        return (consumer.quota << self.shift) // consumer.ep

    def update(self, consumer: Consumer) -> None:
        """Record a consumer's new ep/quota."""
        if consumer.ep <= 0:
            consumer.trigger_key = None
            return
        key = (consumer.quota << self.shift) // consumer.ep
        if key != consumer.trigger_key:
            consumer.trigger_key = key
            heapq.heappush(self._heap, (key, consumer.id))

    def rebuild(self, consumers: Iterable[Consumer]) -> None:
        """Recompute every key in O(n): cheaper than n pushes after a settlement."""
        shift = self.shift
        heap: list[tuple[int, str]] = []
        for consumer in consumers:
            if consumer.ep > 0:
                key = (consumer.quota << shift) // consumer.ep
                consumer.trigger_key = key
                heap.append((key, consumer.id))
            else:
                consumer.trigger_key = None
        heapq.heapify(heap)
        self._heap = heap

    def widen(self, max_holding_units: int, consumers: Iterable[Consumer]) -> None:
        """Keep keys exact after total_issuance is raised."""
        shift = _shift_for(max_holding_units)
        if shift > self.shift:
            self.shift = shift
            self.rebuild(consumers)

    def first(self, consumers: dict[str, Consumer]) -> Consumer | None:
        """The holder with the smallest trigger price (ties: smallest id), or None."""
        heap = self._heap
        while heap:
            key, consumer_id = heap[0]
            consumer = consumers[consumer_id]
            if consumer.trigger_key == key:
                return consumer
            heapq.heappop(heap)
        return None

    def needs_compaction(self, consumer_count: int) -> bool:
        return len(self._heap) > STALE_FACTOR_MAX * consumer_count + HEAP_SLACK


def _shift_for(max_holding_units: int) -> int:
    return 2 * max(max_holding_units, 1).bit_length() + 1
