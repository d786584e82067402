"""Orders (SPEC §4): today's in full, earlier days' as their ids only.

An order can be refunded only on its day (SPEC §4 refund), so an order needs its amounts only
until the next settle_day; after that the rules ask one thing of it: does the id exist (a
duplicate order), and was it a cash order never refunded (its refund is refund_window_closed,
any other is not_refundable). A year of 100,000 orders a day kept as records would take over
15 GB; kept as ids in an `IdSet`, about 25 bytes an order (bench/memory.py).

Today's orders are plain tuples in one dict (a record built with keywords for every order cost
2,500 instructions more, callgrind); `OrderBook.get` gives them as `Order` records.
"""

from array import array
from collections.abc import Iterator
from itertools import accumulate, chain, repeat
from operator import add, and_, lshift, methodcaller, mod, or_, rshift

from tokenmall.core.accounts import Order
from tokenmall.core.units import ZERO_FEN, ZERO_UNITS, Fen, Units

# A stored order of today: (user, amount_fen, paid_cash, contribution_fen, quota_fen,
# buyer_units, referrer_grants, refunded). Positional in this module only.
_Stored = tuple[str, Fen, bool, Fen, Fen, Units, tuple[tuple[str, Units], ...], bool]

LOAD_MAX = 3 / 4  # of the table's slots in use before it grows
# An id's two leading bytes, by (flag << 9 | UTF-8 length, 1-256): the flag, then the length
# less one.
_PREFIXES = [
    bytes((code >> 9, (code & 0x1FF) - 1)) if 1 <= code & 0x1FF <= 256 else b""
    for code in range(1024)
]
_ENCODE = methodcaller("encode", "utf-8", "surrogatepass")
REFUNDABLE = 1  # the flag of a closed order that was paid in cash and never refunded


class IdSet:
    """An exact set of ids (strings of 1-64 characters), each with a one-byte flag, in 25-30
    bytes an id of 12 characters (bench/memory.py), with no false answers: a hash only finds
    where to look, and an id is found only where its bytes are.

    The ids are packed in one bytearray: a flag byte, a byte holding the UTF-8 length less
    one, then the bytes. An open-addressing table finds them; each slot holds the low 32 bits
    of the id's hash and its offset in the bytearray, `hash << 32 | offset`, 0 when empty.
    Most lookups of an absent id end at an empty slot or on those 32 bits without reading the
    bytearray, and the table grows without hashing the ids again. (Python's own set would
    take about 75 bytes an id: a str object and a slot.) Ids come back in the order they were
    added, which snapshots keep. Offsets are 32 bits: 4 GiB of ids, some 250 million."""

    __slots__ = ("_blob", "_count", "_size", "_table")

    def __init__(self) -> None:
        self._blob = bytearray(b"\0")  # offset 0 is no id: a table slot of 0 is empty
        self._size = 1024
        self._table = array("Q", bytes(8 * self._size))
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: str) -> bool:
        # flag()'s probe written out: every new order asks this, and a call costs as much.
        low = hash(key) & 0xFFFFFFFF
        table, size = self._table, self._size
        slot = low % size
        while entry := table[slot]:
            if entry >> 32 == low:
                offset = entry & 0xFFFFFFFF
                data = key.encode("utf-8", "surrogatepass")
                blob = self._blob
                length = len(data)
                if (
                    blob[offset + 1] == length - 1
                    and blob[offset + 2 : offset + 2 + length] == data
                ):
                    return True
            slot = slot + 1 if slot + 1 < size else 0
        return False

    def flag(self, key: str) -> int | None:
        """The flag `key` was added with, or None if it is not in the set."""
        low = hash(key) & 0xFFFFFFFF
        table, size = self._table, self._size
        slot = low % size
        while entry := table[slot]:
            if entry >> 32 == low:
                offset = entry & 0xFFFFFFFF
                data = key.encode("utf-8", "surrogatepass")
                blob = self._blob
                length = len(data)
                if (
                    blob[offset + 1] == length - 1
                    and blob[offset + 2 : offset + 2 + length] == data
                ):
                    return blob[offset]
            slot = slot + 1 if slot + 1 < size else 0
        return None

    def add_all(self, keys: list[str], flags: list[int]) -> None:
        """Add ids that are not in the set yet (the caller checked), each with its flag.

        Everything but placing each id in the table runs as C-level maps over the batch: a
        day closes with every order of the day, and this is most of the cost of keeping them."""
        while self._count + len(keys) > LOAD_MAX * self._size:
            self._grow()
        blob = self._blob
        encoded = list(map(_ENCODE, keys))
        sizes = list(map(len, encoded))
        if len(blob) + sum(sizes) + 2 * len(keys) >= 2**32:
            raise MemoryError("an IdSet holds at most 4 GiB of ids")
        offsets = accumulate(map(add, sizes, repeat(2)), initial=len(blob))
        lows = list(map(and_, map(hash, keys), repeat(0xFFFFFFFF)))
        entries = map(or_, map(lshift, lows, repeat(32)), offsets)
        table, size = self._table, self._size
        for low, entry in zip(lows, entries, strict=True):
            slot = low % size
            while table[slot]:
                slot = slot + 1 if slot + 1 < size else 0
            table[slot] = entry
        # The bytes in one piece: a flag, the length less one, the id; for every id.
        prefixes = map(_PREFIXES.__getitem__, map(or_, map(lshift, flags, repeat(9)), sizes))
        blob += b"".join(chain.from_iterable(zip(prefixes, encoded, strict=True)))
        self._count += len(keys)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        """(id, flag) in the order added."""
        blob, offset, end = self._blob, 1, len(self._blob)
        while offset < end:
            size = blob[offset + 1] + 1
            key = blob[offset + 2 : offset + 2 + size].decode("utf-8", "surrogatepass")
            yield key, blob[offset]
            offset += 2 + size

    def nbytes(self) -> int:
        """The memory the ids take (bytearray and table; the objects' headers left out)."""
        return len(self._blob) + self._table.itemsize * len(self._table)

    def _grow(self) -> None:
        """Make the table half as large again, placing every entry again by the hash bits it
        keeps. (Half, not double: the table then stays between half and three quarters full,
        which keeps an id at most about 29 bytes.)"""
        entries = list(filter(None, self._table))
        size = self._size * 3 // 2
        homes = map(mod, map(rshift, entries, repeat(32)), repeat(size))
        table = array("Q", bytes(8 * size))
        for home, entry in zip(homes, entries, strict=True):
            slot = home
            while table[slot]:
                slot = slot + 1 if slot + 1 < size else 0
            table[slot] = entry
        self._table, self._size = table, size


