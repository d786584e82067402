"""The journal's hash chain and the canonical bytes of a command. Pure: no I/O.

Entry n's hash is SHA-256(hash of entry n-1 ‖ seq, recorded_at, key, outcome and command joined
by U+001F, then, for an entry that names who submitted it, U+001F and that actor).
Entry 1 chains to the genesis hash, which commits to the ledger's starting parameters, so an
edit to any entry, to the parameters, or to the order of entries changes every later hash.
"""

import hashlib
import json
from typing import Any

CHAIN_FORMAT = "tokenmall-journal-v1"
OUTCOME_OK = "ok"
KEY_CHARS_MAX = 255
ACTOR_CHARS_MAX = 80
# One encoder for every command: json.dumps with options builds one a call (a third of its cost).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonical_command(command: dict[str, Any]) -> str:
    """The command as compact JSON with sorted keys, without its idempotency key: the bytes the
    journal stores and hashes. ValueError for what JSON text cannot carry."""
    body = {name: value for name, value in command.items() if name != "key"}
    try:
        text = _CANONICAL(body)
        text.encode("utf-8")  # a lone surrogate ("\ud800") is not Unicode text
    except UnicodeEncodeError:  # first: it is a ValueError too
        raise ValueError("a string is not valid Unicode (a lone surrogate)") from None
    except ValueError:  # NaN, infinity: also what an integer of more than 40 digits decodes to
        raise ValueError("a number is out of range (NaN, infinity or over 40 digits)") from None
    except (TypeError, RecursionError):
        raise ValueError("not made of JSON values") from None
    return text


def genesis_hash(params_json: str) -> str:
    """The chain's anchor: the format name and the ledger's starting parameters."""
    return hashlib.sha256(f"{CHAIN_FORMAT}\n{params_json}".encode()).hexdigest()


def entry_hash(
    previous_hash: str,
    seq: int,
    recorded_at: str,
    key: str | None,
    outcome: str,
    command: str,
    actor: str | None = None,
) -> str:
    # Fields joined by the unit separator U+001F, which none can hold: keys and actors are
    # printable, the other fields are digits, a timestamp, an error code, and JSON (which escapes
    # controls). So the bytes are unambiguous, and cheaper to build than a JSON array. The actor
    # comes last and only when there is one, so entries journaled before actors were recorded
    # keep their hashes: a ledger made then still verifies.
    fields = f"{seq}\x1f{recorded_at}\x1f{key or ''}\x1f{outcome}\x1f{command}"
    if actor is not None:
        fields += f"\x1f{actor}"
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


def check_actor(actor: str | None) -> str | None:
    """Who submitted a command ("role:token id", "cli:user"), or ValueError."""
    if actor is None:
        return None
    if not 0 < len(actor) <= ACTOR_CHARS_MAX or not actor.isprintable():
        raise ValueError(f"an actor must be 1-{ACTOR_CHARS_MAX} printable characters")
    return actor


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


def outcome_agrees(recorded: str, computed: str, rules_v1: bool) -> bool:
    """Whether replaying an entry gave what the journal records. An entry journaled under
    SPEC v1 (before the ledger moved to v2, decision 81) and rejected then may be rejected
    now under another code: v2 reports structure errors first, and null fields as
    invalid_command. A rejection changes nothing either way, so only "applied" must agree."""
    if recorded == computed:
        return True
    return rules_v1 and OUTCOME_OK not in (recorded, computed)


def entry_is_intact(
    previous_hash: str,
    seq: int,
    recorded_at: str,
    key: str | None,
    outcome: str,
    command: str,
    stored_hash: str,
    actor: str | None = None,
) -> bool:
    """The stored hash is the one the entry's fields give after `previous_hash`, and the key and
    actor are ones the writer could have stored (an empty one would hash like none at all)."""
    fields_hash = entry_hash(previous_hash, seq, recorded_at, key, outcome, command, actor)
    return stored_hash == fields_hash and key_is_valid(key) and actor_is_valid(actor)


def key_is_valid(key: str | None) -> bool:
    try:
        check_key(key)
    except ValueError:
        return False
    return True


def actor_is_valid(actor: str | None) -> bool:
    try:
        check_actor(actor)
    except ValueError:
        return False
    return True
