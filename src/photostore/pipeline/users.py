"""Creating users and their API keys."""

from __future__ import annotations

from datetime import UTC, datetime

from photostore.domain import Scope, User
from photostore.errors import BadRequest
from photostore.ids import new_user_id
from photostore.metadata.port import MetadataStore
from photostore.pipeline.keys import issue_key

DEFAULT_SCOPES = frozenset({Scope.READ, Scope.WRITE})
MAX_NAME_LENGTH = 200


async def create_user(
    metadata: MetadataStore, name: str, scopes: frozenset[Scope] = DEFAULT_SCOPES
) -> tuple[User, str]:
    """Create a user on its shard with one API key; returns the user and the key's plaintext."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise BadRequest(f"a user name must have 1 to {MAX_NAME_LENGTH} characters")
    user = User(id=new_user_id(), name=name, created_at=datetime.now(UTC))
    await metadata.create_user(user)
    token, record = issue_key(user.id, scopes)
    await metadata.add_api_key(record)
    return user, token
