"""What a command changed, as values (formance's postings, beancount's fold).

`Engine.apply` returns an `Applied`: every balance change the command caused as postings
`(account, field, signed amount)` (forced exits and settlement payouts included), plus the
events that are not balances (a registration, a level reached, an exit, a settled day). The
ledger's statements and price history are written from these values alone.

For every asset the postings of a command sum to the change of the platform totals it touches
(`asset_totals`): EP to issued − burned − treasury, SP to sp_outstanding, money paid to accounts
to what left the pool. The property tests check that, and that folding a command's postings over
the accounts' balances before it gives their balances after it, after every step.

Postings are plain tuples: a command makes several, and a tuple costs a quarter of a NamedTuple
to build. A settlement pays every holder: its dividends are kept as the lists the settlement
computed (`Payouts`) and turned into postings only when read.
"""

from collections.abc import Iterator
from enum import IntEnum
from typing import TYPE_CHECKING, NamedTuple

from tokenmall.core.units import Fen, Price, Units

if TYPE_CHECKING:
    from tokenmall.core.accounts import Consumer


class Field(IntEnum):
    """A balance field of a consumer or merchant that a posting changes."""

    EP = 0  # units of 1e-8 EP
    SP = 1  # fen of SP
    LOCKED_SP = 2  # fen of SP not yet released (grant_stable)
    QUOTA = 3  # fen of dividend quota (not an asset: an allowance)
    CASH_OUT = 4  # fen paid out for EP sold (money)
    GOODS = 5  # fen of goods taken for EP (a record, not an asset)
    DIVIDENDS = 6  # fen of dividends received (a record; the asset is the SP)
    CASH = 7  # fen the platform owes the account, withdrawable (SPEC v2)
    WITHDRAWING = 8  # fen in withdrawals requested or approved, not yet settled
    WITHDRAWN = 9  # fen paid out by withdrawals (money that left the platform)
    COMMISSIONS = 10  # fen an agent earned, net of refunds (a record; the asset is the cash)


# The asset each field holds; fields that record or allow rather than hold have none.
ASSET_OF_FIELD: dict[Field, str] = {
    Field.EP: "EP",
    Field.SP: "SP",
    Field.LOCKED_SP: "locked SP",
    Field.CASH_OUT: "money",
    Field.CASH: "owed",
    Field.WITHDRAWING: "owed",
    Field.WITHDRAWN: "paid out",
}
NAME_OF_FIELD = {field: field.name.lower() for field in Field}
# Module globals for the hot paths: reading an enum member off its class costs ~70 ns (3.11).
_EP, _QUOTA = Field.EP, Field.QUOTA

Posting = tuple[str, Field, int]  # (account id, field, signed amount)


class Registered(NamedTuple):
    account: str
    kind: str  # "consumer", "merchant" or "agent"


class LevelReached(NamedTuple):
    account: str
    level: int


class Exited(NamedTuple):
    """A forced exit (出局): the consumer's EP were sold (postings) and its quota closed."""

    account: str


class Reentered(NamedTuple):
    """An exited consumer bought again: `exited` is false again."""

    account: str


class DaySettled(NamedTuple):
    """A settle_day closed `day` (the market right after it is the Applied's)."""

    day: int
    sales_fen: Fen  # the day's net sales the dividends came from
    dividends_fen: Fen


class StatusChanged(NamedTuple):
    """An account was frozen or unfrozen (冻结 / 解冻), or an agent ended (`ended`)."""

    account: str
    status: str  # "frozen", "unfrozen" or "ended"


class WithdrawalChanged(NamedTuple):
    """A withdrawal was requested or moved to another state (SPEC §9)."""

    withdrawal: str
    account: str
    status: str


class CollectionIssued(NamedTuple):
    collection: str
    edition: int


class ItemMoved(NamedTuple):
    """A collectible changed hands: claimed (`giver` None) or gifted; or was used (`used`)."""

    item: str
    account: str  # its holder after the move (the user who used it)
    giver: str | None
    used: bool = False


