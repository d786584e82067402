"""Standard Webhooks (https://www.standardwebhooks.com/): signed HTTP messages between tokenmall
and a payout service, both ways (payout requests out, outcome callbacks in).

The symmetric scheme of the specification (standard-webhooks/standard-webhooks,
spec/standard-webhooks.md), as its reference Python library verifies it
(libraries/python/standardwebhooks/webhooks.py):
- the secret is `whsec_` and the base64 of 24 to 64 random bytes;
- a message carries `webhook-id`, `webhook-timestamp` (integer Unix seconds) and
  `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256>` entries over the bytes
  `{id}.{timestamp}.{body}`; entries of other versions (`v1a,` is ed25519) are skipped;
- a receiver refuses a timestamp more than the tolerance (5 minutes) from its clock, either way,
  and accepts a message if any entry matches, compared in constant time.

Stricter than the reference library, on purpose: the secret must carry its `whsec_` prefix and
decode to 24 to 64 bytes (a short key is a configuration mistake we want at start, not a weak
signature for months); the timestamp must be ASCII digits (the reference's `float()` takes
"1614265330.5" and "1e9", the specification says integer); the signature header and the id have
size limits; an entry without a comma or with bad base64 is skipped instead of raising.
"""

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Literal

SECRET_PREFIX = "whsec_"
SECRET_BYTES_MIN = 24  # the specification's range for HMAC-SHA256 secrets
SECRET_BYTES_MAX = 64
NEW_SECRET_BYTES = 32  # a full SHA-256 block's worth of entropy is more than enough
# base64 of 64 bytes is 88 characters: anything longer is refused before decoding it
SECRET_BASE64_CHARS_MAX = 88
SIGNATURE_VERSION = "v1"  # HMAC-SHA256; "v1a" (ed25519) is not ours to check
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
# About 90 entries of 48 characters: room for a rotation or two, not for a flood of guesses
SIGNATURE_HEADER_CHARS_MAX = 4096
MESSAGE_ID_CHARS_MAX = 256
TOLERANCE_DEFAULT_S = 300  # the specification's 5 minutes
# Digits only, and few enough that the integer stays small (year 5138 at 12 digits)
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

RefusalCode = Literal["missing_headers", "bad_timestamp", "stale_timestamp", "bad_signature"]


class WebhookConfigError(ValueError):
    """A secret that is not `whsec_` and the base64 of 24 to 64 bytes. The message never
    contains the secret: it goes to logs."""


class WebhookRefused(Exception):
    """A message the receiver must not act on. `code` says why: `missing_headers` (a header is
    absent, empty, given twice with different values, or over its size limit), `bad_timestamp`
    (not an integer), `stale_timestamp` (beyond the tolerance, past or future), `bad_signature`
    (no v1 entry matches any secret)."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code: RefusalCode = code


def new_secret() -> str:
    """A fresh secret to share with one payout service (one per endpoint, as the spec asks)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(NEW_SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a secret encodes; WebhookConfigError if it is malformed."""
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookConfigError(f"a webhook secret must start with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    if len(encoded) > SECRET_BASE64_CHARS_MAX:
        raise WebhookConfigError(f"a webhook secret encodes at most {SECRET_BYTES_MAX} bytes")
    # Unpadded base64 is accepted, as the reference libraries accept it; `validate` refuses
    # characters outside the alphabet instead of silently dropping them.
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise WebhookConfigError("a webhook secret after 'whsec_' must be base64") from None
    if not SECRET_BYTES_MIN <= len(key) <= SECRET_BYTES_MAX:
        raise WebhookConfigError(
            f"a webhook secret must encode {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} bytes,"
            f" not {len(key)}"
        )
    return key


def sign(secret: str, message_id: str, timestamp_s: int, body: bytes) -> str:
    """The `webhook-signature` value for one message: `v1,<base64 HMAC-SHA256>`."""
    # Refuse here what every receiver would refuse, so the sender learns it at once.
    if not message_id or len(message_id) > MESSAGE_ID_CHARS_MAX:
        raise ValueError(f"a webhook id has 1 to {MESSAGE_ID_CHARS_MAX} characters")
    if not 0 <= timestamp_s < 10**12:
        raise ValueError("a webhook timestamp is a non-negative number of seconds")
    digest = _digest(secret_key(secret), message_id, timestamp_s, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def headers(secret: str, message_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one message."""
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp_s),
        SIGNATURE_HEADER: sign(secret, message_id, timestamp_s, body),
    }


