"""Standard Webhooks signing and verification (tokenmall.payouts.webhooks), checked against the
specification's test vectors and by properties."""

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmall.payouts.webhooks import (
    WebhookConfigError,
    WebhookRefused,
    headers,
    new_secret,
    secret_key,
    sign,
    verify,
)

# The test vectors of the reference libraries, github.com/standard-webhooks/standard-webhooks at
# b2fa7b8719fb75d326b591077f5d1b385cfcdfae. The first is the one every library checks
# (libraries/python/tests/test_webhooks.py `test_sign_function`, and the same in go, javascript,
# java, csharp, php and ruby); the second is libraries/rust/src/lib.rs `test_sign`.
VECTORS = [
    (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ),
    (
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1649367553,
        b'{"email":"test@example.com","username":"test_user"}',
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    ),
]
# A wrong signature from the same python tests (`test_invalid_signature_raises_error`): the
# first vector's with its last base64 digit changed.
WRONG_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="

SECRET = VECTORS[0][0]
MESSAGE_ID = VECTORS[0][1]
NOW_S = VECTORS[0][2]
BODY = VECTORS[0][3]


def refusal(
    header_map: dict[str, str],
    body: bytes = BODY,
    now_s: int = NOW_S,
    secret: str | list[str] = SECRET,
) -> str:
    with pytest.raises(WebhookRefused) as refused:
        verify(secret, header_map, body, now_s)
    assert "\n" not in str(refused.value)
    return refused.value.code


@pytest.mark.parametrize(("secret", "message_id", "timestamp_s", "body", "expected"), VECTORS)
def test_the_specification_vectors_sign_and_verify(
    secret: str, message_id: str, timestamp_s: int, body: bytes, expected: str
) -> None:
    assert sign(secret, message_id, timestamp_s, body) == expected
    header_map = {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": expected,
    }
    assert headers(secret, message_id, timestamp_s, body) == header_map
    assert verify(secret, header_map, body, timestamp_s) == message_id


def test_the_reference_wrong_signature_is_refused() -> None:
    header_map = headers(SECRET, MESSAGE_ID, NOW_S, BODY)
    header_map["webhook-signature"] = WRONG_SIGNATURE
    assert refusal(header_map) == "bad_signature"


def test_a_new_secret_round_trips() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(secret_key(secret)) == 32
    assert new_secret() != secret
    body = b'{"type": "payout.requested"}'
    assert verify(secret, headers(secret, "msg_1", 1_700_000_000, body), body, 1_700_000_000)


def test_a_changed_body_id_or_timestamp_is_refused() -> None:
    header_map = headers(SECRET, MESSAGE_ID, NOW_S, BODY)
    assert refusal(header_map, body=BODY + b" ") == "bad_signature"
    assert refusal(header_map, body=b"") == "bad_signature"
    assert refusal({**header_map, "webhook-id": MESSAGE_ID + "x"}) == "bad_signature"
    assert refusal({**header_map, "webhook-timestamp": str(NOW_S + 1)}) == "bad_signature"
    # What is signed is the timestamp's value, as in the reference libraries (they parse it,
    # then write it again): a zero-padded header names the same second and verifies.
    assert verify(SECRET, {**header_map, "webhook-timestamp": f"0{NOW_S}"}, BODY, NOW_S)


@pytest.mark.parametrize("tolerance_s", [0, 300])
def test_a_timestamp_beyond_the_tolerance_either_way_is_stale(tolerance_s: int) -> None:
    for sent_s in (NOW_S - tolerance_s, NOW_S + tolerance_s):
        header_map = headers(SECRET, MESSAGE_ID, sent_s, BODY)
        assert verify(SECRET, header_map, BODY, NOW_S, tolerance_s) == MESSAGE_ID
    for sent_s in (NOW_S - tolerance_s - 1, NOW_S + tolerance_s + 1):
        header_map = headers(SECRET, MESSAGE_ID, sent_s, BODY)
        with pytest.raises(WebhookRefused) as refused:
            verify(SECRET, header_map, BODY, NOW_S, tolerance_s)
        assert refused.value.code == "stale_timestamp"