Event = (
    Registered
    | LevelReached
    | Exited
    | Reentered
    | DaySettled
    | StatusChanged
    | WithdrawalChanged
    | CollectionIssued
    | ItemMoved
)


class Payouts(NamedTuple):
    """A settlement's dividends, as it computed them: one payment per consumer slot for the
    holding fund (zeros included; empty if it paid nobody), then each level fund's slots and
    payments. Each payment is SP to the consumer, the same amount off its quota, and the same
    amount on its dividends record."""

    owners: "list[Consumer]"  # the book's owners: a slot's consumer (the list only grows)
    holding: list[int]
    levels: list[tuple[list[int], list[int]]]

    def paid(self) -> Iterator[tuple[int, int]]:
        """(slot, fen) of every payment, holding fund first, then level by level."""
        for slot, fen in enumerate(self.holding):
            if fen:
                yield slot, fen
        for slots, payments in self.levels:
            for slot, fen in zip(slots, payments, strict=True):
                if fen:
                    yield slot, fen

    def postings(self) -> Iterator[Posting]:
        owners = self.owners
        for slot, fen in self.paid():
            yield from _dividend(owners[slot].id, fen)

    def accounts(self) -> Iterator[str]:
        """Each consumer paid, once, in the order first paid."""
        owners = self.owners
        for slot in dict.fromkeys(slot for slot, _ in self.paid()):
            yield owners[slot].id


def _dividend(account: str, fen: int) -> tuple[Posting, Posting, Posting]:
    return ((account, Field.SP, fen), (account, Field.QUOTA, -fen), (account, Field.DIVIDENDS, fen))


class Applied(NamedTuple):
    """What an applied command changed, and the market right after it (forced exits done)."""

    op: str
    postings: tuple[Posting, ...]
    events: tuple[Event, ...]
    payouts: Payouts | None
    pool_fen: Fen
    supply_units: Units
    price: Price

    def all_postings(self) -> Iterator[Posting]:
        yield from self.postings
        if self.payouts is not None:
            yield from self.payouts.postings()

    def accounts(self) -> list[str]:
        """Every account the command changed, each once, in the order first changed."""
        names = [posting[0] for posting in self.postings]
        if self.payouts is not None:
            names.extend(self.payouts.accounts())
        names.extend(
            event.account
            for event in self.events
            if not isinstance(event, DaySettled | CollectionIssued)
        )
        return list(dict.fromkeys(names))


class Effects:
    """Collects a command's postings and events while its rule runs (one per command).

    A consumer's EP and quota change only through `add_ep` and `add_quota`, which post the
    change and note the consumer's slot in `touched`: the rows whose level and exit trigger
    the engine must look at after the command (SPEC §5). Nothing else has to remember them.
    """

    __slots__ = ("events", "payouts", "postings", "touched")

    def __init__(self) -> None:
        self.postings: list[Posting] = []
        self.events: list[Event] = []
        self.payouts: Payouts | None = None
        self.touched: list[int] = []

    def add_ep(self, consumer: "Consumer", units: Units) -> None:
        if units:
            consumer.book.ep[consumer.slot] += units
            self.postings.append((consumer.id, _EP, units))
            self.touched.append(consumer.slot)

    def add_ep_and_quota(self, consumer: "Consumer", units: Units, fen: Fen) -> None:
        """add_ep and add_quota in one call (a cash order's buyer: every order)."""
        slot = consumer.slot
        if units:
            consumer.book.ep[slot] += units
            self.postings.append((consumer.id, _EP, units))
        if fen:
            consumer.book.quota[slot] += fen
            self.postings.append((consumer.id, _QUOTA, fen))
        if units or fen:
            self.touched.append(slot)

    def add_quota(self, consumer: "Consumer", fen: Fen) -> None:
        if fen:
            consumer.book.quota[consumer.slot] += fen
            self.postings.append((consumer.id, _QUOTA, fen))
            self.touched.append(consumer.slot)