class OrderBook:
    """Every order ever applied: today's with what a refund needs, earlier ones by id, each
    flagged REFUNDABLE when it was a cash order never refunded (its refund is then
    refund_window_closed rather than not_refundable)."""

    __slots__ = ("closed", "today")

    def __init__(self) -> None:
        self.today: dict[str, _Stored] = {}
        self.closed = IdSet()  # every order of an earlier day

    def __contains__(self, order_id: str) -> bool:
        return order_id in self.today or order_id in self.closed

    def __len__(self) -> int:
        return len(self.today) + len(self.closed)

    def add_cash(
        self,
        order_id: str,
        user: str,
        amount_fen: Fen,
        contribution_fen: Fen,
        quota_fen: Fen,
        buyer_units: Units,
        referrer_grants: tuple[tuple[str, Units], ...],
    ) -> None:
        self.today[order_id] = (
            user,
            amount_fen,
            True,
            contribution_fen,
            quota_fen,
            buyer_units,
            referrer_grants,
            False,
        )

    def add_stable(self, order_id: str, user: str, amount_fen: Fen) -> None:
        self.today[order_id] = (user, amount_fen, False, ZERO_FEN, ZERO_FEN, ZERO_UNITS, (), False)

    def get(self, order_id: str, day: int) -> Order | None:
        """Today's order `order_id` as a record (its `day` is today's), or None."""
        stored = self.today.get(order_id)
        if stored is None:
            return None
        user, amount, cash, contribution, quota, units, grants, refunded = stored
        return Order(
            id=order_id,
            user=user,
            amount_fen=amount,
            paid_cash=cash,
            day=day,
            contribution_fen=contribution,
            quota_fen=quota,
            buyer_units=units,
            referrer_grants=grants,
            refunded=refunded,
        )

    def mark_refunded(self, order_id: str) -> None:
        self.today[order_id] = (*self.today[order_id][:-1], True)

    def close_day(self) -> None:
        """The day ends (settle_day): today's orders can no longer be refunded; keep their
        ids only."""
        flags = [REFUNDABLE if s[2] and not s[-1] else 0 for s in self.today.values()]
        self.closed.add_all(list(self.today), flags)
        self.today = {}

    def records(self, day: int) -> Iterator[Order]:
        """Today's orders as records, in the order they were placed."""
        for order_id in self.today:
            order = self.get(order_id, day)
            if order is not None:  # always: the id comes from today's
                yield order

    def ids(self) -> Iterator[str]:
        """Every order's id: earlier days' first, in the order placed."""
        for order_id, _ in self.closed:
            yield order_id
        yield from self.today