def test_the_default_tolerance_is_five_minutes() -> None:
    assert verify(SECRET, headers(SECRET, MESSAGE_ID, NOW_S - 300, BODY), BODY, NOW_S)
    assert refusal(headers(SECRET, MESSAGE_ID, NOW_S - 301, BODY)) == "stale_timestamp"
    assert refusal(headers(SECRET, MESSAGE_ID, NOW_S + 301, BODY)) == "stale_timestamp"


@pytest.mark.parametrize(
    "timestamp", ["hello", "1614265330.0", "1e9", "-1614265330", " 1614265330", "+1", "١٢٣", ""]
)
def test_a_timestamp_that_is_not_an_integer_is_refused(timestamp: str) -> None:
    header_map = {**headers(SECRET, MESSAGE_ID, NOW_S, BODY), "webhook-timestamp": timestamp}
    expected = "missing_headers" if timestamp == "" else "bad_timestamp"
    assert refusal(header_map) == expected


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_or_empty_header_is_refused(name: str) -> None:
    header_map = headers(SECRET, MESSAGE_ID, NOW_S, BODY)
    assert refusal({k: v for k, v in header_map.items() if k != name}) == "missing_headers"
    assert refusal({**header_map, name: ""}) == "missing_headers"
    assert refusal({}) == "missing_headers"


def test_several_signatures_with_one_valid_pass() -> None:
    # The list of the python reference test `test_multi_sig_payload_is_valid`.
    valid = sign(SECRET, MESSAGE_ID, NOW_S, BODY)
    entries = [
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        valid,
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
    ]
    header_map = {
        **headers(SECRET, MESSAGE_ID, NOW_S, BODY),
        "webhook-signature": " ".join(entries),
    }
    assert verify(SECRET, header_map, BODY, NOW_S) == MESSAGE_ID
    without_valid = " ".join(entry for entry in entries if entry != valid)
    assert refusal({**header_map, "webhook-signature": without_valid}) == "bad_signature"


def test_other_versions_and_malformed_entries_are_skipped() -> None:
    digest = sign(SECRET, MESSAGE_ID, NOW_S, BODY).removeprefix("v1,")
    header_map = headers(SECRET, MESSAGE_ID, NOW_S, BODY)
    # The right digest under another version is not a v1 signature.
    for other in (f"v1a,{digest}", f"v2,{digest}", f"V1,{digest}", digest, "v1,", "v1,!!!"):
        assert refusal({**header_map, "webhook-signature": other}) == "bad_signature"
    # The specification's example header: a v1 entry, then an ed25519 (v1a) one.
    mixed = (
        f"v1,{digest} v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpX"
        "wVLPo3mNl8EM+m7TBAg=="
    )
    assert verify(SECRET, {**header_map, "webhook-signature": mixed}, BODY, NOW_S)
    spaced = f"garbage  v1a,xyz v1,{digest}"
    assert verify(SECRET, {**header_map, "webhook-signature": spaced}, BODY, NOW_S)


def test_header_names_are_case_insensitive() -> None:
    header_map = headers(SECRET, MESSAGE_ID, NOW_S, BODY)
    for change in (str.upper, str.title, lambda name: name[0].upper() + name[1:]):
        changed = {change(name): value for name, value in header_map.items()}
        assert verify(SECRET, changed, BODY, NOW_S) == MESSAGE_ID
    # One header in two spellings: the same value is harmless, different values are refused.
    both = {**header_map, "Webhook-Id": MESSAGE_ID}
    assert verify(SECRET, both, BODY, NOW_S) == MESSAGE_ID
    assert refusal({**header_map, "Webhook-Id": "msg_other"}) == "missing_headers"


