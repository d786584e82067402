"""The journal's hash chain and the canonical bytes of a command. Pure: no I/O.

Entry n's hash is SHA-256(hash of entry n-1 ‖ seq, recorded_at, key, outcome and command joined
by U+001F).
Entry 1 chains to the genesis hash, which commits to the ledger's starting parameters, so an
edit to any entry, to the parameters, or to the order of entries changes every later hash.
"""

import hashlib
import json
from typing import Any

CHAIN_FORMAT = "tokenmall-journal-v1"
OUTCOME_OK = "ok"
KEY_CHARS_MAX = 255


def canonical_command(command: dict[str, Any]) -> str:
    """The command as compact JSON with sorted keys, without its idempotency key: the bytes the
    journal stores and hashes. ValueError for what JSON text cannot carry."""
    body = {name: value for name, value in command.items() if name != "key"}
    try:
        text = json.dumps(
            body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        text.encode("utf-8")  # a lone surrogate ("\ud800") is not Unicode text
    except ValueError:  # NaN, infinity: also what an integer of more than 40 digits decodes to
        raise ValueError("a number is out of range (NaN, infinity or over 40 digits)") from None
    except UnicodeEncodeError:
        raise ValueError("a string is not valid Unicode (a lone surrogate)") from None
    except (TypeError, RecursionError):
        raise ValueError("not made of JSON values") from None
    return text


def genesis_hash(params_json: str) -> str:
    """The chain's anchor: the format name and the ledger's starting parameters."""
    return hashlib.sha256(f"{CHAIN_FORMAT}\n{params_json}".encode()).hexdigest()


def entry_hash(
    previous_hash: str, seq: int, recorded_at: str, key: str | None, outcome: str, command: str
) -> str:
    # Fields joined by the unit separator U+001F, which none can hold: keys are printable, the
    # other fields are digits, a timestamp, an error code, and JSON (which escapes controls).
    # So the bytes are unambiguous, and cheaper to build than a JSON array.
    fields = f"{seq}\x1f{recorded_at}\x1f{key or ''}\x1f{outcome}\x1f{command}"
    return hashlib.sha256(bytes.fromhex(previous_hash) + fields.encode()).hexdigest()


def check_key(key: object) -> str | None:
    """An idempotency key as given (None: absent), or ValueError saying what is wrong."""
    if key is None:
        return None
    if type(key) is not str or not 0 < len(key) <= KEY_CHARS_MAX:
        raise ValueError(f'"key" must be a string of 1-{KEY_CHARS_MAX} characters')
    if not key.isprintable():
        raise ValueError('"key" must be printable text')
    return key


def decode_entry_command(text: str) -> dict[str, Any] | None:
    """A stored command back as a dict; None if the text is not one (only tampering does that)."""
    try:
        command = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return command if isinstance(command, dict) else None


def outcome_of(code: str | None) -> str:
    """What the journal records for a command the rules applied (None) or rejected (its code)."""
    return OUTCOME_OK if code is None else str(code)


def entry_is_intact(
    previous_hash: str,
    seq: int,
    recorded_at: str,
    key: str | None,
    outcome: str,
    command: str,
    stored_hash: str,
) -> bool:
    """The stored hash is the one the entry's fields give after `previous_hash`, and the key is
    one the writer could have stored (an empty key would hash like none at all)."""
    fields_hash = entry_hash(previous_hash, seq, recorded_at, key, outcome, command)
    return stored_hash == fields_hash and key_is_valid(key)


def key_is_valid(key: str | None) -> bool:
    try:
        check_key(key)
    except ValueError:
        return False
    return True
