"""Accounts and records of SPEC §3: mutable records with slots; the engine is their only writer."""

from dataclasses import dataclass


@dataclass(slots=True, eq=False)
class Consumer:
    """A consumer (消费者). Money and SP in fen, EP in units of 1e-8."""

    id: str
    referrer: str | None
    ep: int = 0
    sp: int = 0
    locked_sp: int = 0
    quota: int = 0
    level: int = 0
    cash_out: int = 0
    goods: int = 0
    dividends: int = 0
    exited: bool = False
    # The exit-trigger key this consumer holds in the exit queue, or None when it holds no EP.
    trigger_key: int | None = None


@dataclass(slots=True, eq=False)
class Merchant:
    """A merchant (商家): no quota, no level, no dividends, never force-exited."""

    id: str
    ep: int = 0
    sp: int = 0
    cash_out: int = 0


@dataclass(slots=True, eq=False)
class Order:
    """An applied order, kept for duplicate-id checks and same-day refunds."""

    id: str
    user: str
    amount_fen: int
    paid_cash: bool
    day: int
    contribution_fen: int = 0
    quota_fen: int = 0
    buyer_units: int = 0
    # (referrer id, EP units granted), first-level referrer first.
    referrer_grants: tuple[tuple[str, int], ...] = ()
    refunded: bool = False


@dataclass(slots=True, eq=False)
class VestingGrant:
    """Locked SP released over the next `days_left` settlements (grant_stable, 分批释放)."""

    user: str
    per_settlement_fen: int
    days_left: int
    locked_fen: int
