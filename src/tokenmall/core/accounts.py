"""The records of SPEC §3, and the one list of each record's balance fields.

Every reader of balances (snapshots, the canonical state, the API's reads, the statements) uses
CONSUMER_FIELDS and MERCHANT_FIELDS, in this order. Records are keyword-only. The rules change
them (core/rules/), and say what they changed (core/effects.py).
"""

from dataclasses import dataclass

from tokenmall.core.units import ZERO_FEN, ZERO_UNITS, Fen, Units

# A consumer's balance fields, in the order statements and snapshots store them. Money and SP in
# fen, EP in units of 1e-8; `level` a number, `exited` a flag.
CONSUMER_FIELDS = (
    "ep",
    "sp",
    "locked_sp",
    "quota",
    "level",
    "cash_out",
    "goods",
    "dividends",
    "exited",
    # SPEC v2: money owed (可提现余额), in withdrawals not yet settled, paid out; risk control.
    "cash",
    "withdrawing",
    "withdrawn",
    "frozen",
)
MERCHANT_FIELDS = ("ep", "sp", "cash_out", "cash", "withdrawing", "withdrawn", "frozen")
# A regional agent's (区域代理, SPEC §10) balance fields; its region and term are not balances.
AGENT_FIELDS = ("commissions", "cash", "withdrawing", "withdrawn", "frozen", "ended")


class ConsumerBook:
    """The consumers' balances that a settlement touches, one list per field ("columns").

    A settlement reads and writes these numbers for every consumer. Kept in lists indexed by
    `Consumer.slot`, one pass is a handful of C-level list operations over contiguous memory
    instead of thousands of scattered object attribute updates (measured 2-3× faster on 10,000
    consumers; see docs/architecture.md).
    """

    __slots__ = ("dividends", "ep", "level", "owners", "quota", "sp", "trigger_key")

    def __init__(self) -> None:
        self.ep: list[Units] = []  # EP held, units of 1e-8
        self.quota: list[Fen] = []  # dividend quota left, fen
        self.sp: list[Fen] = []  # stable points, fen
        self.dividends: list[Fen] = []  # dividends received so far, fen
        self.level: list[int] = []  # 股东等级, only rises
        # The exit-queue key of the row's newest heap entry, or None while it holds no EP.
        self.trigger_key: list[int | None] = []
        self.owners: list[Consumer] = []

    def add_row(self, owner: "Consumer") -> int:
        self.ep.append(ZERO_UNITS)
        self.quota.append(ZERO_FEN)
        self.sp.append(ZERO_FEN)
        self.dividends.append(ZERO_FEN)
        self.level.append(0)
        self.trigger_key.append(None)
        self.owners.append(owner)
        return len(self.owners) - 1


class Consumer:
    """A consumer (消费者). Money and SP in fen, EP in units of 1e-8.

    `ep`, `quota`, `sp`, `dividends` and `level` live in the ConsumerBook at `slot`; the
    properties below read and write them there (hot paths index the book directly).
    """

    __slots__ = (
        "book",
        "cash",
        "cash_out",
        "exited",
        "frozen",
        "goods",
        "id",
        "locked_sp",
        "referrer",
        "slot",
        "withdrawing",
        "withdrawn",
    )

    def __init__(self, *, consumer_id: str, referrer: str | None, book: ConsumerBook) -> None:
        self.id = consumer_id
        self.referrer = referrer
        self.book = book
        self.slot = book.add_row(self)
        self.locked_sp: Fen = ZERO_FEN
        self.cash_out: Fen = ZERO_FEN
        self.goods: Fen = ZERO_FEN
        self.exited = False
        self.cash: Fen = ZERO_FEN
        self.withdrawing: Fen = ZERO_FEN
        self.withdrawn: Fen = ZERO_FEN
        self.frozen = False

    @property
    def ep(self) -> Units:
        return self.book.ep[self.slot]

    @ep.setter
    def ep(self, units: Units) -> None:
        self.book.ep[self.slot] = units

    @property
    def quota(self) -> Fen:
        return self.book.quota[self.slot]

    @quota.setter
    def quota(self, fen: Fen) -> None:
        self.book.quota[self.slot] = fen

    @property
    def sp(self) -> Fen:
        return self.book.sp[self.slot]

    @sp.setter
    def sp(self, fen: Fen) -> None:
        self.book.sp[self.slot] = fen

    @property
    def dividends(self) -> Fen:
        return self.book.dividends[self.slot]

    @dividends.setter
    def dividends(self, fen: Fen) -> None:
        self.book.dividends[self.slot] = fen

    @property
    def level(self) -> int:
        return self.book.level[self.slot]

    def balances(self) -> tuple[int, ...]:
        """CONSUMER_FIELDS' values, in that order (`exited` as 0 or 1)."""
        book, slot = self.book, self.slot
        return (
            book.ep[slot],
            book.sp[slot],
            self.locked_sp,
            book.quota[slot],
            book.level[slot],
            self.cash_out,
            self.goods,
            book.dividends[slot],
            int(self.exited),
            self.cash,
            self.withdrawing,
            self.withdrawn,
            int(self.frozen),
        )


