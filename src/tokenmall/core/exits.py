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

from tokenmall.core.accounts import ConsumerBook
from tokenmall.core.units import Fen, Units, ceil_div

# Rebuild when the heap holds this many entries per consumer (stale ones): bounds its memory.
ENTRIES_PER_CONSUMER_MAX = 4
HEAP_SLACK = 1024


class ExitQueue:
    def __init__(self, max_holding_units: Units, book: ConsumerBook) -> None:
        self.shift = _shift_for(max_holding_units)
        self.offset = 0
        self._book = book
        # (key, consumer id, slot): the id breaks ties as SPEC says; the slot is never compared
        # between different consumers, because ids are unique.
        self.heap: list[tuple[int, str, int]] = []

    def note_changes(self, slots: Iterable[int]) -> None:
        """Record that these rows' ep or quota changed (push only where the trigger fell);
        compact the heap when it has grown stale."""
        book = self._book
        ep, quota, trigger_key, owners = book.ep, book.quota, book.trigger_key, book.owners
        shift, offset, heap = self.shift, self.offset, self.heap
        for slot in slots:
            units = ep[slot]
            if units <= 0:
                trigger_key[slot] = None
                continue
            key = (quota[slot] << shift) // units + offset
            bound = trigger_key[slot]
            if bound is None or key < bound:
                trigger_key[slot] = key
                heapq.heappush(heap, (key, owners[slot].id, slot))
        if len(heap) > ENTRIES_PER_CONSUMER_MAX * len(owners) + HEAP_SLACK:
            self.rebuild()

    def lower_triggers(self, level_fen: int, level_units: int) -> None:
        """Every holder's trigger price fell by at most level_fen / level_units (a settlement)."""
        if level_fen:
            self.offset += ceil_div(level_fen << self.shift, level_units)

    def first_due(self, pool_fen: Fen, supply_units: Units) -> int | None:
        """The slot of the holder with the smallest trigger price (ties: smallest id), if ≤ P."""
        heap = self.heap
        ep, quota, trigger_key = self._book.ep, self._book.quota, self._book.trigger_key
        threshold = (pool_fen << self.shift) + self.offset * supply_units
        while heap:
            key, consumer_id, slot = heap[0]
            if key * supply_units > threshold:
                return None  # a lower bound above P: nobody is due
            units = ep[slot]
            if units <= 0 or trigger_key[slot] != key:
                heapq.heappop(heap)  # sold out, or superseded by a lower entry
                continue
            exact = (quota[slot] << self.shift) // units + self.offset
            if exact != key:
                trigger_key[slot] = exact
                heapq.heapreplace(heap, (exact, consumer_id, slot))
                continue
            if units * pool_fen >= quota[slot] * supply_units:
                return slot
            return None
        return None

    def rebuild(self) -> None:
        """Exact keys for every holder in O(n); drops stale entries and resets the offset."""
        self.offset = 0
        book = self._book
        trigger_key = book.trigger_key
        trigger_key[:] = [None] * len(trigger_key)
        self.heap = []
        self.note_changes(range(len(book.owners)))

    def widen(self, max_holding_units: Units) -> None:
        """Keep keys exact after total_issuance is raised."""
        shift = _shift_for(max_holding_units)
        if shift > self.shift:
            self.shift = shift
            self.rebuild()


def _shift_for(max_holding_units: int) -> int:
    return 2 * max(max_holding_units, 1).bit_length() + 1
