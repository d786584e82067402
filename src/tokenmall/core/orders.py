"""Orders (SPEC §4): today's in full, earlier days' as their ids only.

An order can be refunded only on its day (SPEC §4 refund), so an order needs its amounts only
until the next settle_day; after that the rules ask one thing of it: does the id exist (a
duplicate order), and was it a cash order never refunded (its refund is refund_window_closed,
any other is not_refundable). A year of 100,000 orders a day kept as records would take over
15 GB; kept as ids in an `IdSet`, about 16 bytes an order (bench/memory.py).

Today's orders are plain tuples in one dict (a record built with keywords for every order cost
2,500 instructions more, callgrind); `OrderBook.get` gives them as `Order` records.
"""

import sys
from collections.abc import Iterator
from itertools import compress, repeat
from operator import and_, itemgetter, not_

from tokenmall.core.accounts import Order
from tokenmall.core.units import ZERO_FEN, ZERO_UNITS, Fen, Units

# A stored order of today: (user, amount_fen, paid_cash, contribution_fen, quota_fen,
# buyer_units, referrer_grants, commissions, refunded). Positional in this module only.
_Stored = tuple[
    str,
    Fen,
    bool,
    Fen,
    Fen,
    Units,
    tuple[tuple[str, Units], ...],
    tuple[tuple[str, Fen], ...],
    bool,
]

_PAID_CASH, _GRANTS, _REFUNDED = itemgetter(2), itemgetter(6), itemgetter(8)  # of a _Stored

REFUNDABLE = 1  # the flag of a closed order that was paid in cash and never refunded

# UTF-8 (with surrogates passed) never has a byte above 0xF4, so these bytes, which IdSet
# writes before and after every id, never occur inside one.
_SEP = b"\xfd"  # before each id
_FLAG_BASE = 0xFE  # after each id: 0xFE + its flag (0 or 1)
_FLAG_BYTES = (b"\xfe", b"\xff")
# On average: past it the buckets grow fourfold, which puts every id again (a third of an id's
# cost); fourfold rather than twofold puts an id again 0.3-1.3 times in its life, not 1-2.
IDS_PER_BUCKET_MAX = 32
GROWTH = 4
_BUCKETS_MIN = 64


class IdSet:
    """An exact set of ids (any strings), each with a flag of 0 or 1, in about 16 bytes an id
    of 12 characters (bench/memory.py), with no false answers: the hash only picks a bucket,
    and an id is found only where its bytes are.

    The ids live in buckets, each one bytes object `_SEP id flag _SEP id flag ...` (UTF-8, the
    flag a byte 0xFE or 0xFF); an id's hash picks its bucket, which holds 8-32 ids on average.
    A lookup is one C-level search for `_SEP id` in one bucket: since `_SEP` and the flag bytes
    never occur inside UTF-8, a match followed by a flag byte is exactly that id (one followed
    by anything else is a longer id that starts with it, and the search goes on). Adding a
    day's ids encodes them in one call and appends each to its bucket: one bytes concatenation
    an id. (A Python set would take about 75 bytes an id, a str object and a slot; an
    open-addressing table filled by a Python loop took 4-5 times the instructions,
    callgrind.) Ids come back sorted by their UTF-8 bytes, whatever order they were added in,
    so that a snapshot does not depend on the process's hash seed."""

    __slots__ = ("_buckets", "_count", "_mask")

    def __init__(self) -> None:
        self._buckets: list[bytes] = [b""] * _BUCKETS_MIN
        self._mask = _BUCKETS_MIN - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: str) -> bool:
        if not self._count:  # the simulator's engines keep none (OrderBook.forget_orders)
            return False
        # flag()'s search written out: every new order asks this, and a call costs as much.
        needle = _SEP + key.encode("utf-8", "surrogatepass")
        bucket = self._buckets[hash(key) & self._mask]
        at = bucket.find(needle)
        while at >= 0:
            if bucket[at + len(needle)] >= _FLAG_BASE:
                return True
            at = bucket.find(needle, at + 1)
        return False

    def flag(self, key: str) -> int | None:
        """The flag `key` was added with, or None if it is not in the set."""
        # find, not `in`: bytes.__contains__ first tries its argument as an integer, and the
        # TypeError it raises and clears costs three times the search (callgrind).
        needle = _SEP + key.encode("utf-8", "surrogatepass")
        bucket = self._buckets[hash(key) & self._mask]
        at = bucket.find(needle)
        while at >= 0:
            after = bucket[at + len(needle)]  # there is one: every id ends with its flag
            if after >= _FLAG_BASE:
                return after - _FLAG_BASE
            at = bucket.find(needle, at + 1)
        return None

    def add_all(self, keys: list[str], flag: int) -> None:
        """Add ids that are not in the set yet (the caller checked), all with `flag`."""
        buckets, mask = self._buckets, self._mask
        for index, entry in zip(
            map(and_, map(hash, keys), repeat(mask)), _entries(keys, flag), strict=True
        ):
            buckets[index] += entry
        self._count += len(keys)
        if self._count > IDS_PER_BUCKET_MAX * len(buckets):
            self._spread(GROWTH * len(buckets))

    def __iter__(self) -> Iterator[tuple[str, int]]:
        """(id, flag), sorted by the ids' UTF-8 bytes."""
        for entry in sorted(self._flagged(), key=_without_flag):
            yield entry[:-1].decode("utf-8", "surrogatepass"), entry[-1] - _FLAG_BASE

    def nbytes(self) -> int:
        """The memory the ids take: the buckets' bytes objects and the list of them."""
        header = sys.getsizeof(b"")
        return sum(map(len, self._buckets)) + (header + 8) * len(self._buckets) + 56

    def _flagged(self) -> list[bytes]:
        """Every id's UTF-8 bytes followed by its flag byte, in no particular order."""
        return b"".join(self._buckets).split(_SEP)[1:]

    def _spread(self, buckets: int) -> None:
        """Put every id again into `buckets` buckets (a power of two)."""
        flagged = self._flagged()
        keys = _decoded(list(map(_without_flag, flagged)))
        mask = buckets - 1
        groups: list[list[bytes]] = [[] for _ in range(buckets)]
        for index, entry in zip(map(and_, map(hash, keys), repeat(mask)), flagged, strict=True):
            groups[index].append(entry)
        self._buckets = [_SEP + _SEP.join(group) if group else b"" for group in groups]
        self._mask = mask


