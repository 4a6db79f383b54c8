"""API keys: ``ps_<user id><key id>_<secret>``.

The key names its user and key id, so verification reads one row on the user's shard with no
global index. Only SHA-256 of the 256-bit random secret is stored: a fast hash is right for
high-entropy secrets (as GitHub and Stripe tokens do); a slow password hash would only cost latency.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from photostore.domain import ApiKey, Scope

PREFIX = "ps_"
_USER_HEX = 32
_KEY_ID_HEX = 16
_HEX = re.compile(f"[0-9a-f]{{{_USER_HEX + _KEY_ID_HEX}}}")


@dataclass(frozen=True, slots=True)
class ParsedKey:
    user_id: uuid.UUID
    key_id: str
    secret: str


def secret_sha256(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def issue_key(user_id: uuid.UUID, scopes: frozenset[Scope]) -> tuple[str, ApiKey]:
    """A new key: the plaintext token (shown once) and the record to store."""
    key_id = secrets.token_hex(_KEY_ID_HEX // 2)
    secret = secrets.token_urlsafe(32)
    token = f"{PREFIX}{user_id.hex}{key_id}_{secret}"
    record = ApiKey(
        key_id=key_id,
        user_id=user_id,
        secret_sha256=secret_sha256(secret),
        scopes=scopes,
        created_at=datetime.now(UTC),
    )
    return token, record


def parse_key(token: str) -> ParsedKey | None:
    """Split a token into its parts; None when it is not shaped like one of ours."""
    if not token.startswith(PREFIX):
        return None
    ident, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or len(ident) != _USER_HEX + _KEY_ID_HEX or not secret or len(secret) > 128:
        return None
    if _HEX.fullmatch(ident) is None:
        return None
    return ParsedKey(user_id=uuid.UUID(hex=ident[:_USER_HEX]), key_id=ident[_USER_HEX:], secret=secret)


def secret_matches(stored_sha256: bytes, secret: str) -> bool:
    return hmac.compare_digest(stored_sha256, secret_sha256(secret))