def test_during_a_rotation_any_secret_may_match() -> None:
    old, new = SECRET, new_secret()
    for signer in (old, new):
        header_map = headers(signer, MESSAGE_ID, NOW_S, BODY)
        assert verify([new, old], header_map, BODY, NOW_S) == MESSAGE_ID
        assert verify((old, new), header_map, BODY, NOW_S) == MESSAGE_ID
    # The sender signs with both during the rotation: one header, two entries.
    both = f"{sign(old, MESSAGE_ID, NOW_S, BODY)} {sign(new, MESSAGE_ID, NOW_S, BODY)}"
    header_map = {**headers(new, MESSAGE_ID, NOW_S, BODY), "webhook-signature": both}
    assert verify(new, header_map, BODY, NOW_S) == MESSAGE_ID
    assert verify(old, header_map, BODY, NOW_S) == MESSAGE_ID
    assert refusal(headers(old, MESSAGE_ID, NOW_S, BODY), secret=[new]) == "bad_signature"
    with pytest.raises(WebhookConfigError):
        verify([], headers(old, MESSAGE_ID, NOW_S, BODY), BODY, NOW_S)


def test_oversized_headers_are_refused() -> None:
    header_map = headers(SECRET, MESSAGE_ID, NOW_S, BODY)
    padded = header_map["webhook-signature"] + " " + "v2," + "A" * 4096
    assert refusal({**header_map, "webhook-signature": padded}) == "missing_headers"
    valid = header_map["webhook-signature"]
    at_limit = " ".join([valid, "x" * (4096 - len(valid) - 1)])
    assert len(at_limit) == 4096
    assert verify(SECRET, {**header_map, "webhook-signature": at_limit}, BODY, NOW_S)
    long_id = "m" * 256
    assert verify(SECRET, headers(SECRET, long_id, NOW_S, BODY), BODY, NOW_S) == long_id
    too_long = {**header_map, "webhook-id": "m" * 257}
    assert refusal(too_long) == "missing_headers"
    with pytest.raises(ValueError):
        sign(SECRET, "m" * 257, NOW_S, BODY)
    with pytest.raises(ValueError):
        sign(SECRET, "", NOW_S, BODY)
    with pytest.raises(ValueError):
        sign(SECRET, MESSAGE_ID, -1, BODY)


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix (the reference library allows it)
        "whsec_",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa",  # 20 bytes
        "whsec_" + base64.b64encode(bytes(23)).decode(),
        "whsec_" + base64.b64encode(bytes(65)).decode(),
        "whsec_" + "A" * 1000,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!",  # outside the base64 alphabet
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwA",  # 33 characters cannot be base64
        "whsec_MfKQ9r8GKYqrTwjU_D8ILPZIo2LaLaSw",  # url-safe base64 is another alphabet
        "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ],
)
def test_a_malformed_secret_is_a_config_error_that_does_not_show_it(secret: str) -> None:
    for action in (
        lambda: secret_key(secret),
        lambda: sign(secret, MESSAGE_ID, NOW_S, BODY),
        lambda: verify([SECRET, secret], headers(SECRET, MESSAGE_ID, NOW_S, BODY), BODY, NOW_S),
    ):
        with pytest.raises(WebhookConfigError) as error:
            action()
        message = str(error.value)
        assert isinstance(error.value, ValueError)
        assert "\n" not in message
        assert secret.removeprefix("whsec_") not in message or secret == "whsec_"


def test_secrets_of_the_allowed_sizes_and_unpadded_base64_are_accepted() -> None:
    assert len(secret_key("whsec_" + base64.b64encode(bytes(24)).decode())) == 24
    assert len(secret_key("whsec_" + base64.b64encode(bytes(64)).decode())) == 64
    padded = "whsec_" + base64.b64encode(bytes(range(25))).decode()
    assert padded.endswith("=")
    assert secret_key(padded.rstrip("=")) == bytes(range(25))


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=2000),
    message_id=st.text(min_size=1, max_size=256),
    timestamp_s=st.integers(0, 10**11),
    position=st.integers(0),
    replacement=st.integers(0, 255),
)
def test_what_is_signed_verifies_and_any_byte_changed_is_refused(
    body: bytes, message_id: str, timestamp_s: int, position: int, replacement: int
) -> None:
    header_map = headers(SECRET, message_id, timestamp_s, body)
    assert verify(SECRET, header_map, body, timestamp_s) == message_id
    index = position % len(body)
    changed = bytearray(body)
    changed[index] = replacement if replacement != body[index] else (replacement + 1) % 256
    with pytest.raises(WebhookRefused) as refused:
        verify(SECRET, header_map, bytes(changed), timestamp_s)
    assert refused.value.code == "bad_signature"
