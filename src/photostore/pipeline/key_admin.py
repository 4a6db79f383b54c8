"""Managing a user's API keys: create with scopes, list, revoke, rotate.

Only the SHA-256 of a key's secret is stored; the plaintext is returned once, at creation. A
revoked key stops working at once wherever the shared cache is the only cache (the verdict kept
there is dropped here), and within ``auth.AUTH_CACHE_TTL_S`` in a process that verified it itself.
"""

from __future__ import annotations

import uuid

from photostore.cache.tiered import TieredCache
from photostore.domain import ApiKey, Scope
from photostore.errors import NotFound
from photostore.metadata.port import MetadataStore
from photostore.pipeline.keys import issue_key


class UserNotFound(NotFound):
    code = "user_not_found"
    title = "No such user"


class KeyNotFound(NotFound):
    code = "key_not_found"
    title = "No such live API key"


async def create_key(
    metadata: MetadataStore, user_id: uuid.UUID, scopes: frozenset[Scope]
) -> tuple[str, ApiKey]:
    """A new key of the user with ``scopes``: (the plaintext token, shown once; the stored record)."""
    if await metadata.get_user(user_id) is None:
        raise UserNotFound(f"no user {user_id}")
    token, record = issue_key(user_id, scopes)
    await metadata.add_api_key(record)
    return token, record


async def revoke_key(metadata: MetadataStore, cache: TieredCache, user_id: uuid.UUID, key_id: str) -> None:
    if not await metadata.revoke_api_key(user_id, key_id):
        raise KeyNotFound(f"user {user_id} has no live key {key_id!r}")
    await cache.delete(f"auth:{key_id}")


async def rotate_key(
    metadata: MetadataStore, cache: TieredCache, user_id: uuid.UUID, key_id: str
) -> tuple[str, ApiKey]:
    """A new key with the old one's scopes, then the old one revoked (in that order: a crash between
    leaves two working keys, never none)."""
    old = await metadata.get_api_key(user_id, key_id)
    if old is None or old.revoked_at is not None:
        raise KeyNotFound(f"user {user_id} has no live key {key_id!r}")
    token, record = await create_key(metadata, user_id, old.scopes)
    await revoke_key(metadata, cache, user_id, key_id)
    return token, record