@dataclass(slots=True, eq=False, kw_only=True)
class Merchant:
    """A merchant (商家): no quota, no level, no dividends, never force-exited."""

    id: str
    ep: Units = ZERO_UNITS
    sp: Fen = ZERO_FEN
    cash_out: Fen = ZERO_FEN
    cash: Fen = ZERO_FEN
    withdrawing: Fen = ZERO_FEN
    withdrawn: Fen = ZERO_FEN
    frozen: bool = False

    def balances(self) -> tuple[int, ...]:
        """MERCHANT_FIELDS' values, in that order."""
        return (
            self.ep,
            self.sp,
            self.cash_out,
            self.cash,
            self.withdrawing,
            self.withdrawn,
            int(self.frozen),
        )


@dataclass(slots=True, eq=False, kw_only=True)
class Agent:
    """A regional agent (区域代理, SPEC §10): earns a share of cash orders in its region (a
    2-, 4- or 6-digit prefix of a GB/T 2260 area code) until `until` (a day; None: no end)."""

    id: str
    region: str
    until: int | None
    ended: bool = False
    frozen: bool = False
    commissions: Fen = ZERO_FEN  # earned, net of refund take-backs
    cash: Fen = ZERO_FEN
    withdrawing: Fen = ZERO_FEN
    withdrawn: Fen = ZERO_FEN

    def balances(self) -> tuple[int, ...]:
        """AGENT_FIELDS' values, in that order."""
        return (
            self.commissions,
            self.cash,
            self.withdrawing,
            self.withdrawn,
            int(self.frozen),
            int(self.ended),
        )

    def earns_on(self, day: int) -> bool:
        return not self.ended and (self.until is None or day <= self.until)


# A withdrawal's states (SPEC §9); it moves only along the arrows of its diagram.
REQUESTED, APPROVED, REJECTED, PAID, FAILED = "requested", "approved", "rejected", "paid", "failed"
PENDING = (REQUESTED, APPROVED)  # money in `withdrawing`


@dataclass(slots=True, eq=False, kw_only=True)
class Withdrawal:
    """A payout request (提现, SPEC §9): `amount_fen` of an account's cash."""

    id: str
    account: str
    amount_fen: Fen
    status: str
    reference: str | None = None


@dataclass(slots=True, eq=False, kw_only=True)
class Collection:
    """A numbered series of digital collectibles (数字藏品, SPEC §11)."""

    id: str
    edition: int
    value_fen: Fen
    claimed: int = 0


@dataclass(slots=True, eq=False, kw_only=True)
class Item:
    """One collectible, `"<collection>#<serial>"`: held by a consumer, used at most once."""

    id: str
    owner: str
    acquired_day: int
    gifts: int = 0
    used: bool = False


@dataclass(slots=True, eq=False, kw_only=True)
class Order:
    """An applied order, kept for duplicate-id checks and same-day refunds."""

    id: str
    user: str
    amount_fen: Fen
    paid_cash: bool
    day: int
    contribution_fen: Fen = ZERO_FEN
    quota_fen: Fen = ZERO_FEN
    buyer_units: Units = ZERO_UNITS
    # (referrer id, EP units granted), first-level referrer first.
    referrer_grants: tuple[tuple[str, Units], ...] = ()
    # (agent id, fen of commission), province first (SPEC §10), for a refund to take back.
    commissions: tuple[tuple[str, Fen], ...] = ()
    refunded: bool = False


@dataclass(slots=True, eq=False, kw_only=True)
class VestingGrant:
    """Locked SP released over the next `days_left` settlements (grant_stable, 分批释放)."""

    user: str
    per_settlement_fen: Fen
    days_left: int
    locked_fen: Fen
