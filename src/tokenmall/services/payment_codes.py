"""Payment codes (付款码): a consumer's one-use consent to be charged SP by a merchant.

The consumer's token asks for a code and shows it (as a barcode or QR code); the merchant's
cashier scans it and submits it with the amount (被扫). A code:
- is used at most once: its first presentation spends it, whatever the rules then decide (a
  refused payment needs a new code), except that the same merchant token retrying the same
  request (same Idempotency-Key) is given the same consent, so the ledger answers it as a replay;
- expires (60 s by default, at most 5 minutes), measured on a monotonic clock;
- may carry a largest amount, checked before it is spent.

Codes live in the server's memory only. They last a minute, and a restart voids them all: a
consumer's app simply shows a new one. What is durable is the consent: the order the code pays
for is journaled with the code's reference, the consumer token that issued it and when.
"""

import hashlib
import heapq
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from tokenmall.core.units import Fen
from tokenmall.ledger.ledger import timestamp, utc_now

CODE_DIGITS = 18  # as the codes of Alipay and WeChat Pay: a barcode of 18 digits
TTL_DEFAULT_S = 60
TTL_MIN_S = 5
TTL_MAX_S = 300
LIVE_PER_CONSUMER_MAX = 3  # a newer code voids the consumer's oldest unused one beyond this
LIVE_MAX = 100_000  # codes held at once in the whole server


@dataclass(frozen=True)
class Consent:
    """What the journal keeps of a payment code: who agreed, and when."""

    user: str
    code: str  # "pc_" and 16 hex digits of the code's SHA-256: names it without revealing it
    issued_by: str  # the consumer token's id
    issued_at: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "issued_by": self.issued_by, "issued_at": self.issued_at}


@dataclass
class _Code:
    consent: Consent
    expires_at_s: float  # monotonic
    max_fen: Fen | None
    used_by: tuple[str, str | None] | None = None  # (merchant token id, its idempotency key)


@dataclass(frozen=True)
class Issued:
    code: str
    user: str
    expires_in_s: int
    expires_at: str
    max_fen: Fen | None


class CodeRefused(Exception):
    """Why a code cannot pay (a message for the merchant)."""


class TooManyCodes(Exception):
    """The server holds LIVE_MAX live codes already."""


@dataclass
class PaymentCodes:
    monotonic: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], datetime] = utc_now
    _codes: dict[str, _Code] = field(default_factory=dict)
    _expiries: list[tuple[float, str]] = field(default_factory=list)  # a heap
    _by_user: dict[str, list[str]] = field(default_factory=dict)  # live codes, oldest first

    def issue(self, user: str, issued_by: str, ttl_s: int, max_fen: Fen | None) -> Issued:
        """A new code for `user`, issued by that consumer's token `issued_by`."""
        now_s, now = self.monotonic(), self.wall_clock()
        self._forget_expired(now_s)
        if len(self._codes) >= LIVE_MAX:
            raise TooManyCodes(f"the server holds {LIVE_MAX} payment codes already")
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        while code in self._codes:  # practically never: 10^18 codes
            code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        reference = "pc_" + hashlib.sha256(code.encode()).hexdigest()[:16]
        consent = Consent(user, reference, issued_by, timestamp(now))
        self._codes[code] = _Code(consent, now_s + ttl_s, max_fen)
        heapq.heappush(self._expiries, (now_s + ttl_s, code))
        live = self._by_user.setdefault(user, [])
        live.append(code)
        while len(live) > LIVE_PER_CONSUMER_MAX:
            self._codes.pop(live.pop(0), None)
        expires_at = timestamp(datetime.fromtimestamp(now.timestamp() + ttl_s, now.tzinfo))
        return Issued(code, user, ttl_s, expires_at, max_fen)

    def spend(self, code: str, merchant_token: str, key: str | None, amount_fen: int) -> Consent:
        """The consent a code gives for this payment, spending the code; CodeRefused if it is
        unknown, expired, used, or for less than `amount_fen`."""
        found = self._codes.get(code)
        if found is None or found.expires_at_s <= self.monotonic():
            raise CodeRefused("this payment code is unknown or expired; ask for a new one")
        if found.used_by is not None:
            if key is not None and found.used_by == (merchant_token, key):
                return found.consent  # the same request again: the ledger answers it as a replay
            raise CodeRefused("this payment code was used already; ask for a new one")
        if found.max_fen is not None and amount_fen > found.max_fen:
            raise CodeRefused("the amount is over this payment code's limit")
        found.used_by = (merchant_token, key)
        return found.consent

    def unspend(self, code: str, merchant_token: str, key: str | None) -> None:
        """The payment was certainly not committed (the ledger refused the whole batch): the
        code may be used again until it expires."""
        found = self._codes.get(code)
        if found is not None and found.used_by == (merchant_token, key):
            found.used_by = None

    def _forget_expired(self, now_s: float) -> None:
        while self._expiries and self._expiries[0][0] <= now_s:
            _, code = heapq.heappop(self._expiries)
            found = self._codes.pop(code, None)
            if found is not None:
                live = self._by_user.get(found.consent.user, [])
                if code in live:
                    live.remove(code)
                if not live:
                    self._by_user.pop(found.consent.user, None)