def verify(
    secret: str | Sequence[str],
    header_map: Mapping[str, str],
    body: bytes,
    now_s: int,
    tolerance_s: int = TOLERANCE_DEFAULT_S,
) -> str:
    """The message id of an authentic, fresh message; WebhookRefused otherwise. Several secrets
    verify a message during a rotation: any may match. The body must be the bytes received,
    not JSON parsed and written again."""
    # Our own configuration first: a bad secret is our mistake, not the sender's.
    keys = [secret_key(one) for one in ([secret] if isinstance(secret, str) else secret)]
    if not keys:
        raise WebhookConfigError("no webhook secret to verify with")
    if tolerance_s < 0:
        raise ValueError("the timestamp tolerance is a non-negative number of seconds")
    message_id, timestamp_text, signatures = _webhook_headers(header_map)
    timestamp_s = _fresh_timestamp(timestamp_text, now_s, tolerance_s)
    expected = [_digest(key, message_id, timestamp_s, body) for key in keys]
    for entry in signatures.split(" "):
        version, comma, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION or not comma:
            continue  # another scheme, or an empty entry between two spaces
        try:
            given = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        if any(hmac.compare_digest(given, digest) for digest in expected):
            return message_id
    raise WebhookRefused("bad_signature", "no v1 signature in webhook-signature matches")


def _digest(key: bytes, message_id: str, timestamp_s: int, body: bytes) -> bytes:
    mac = hmac.new(key, f"{message_id}.{timestamp_s}.".encode(), hashlib.sha256)
    mac.update(body)  # not concatenated: a large body is not copied
    return mac.digest()


def _webhook_headers(header_map: Mapping[str, str]) -> tuple[str, str, str]:
    """(id, timestamp, signatures), whatever the case of the header names."""
    found: dict[str, str] = {}
    for name, value in header_map.items():
        lowered = name.lower()
        if lowered not in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER):
            continue
        # Two spellings of one header with different values: which one did the sender sign?
        if found.get(lowered, value) != value:
            raise WebhookRefused("missing_headers", f"{lowered} is given twice")
        found[lowered] = value
    missing = [n for n in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER) if not found.get(n)]
    if missing:
        raise WebhookRefused("missing_headers", f"missing header(s): {', '.join(missing)}")
    if len(found[ID_HEADER]) > MESSAGE_ID_CHARS_MAX:
        raise WebhookRefused(
            "missing_headers", f"webhook-id is longer than {MESSAGE_ID_CHARS_MAX} characters"
        )
    if len(found[SIGNATURE_HEADER]) > SIGNATURE_HEADER_CHARS_MAX:
        raise WebhookRefused(
            "missing_headers",
            f"webhook-signature is longer than {SIGNATURE_HEADER_CHARS_MAX} characters",
        )
    return found[ID_HEADER], found[TIMESTAMP_HEADER], found[SIGNATURE_HEADER]


def _fresh_timestamp(text: str, now_s: int, tolerance_s: int) -> int:
    if not _TIMESTAMP.fullmatch(text):
        raise WebhookRefused("bad_timestamp", "webhook-timestamp is not an integer of seconds")
    timestamp_s = int(text)
    if now_s - timestamp_s > tolerance_s:
        raise WebhookRefused(
            "stale_timestamp",
            f"webhook-timestamp is {now_s - timestamp_s} s old, more than {tolerance_s} s",
        )
    if timestamp_s - now_s > tolerance_s:
        raise WebhookRefused(
            "stale_timestamp",
            f"webhook-timestamp is {timestamp_s - now_s} s ahead, more than {tolerance_s} s",
        )
    return timestamp_s
