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
from operator import and_, itemgetter, not_, or_

from tokenmall.core.accounts import Order
from tokenmall.core.units import ZERO_FEN, ZERO_UNITS, Fen, Units

# A stored order of today: (user, amount_fen, paid_cash, contribution_fen, quota_fen,
# buyer_units, referrer_grants, refunded). Positional in this module only.
_Stored = tuple[str, Fen, bool, Fen, Fen, Units, tuple[tuple[str, Units], ...], bool]

_PAID_CASH, _REFUNDED = itemgetter(2), itemgetter(7)  # of a _Stored

REFUNDABLE = 1  # the flag of a closed order that was paid in cash and never refunded

# UTF-8 (with surrogates passed) never has a byte above 0xF4, so _SEP, which IdSet writes
# before and after every id, never occurs inside one.
_SEP = b"\xfd"
# On average: past it the buckets grow fourfold, which puts every id again (a third of an id's
# cost); fourfold rather than twofold puts an id again 0.3-1.3 times in its life, not 1-2.
IDS_PER_BUCKET_MAX = 32
GROWTH = 4
_BUCKETS_MIN = 64


class IdSet:
    """An exact set of ids (any strings), in about 15 bytes an id of 12 characters
    (bench/memory.py), with no false answers: the hash only picks a bucket, and an id is found
    only where its bytes are.

    The ids live in buckets, each one bytes object `_SEP id _SEP id _SEP ... _SEP` (UTF-8); an
    id's hash picks its bucket, which holds 8-32 ids on average. A lookup is one C-level
    search for `_SEP id _SEP` in one bucket, exact because `_SEP` never occurs inside UTF-8.
    Adding a day's ids encodes them in one call and appends each to its bucket: one bytes
    concatenation an id. (A Python set would take about 75 bytes an id, a str object and a
    slot; an open-addressing table filled by a Python loop took 4-5 times the instructions,
    callgrind.) Ids come back sorted by their UTF-8 bytes, whatever order they were added in,
    so that a snapshot does not depend on the process's hash seed."""

    __slots__ = ("_buckets", "_count", "_mask")

    def __init__(self) -> None:
        self._buckets: list[bytes] = [_SEP] * _BUCKETS_MIN
        self._mask = _BUCKETS_MIN - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: str) -> bool:
        # find, not `in`: bytes.__contains__ first tries its argument as an integer, and the
        # TypeError it raises and clears costs three times the search (callgrind).
        needle = _SEP + key.encode("utf-8", "surrogatepass") + _SEP
        return self._buckets[hash(key) & self._mask].find(needle) >= 0

    def add_all(self, keys: list[str]) -> None:
        """Add ids that are not in the set yet (the caller checked)."""
        buckets, mask = self._buckets, self._mask
        for index, entry in zip(
            map(and_, map(hash, keys), repeat(mask)), _terminated(keys), strict=True
        ):
            buckets[index] += entry
        self._count += len(keys)
        if self._count > IDS_PER_BUCKET_MAX * len(buckets):
            self._spread(GROWTH * len(buckets))

    def __iter__(self) -> Iterator[str]:
        """The ids, sorted by their UTF-8 bytes."""
        for data in sorted(self._encoded()):
            yield data.decode("utf-8", "surrogatepass")

    def nbytes(self) -> int:
        """The memory the ids take: the buckets' bytes objects and the list of them."""
        header = sys.getsizeof(b"")
        return sum(map(len, self._buckets)) + (header + 8) * len(self._buckets) + 56

    def _encoded(self) -> list[bytes]:
        """Every id, UTF-8 encoded, in no particular order."""
        return list(filter(None, b"".join(self._buckets).split(_SEP)))

    def _spread(self, buckets: int) -> None:
        """Put every id again into `buckets` buckets (a power of two)."""
        encoded = self._encoded()
        keys = _decoded(encoded)
        mask = buckets - 1
        groups: list[list[bytes]] = [[] for _ in range(buckets)]
        for index, data in zip(map(and_, map(hash, keys), repeat(mask)), encoded, strict=True):
            groups[index].append(data)
        self._buckets = [_SEP.join([b"", *group, b""]) if group else _SEP for group in groups]
        self._mask = mask


def _terminated(keys: list[str]) -> list[bytes]:
    """Each id's UTF-8 bytes followed by _SEP. Encoded in one call when no id holds a NUL
    (which then separates them); one call an id otherwise."""
    text = "\x00".join(keys)
    if text.count("\x00") == len(keys) - 1:
        data = (text + "\x00").encode("utf-8", "surrogatepass")
        return data.replace(b"\x00", _SEP + b"\x00").split(b"\x00")[:-1]
    return [key.encode("utf-8", "surrogatepass") + _SEP for key in keys]


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

    __slots__ = ("closed", "today", "unrefundable")

    def __init__(self) -> None:
        self.today: dict[str, _Stored] = {}
        self.closed = IdSet()  # every order of an earlier day
        # Those of them that were not refundable cash orders (SP orders, refunded ones): the
        # fewer, so the flag costs less kept this way than as a byte an order.
        self.unrefundable = IdSet()

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
        today = self.today
        self.closed.add_all(list(today))
        # Not paid in cash, or refunded; as C-level maps (every order of the day passes here).
        stored = today.values()
        unrefundable = list(
            compress(today, map(or_, map(not_, map(_PAID_CASH, stored)), map(_REFUNDED, stored)))
        )
        if unrefundable:
            self.unrefundable.add_all(unrefundable)
        self.today = {}

    def closed_flag(self, order_id: str) -> int | None:
        """For an order of an earlier day: REFUNDABLE if it was a cash order never refunded,
        else 0; None if there is no such order."""
        if order_id not in self.closed:
            return None
        return 0 if order_id in self.unrefundable else REFUNDABLE

    def closed_items(self) -> list[tuple[str, int]]:
        """(id, flag) of every order of an earlier day, sorted by id (UTF-8 bytes)."""
        unrefundable = set(self.unrefundable)
        return [(key, 0 if key in unrefundable else REFUNDABLE) for key in self.closed]

    def add_closed(self, items: list[tuple[str, int]]) -> None:
        """Orders of earlier days, as closed_items gives them (a snapshot)."""
        self.closed.add_all([key for key, _ in items])
        self.unrefundable.add_all([key for key, flag in items if flag != REFUNDABLE])

    def records(self, day: int) -> Iterator[Order]:
        """Today's orders as records, in the order they were placed."""
        for order_id in self.today:
            order = self.get(order_id, day)
            if order is not None:  # always: the id comes from today's
                yield order

    def ids(self) -> Iterator[str]:
        """Every order's id: earlier days' first, in the order placed."""
        yield from self.closed
        yield from self.today
