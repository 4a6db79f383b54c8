"""Who is calling: bearer API keys, verified against the user's shard and cached briefly."""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from photostore.cache.tiered import TieredCache
from photostore.domain import Scope
from photostore.errors import Forbidden, Unauthorized
from photostore.metadata.port import MetadataStore
from photostore.pipeline.keys import parse_key, secret_matches, secret_sha256
from photostore.pipeline.memo import Memo

# A revoked key keeps working on a process for at most this long (its cached verdict's lifetime).
AUTH_CACHE_TTL_S = 30.0
VERIFIED_MEMO_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    key_id: str
    scopes: frozenset[Scope]

    def can(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes

    def require(self, scope: Scope) -> None:
        if not self.can(scope):
            raise Forbidden(f"this API key lacks the {scope.value!r} scope")


def _bearer(header: str | None) -> str:
    if not header:
        raise Unauthorized("send 'Authorization: Bearer <api key>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <api key>'")
    return token.strip()


class Authenticator:
    def __init__(
        self, metadata: MetadataStore, cache: TieredCache, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._metadata = metadata
        self._cache = cache
        # Verified headers of this process: a repeat request skips parsing and hashing.
        self._verified: Memo[str, Principal] = Memo(VERIFIED_MEMO_SIZE, AUTH_CACHE_TTL_S, clock)

    def verified(self, header: str) -> Principal | None:
        """The principal of an Authorization header this process verified recently, else None."""
        return self._verified.get(header)

    def forget(self) -> None:
        self._verified.clear()

    async def authenticate(self, header: str | None) -> Principal:
        if header is not None and (known := self._verified.get(header)) is not None:
            return known
        principal = await self._verify(header)
        assert header is not None  # _verify refuses a missing header
        self._verified.put(header, principal)
        return principal

    async def _verify(self, header: str | None) -> Principal:
        token = _bearer(header)
        parsed = parse_key(token)
        if parsed is None:
            raise Unauthorized("the API key is malformed")
        cache_key = f"auth:{parsed.key_id}"
        cached = await self._cache.get(cache_key)
        if cached is not None:
            user_hex, scopes, digest = cached.decode().split("|")
            if user_hex == parsed.user_id.hex and hmac.compare_digest(
                bytes.fromhex(digest), secret_sha256(parsed.secret)
            ):
                return Principal(parsed.user_id, parsed.key_id, _scopes(scopes))
            raise Unauthorized("the API key is not valid")
        record = await self._metadata.get_api_key(parsed.user_id, parsed.key_id)
        if record is None or record.revoked_at is not None:
            raise Unauthorized("the API key is not valid")
        if not secret_matches(record.secret_sha256, parsed.secret):
            raise Unauthorized("the API key is not valid")
        scopes_text = ",".join(sorted(s.value for s in record.scopes))
        value = f"{record.user_id.hex}|{scopes_text}|{record.secret_sha256.hex()}".encode()
        await self._cache.set(cache_key, value, AUTH_CACHE_TTL_S)
        return Principal(record.user_id, record.key_id, record.scopes)


def _scopes(text: str) -> frozenset[Scope]:
    return frozenset(Scope(s) for s in text.split(",") if s)


def check_admin_token(header: str | None, admin_token: str | None) -> None:
    if admin_token is None:
        raise Forbidden("user creation over HTTP is off: set PHOTOSTORE_ADMIN_TOKEN on the server")
    token = _bearer(header)
    if not hmac.compare_digest(token.encode(), admin_token.encode()):
        raise Unauthorized("the admin token is not valid")
