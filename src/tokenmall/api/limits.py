"""The server's limits (TigerBeetle: a limit on everything), with their defaults. `tokenmall
serve` sets them from its options; docs/security.md explains each."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tokenmall.core.units import FEN_PER_CNY, Fen
from tokenmall.ledger.writer import QUEUE_MAX_DEFAULT
from tokenmall.services.tokens import Role

# Requests per second per token, by role (a burst of 2 s worth). 0: no limit. A consumer's app
# or a cashier makes a few requests a second; the mall's back end and scripts many more.
RATES_PER_S_DEFAULT: Mapping[str, float] = MappingProxyType(
    {
        Role.CONSUMER: 10,
        Role.MERCHANT: 50,
        Role.AGENT: 10,
        Role.FINANCE: 200,
        Role.INTEGRATION: 2_000,
        Role.ADMIN: 2_000,
    }
)


@dataclass(frozen=True)
class Limits:
    order_max_fen: Fen = 100_000 * FEN_PER_CNY  # 100,000.00 CNY: the largest single order
    rates_per_s: Mapping[str, float] = field(default_factory=lambda: RATES_PER_S_DEFAULT)
    header_bytes_max: int = 16 * 1024  # request line and headers; 431 above
    request_timeout_s: float = 10.0  # from a request's first byte to its last; 408 after
    connections_max: int = 1_000  # open connections; more are answered 503 and closed
    queue_max: int = QUEUE_MAX_DEFAULT  # commands and reads waiting for the writer; 503 above
