"""The forced-exit queue (出局, SPEC §5): consumers ordered by trigger price quota / ep.

A consumer must exit when ep × P ≥ quota, i.e. when P reaches their trigger price quota / ep.
Keeping holders in a heap by trigger price finds the next exit in O(log n) instead of scanning
every consumer after every command.

Exact keys: `key = (quota << shift) // ep + offset`, with 2**shift ≥ ep1 × ep2 for any two
holdings, so two different trigger prices never share a key and equal ones always do (the tie
then falls to the account id, as SPEC says).

Lower bounds instead of updates: a heap entry only has to be a *lower bound* of its consumer's
current key. A change that raises a trigger price (an order's new quota, a sale) needs no heap
work at all; one that lowers it pushes a new entry. A settlement lowers every holder's trigger
price by at most the day's water level (dividend per EP unit), so it adds that level to `offset`
in O(1) instead of touching n entries. When the top entry is not exact it is re-pushed with its
exact key; once the top is exact it is the true minimum, because every other consumer's key is
at least one of its own entries, which are all at least the top.
"""

import heapq
from collections.abc import Iterable

from tokenmall.core.accounts import Consumer
from tokenmall.core.units import ceil_div

# Rebuild when the heap holds this many entries per consumer (stale ones): bounds its memory.
ENTRIES_PER_CONSUMER_MAX = 4
HEAP_SLACK = 1024


class ExitQueue:
    def __init__(self, max_holding_units: int) -> None:
        self.shift = _shift_for(max_holding_units)
        self.offset = 0
        self._heap: list[tuple[int, str]] = []

    def exact_key(self, consumer: Consumer) -> int:
        return (consumer.quota << self.shift) // consumer.ep + self.offset

    def note_change(self, consumer: Consumer) -> None:
        """Record that a consumer's ep or quota changed (push only if its trigger fell)."""
        if consumer.ep <= 0:
            consumer.trigger_key = None
            return
        key = (consumer.quota << self.shift) // consumer.ep + self.offset
        bound = consumer.trigger_key
        if bound is None or key < bound:
            consumer.trigger_key = key
            heapq.heappush(self._heap, (key, consumer.id))

    def lower_triggers(self, level_fen: int, level_units: int) -> None:
        """Every holder's trigger price fell by at most level_fen / level_units (a settlement)."""
        if level_fen:
            self.offset += ceil_div(level_fen << self.shift, level_units)

    def first_due(
        self, consumers: dict[str, Consumer], pool_fen: int, supply_units: int
    ) -> Consumer | None:
        """The holder with the smallest trigger price (ties: smallest id) if it is ≤ P."""
        heap = self._heap
        threshold = (pool_fen << self.shift) + self.offset * supply_units
        while heap:
            key, consumer_id = heap[0]
            if key * supply_units > threshold:
                return None  # a lower bound above P: nobody is due
            consumer = consumers[consumer_id]
            if consumer.ep <= 0 or consumer.trigger_key != key:
                heapq.heappop(heap)  # sold out, or superseded by a lower entry
                continue
            exact = (consumer.quota << self.shift) // consumer.ep + self.offset
            if exact != key:
                consumer.trigger_key = exact
                heapq.heapreplace(heap, (exact, consumer_id))
                continue
            if consumer.ep * pool_fen >= consumer.quota * supply_units:
                return consumer
            return None
        return None

    def rebuild(self, consumers: Iterable[Consumer]) -> None:
        """Exact keys for every holder in O(n); drops stale entries and resets the offset."""
        self.offset = 0
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

    def needs_compaction(self, consumer_count: int) -> bool:
        return len(self._heap) > ENTRIES_PER_CONSUMER_MAX * consumer_count + HEAP_SLACK


def _shift_for(max_holding_units: int) -> int:
    return 2 * max(max_holding_units, 1).bit_length() + 1