def _without_flag(entry: bytes) -> bytes:
    return entry[:-1]


def _entries(keys: list[str], flag: int) -> list[bytes]:
    """`_SEP id flag` for each id. Encoded in one call when no id holds a NUL (which then
    separates them); one call an id otherwise."""
    end = _FLAG_BYTES[flag]
    text = "\x00".join(keys)
    if text.count("\x00") == len(keys) - 1:
        data = ("\x00" + text + "\x00").encode("utf-8", "surrogatepass")
        return data.replace(b"\x00", end + b"\x00" + _SEP).split(b"\x00")[1:-1]
    return [_SEP + key.encode("utf-8", "surrogatepass") + end for key in keys]


def _decoded(encoded: list[bytes]) -> list[str]:
    """The ids of UTF-8 bytes, decoded in one call when none holds a NUL."""
    data = b"\x00".join(encoded)
    if data.count(b"\x00") == len(encoded) - 1 and encoded:
        return data.decode("utf-8", "surrogatepass").split("\x00")
    return [item.decode("utf-8", "surrogatepass") for item in encoded]


class OrderBook:
    """Every order ever applied: today's with what a refund needs, earlier ones by id, each
    flagged REFUNDABLE when it was a cash order never refunded (its refund is then
    refund_window_closed rather than not_refundable)."""

    __slots__ = ("_keep", "closed", "today")

    def __init__(self) -> None:
        self.today: dict[str, _Stored] = {}
        self.closed = IdSet()  # every order of an earlier day, flagged REFUNDABLE or 0
        self._keep = True

    def forget_orders(self) -> None:
        """From now on keep no orders: neither today's records nor earlier days' ids (the
        simulator's engines only).

        Orders are kept for two rules: refusing an order whose id exists, and refunding one
        (today's, with what its refund takes back; an earlier day's, to say its window
        closed). A caller whose order ids are unique by construction and who never refunds
        (the simulator) meets neither, so keeping them can change no outcome; a simulated
        year of a million orders then spends neither the 16 bytes an id and the record of
        each of the day's orders, nor the time to make, store and free them (a fifth of a
        full-rules run). tests/test_sim.py checks a run is the same either way."""
        self._keep = False

    @property
    def keeping(self) -> bool:
        """Whether orders are kept (until forget_orders)."""
        return self._keep

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
        commissions: tuple[tuple[str, Fen], ...] = (),
    ) -> None:
        if not self._keep:
            return
        self.today[order_id] = (
            user,
            amount_fen,
            True,
            contribution_fen,
            quota_fen,
            buyer_units,
            referrer_grants,
            commissions,
            False,
        )

    def add_stable(self, order_id: str, user: str, amount_fen: Fen) -> None:
        if not self._keep:
            return
        self.today[order_id] = (
            user,
            amount_fen,
            False,
            ZERO_FEN,
            ZERO_FEN,
            ZERO_UNITS,
            (),
            (),
            False,
        )

    def cash_grants(self, order_id: str) -> tuple[tuple[str, Units], ...] | None:
        """The EP today's cash order `order_id` granted each referrer; None if it is not one
        (paid in SP, or not today's). For the read models, without building an Order."""
        stored = self.today.get(order_id)
        return _GRANTS(stored) if stored is not None and _PAID_CASH(stored) else None

    def get(self, order_id: str, day: int) -> Order | None:
        """Today's order `order_id` as a record (its `day` is today's), or None."""
        stored = self.today.get(order_id)
        if stored is None:
            return None
        user, amount, cash, contribution, quota, units, grants, commissions, refunded = stored
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
            commissions=commissions,
            refunded=refunded,
        )

    def mark_refunded(self, order_id: str) -> None:
        self.today[order_id] = (*self.today[order_id][:-1], True)

    def close_day(self) -> None:
        """The day ends (settle_day): today's orders can no longer be refunded; keep their
        ids only."""
        today = self.today
        if not self._keep:
            self.today = {}
            return
        # Paid in cash and not refunded; as C-level maps (every order of the day passes here).
        stored = today.values()
        refundable = list(map(and_, map(_PAID_CASH, stored), map(not_, map(_REFUNDED, stored))))
        self.closed.add_all(list(compress(today, refundable)), REFUNDABLE)
        self.closed.add_all(list(compress(today, map(not_, refundable))), 0)
        self.today = {}

    def closed_flag(self, order_id: str) -> int | None:
        """For an order of an earlier day: REFUNDABLE if it was a cash order never refunded,
        else 0; None if there is no such order."""
        return self.closed.flag(order_id)

    def closed_items(self) -> list[tuple[str, int]]:
        """(id, flag) of every order of an earlier day, sorted by id (UTF-8 bytes)."""
        return list(self.closed)

    def add_closed(self, items: list[tuple[str, int]]) -> None:
        """Orders of earlier days, as closed_items gives them (a snapshot)."""
        self.closed.add_all([key for key, flag in items if flag == REFUNDABLE], REFUNDABLE)
        self.closed.add_all([key for key, flag in items if flag != REFUNDABLE], 0)

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
