"""API keys: ``ps_<user id><key id>_<secret>``, of which only the secret's SHA-256 is stored."""

from __future__ import annotations

import dataclasses
import hashlib
import string
import uuid

import pytest

from photostore import ids
from photostore.domain import Scope
from photostore.pipeline.keys import PREFIX, issue_key, parse_key, secret_matches, secret_sha256

USER = ids.make_id(0xDEADBEEF, unix_ms=1_700_000_000_000)
KEY_ID = "0123456789abcdef"
SCOPES = frozenset({Scope.READ, Scope.WRITE})


def token(user_hex: str = USER.hex, key_id: str = KEY_ID, secret: str | None = None) -> str:
    return f"{PREFIX}{user_hex}{key_id}_{'s3cret' if secret is None else secret}"


def test_issue_parse_round_trip() -> None:
    plaintext, record = issue_key(USER, SCOPES)
    parsed = parse_key(plaintext)
    assert parsed is not None
    assert parsed.user_id == USER == record.user_id
    assert parsed.key_id == record.key_id
    assert record.scopes == SCOPES
    assert record.revoked_at is None
    assert record.created_at.tzinfo is not None
    assert plaintext == f"{PREFIX}{USER.hex}{record.key_id}_{parsed.secret}"
    assert secret_matches(record.secret_sha256, parsed.secret)


def test_issued_keys_have_the_documented_shape() -> None:
    plaintext, record = issue_key(USER, SCOPES)
    assert plaintext.startswith(PREFIX + USER.hex)
    assert len(record.key_id) == 16
    assert set(record.key_id) <= set(string.hexdigits.lower())
    parsed = parse_key(plaintext)
    assert parsed is not None
    assert len(parsed.secret) >= 43  # 256 random bits, url-safe base64
    assert set(parsed.secret) <= set(string.ascii_letters + string.digits + "-_")


def test_only_the_sha256_of_the_secret_is_in_the_record() -> None:
    plaintext, record = issue_key(USER, SCOPES)
    parsed = parse_key(plaintext)
    assert parsed is not None
    assert record.secret_sha256 == hashlib.sha256(parsed.secret.encode()).digest()
    assert len(record.secret_sha256) == 32
    for value in dataclasses.astuple(record):
        assert parsed.secret not in str(value)
        assert plaintext not in str(value)
    assert parsed.secret not in repr(record)


def test_every_issue_is_a_new_key() -> None:
    issued = [issue_key(USER, SCOPES) for _ in range(50)]
    assert len({plaintext for plaintext, _ in issued}) == 50
    assert len({record.key_id for _, record in issued}) == 50
    assert len({record.secret_sha256 for _, record in issued}) == 50


def test_a_secret_may_contain_underscores() -> None:
    # token_urlsafe uses '_': only the first '_' after the key id separates the secret.
    parsed = parse_key(token(secret="a_b__c-"))
    assert parsed is not None
    assert parsed.secret == "a_b__c-"
    assert parsed.key_id == KEY_ID


def test_longest_accepted_secret() -> None:
    assert parse_key(token(secret="x" * 128)) is not None
    assert parse_key(token(secret="x" * 129)) is None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ps_",
        token().removeprefix(PREFIX),  # no prefix
        "pk_" + token().removeprefix(PREFIX),  # wrong prefix
        "PS_" + token().removeprefix(PREFIX),  # prefixes are case-sensitive
        token(user_hex=USER.hex[:-1]),  # user id one digit short
        token(user_hex=USER.hex + "0"),  # user id one digit long
        token(key_id=KEY_ID[:-1]),  # key id one digit short
        token(key_id=KEY_ID + "0"),  # key id one digit long
        token(user_hex="g" + USER.hex[1:]),  # user id not hex
        token(key_id="z" + KEY_ID[1:]),  # key id not hex
        token(user_hex="{" + USER.hex[1:-1] + "}"),  # braces that uuid.UUID would strip
        token(user_hex=USER.hex[:8] + "-" + USER.hex[9:]),  # a dash that uuid.UUID would strip
        token(secret=""),  # empty secret
        f"{PREFIX}{USER.hex}{KEY_ID}",  # no separator, no secret
        token(secret="x" * 1000),  # over-long
        "Bearer " + token(),
    ],
)
def test_malformed_tokens_are_refused(bad: str) -> None:
    assert parse_key(bad) is None


@pytest.mark.parametrize(
    "key_id", ["0x0123456789abcd", "+0123456789abcde", "-0123456789abcde", " 0123456789abcd "]
)
def test_key_ids_that_are_not_hex_digits_are_refused(key_id: str) -> None:
    assert len(key_id) == 16
    assert parse_key(token(key_id=key_id)) is None


def test_secret_matches() -> None:
    stored = secret_sha256("right")
    assert secret_matches(stored, "right")
    assert not secret_matches(stored, "wrong")
    assert not secret_matches(stored, "right ")
    assert not secret_matches(stored, "")
    assert not secret_matches(hashlib.sha256(b"right").digest()[:31], "right")  # truncated digest
    assert secret_matches(hashlib.sha256("é".encode()).digest(), "é")


def test_user_id_in_a_token_round_trips_for_any_user() -> None:
    for _ in range(20):
        user = uuid.UUID(int=ids.new_user_id().int)
        parsed = parse_key(issue_key(user, frozenset({Scope.ADMIN}))[0])
        assert parsed is not None
        assert parsed.user_id == user
