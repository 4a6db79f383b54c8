"""Time-sortable ids that carry their owner's placement key.

Layout of every id (128 bits, a valid RFC 9562 UUIDv7, so PostgreSQL's ``uuid`` type and any UUID
tooling accept it)::

    48 bits  unix time in milliseconds   -> ids sort by creation time, also as strings
     4 bits  version (7)
    12 bits  placement key, high 12 bits
     2 bits  variant (0b10)
    20 bits  placement key, low 20 bits
    42 bits  random

A user's placement key is drawn at random when the user is created; every photo id of that user
carries the same key. The ring maps a placement key to a shard, so any user or photo id reaches its
shard with no lookup (as Instagram and Pinterest put the shard in the id).
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime

PLACEMENT_KEY_BITS = 32
_PLACEMENT_MASK = (1 << PLACEMENT_KEY_BITS) - 1


def new_placement_key() -> int:
    """A uniformly random 32-bit placement key."""
    return secrets.randbits(PLACEMENT_KEY_BITS)


def make_id(placement_key: int, unix_ms: int | None = None, rand: int | None = None) -> uuid.UUID:
    """Build an id from its parts; ``unix_ms`` and ``rand`` default to now and 42 random bits."""
    if not 0 <= placement_key <= _PLACEMENT_MASK:
        raise ValueError(f"placement key {placement_key} is not a 32-bit unsigned integer")
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    r = secrets.randbits(42) if rand is None else rand & ((1 << 42) - 1)
    value = (
        (ms & ((1 << 48) - 1)) << 80
        | 0x7 << 76
        | (placement_key >> 20) << 64
        | 0b10 << 62
        | (placement_key & 0xFFFFF) << 42
        | r
    )
    return uuid.UUID(int=value)


def new_user_id() -> uuid.UUID:
    return make_id(new_placement_key())


def new_photo_id(owner_id: uuid.UUID) -> uuid.UUID:
    """A new photo id of ``owner_id``: same placement key, so it lands on the owner's shard."""
    return make_id(placement_key_of(owner_id))


def placement_key_of(any_id: uuid.UUID) -> int:
    value = any_id.int
    return ((value >> 64) & 0xFFF) << 20 | (value >> 42) & 0xFFFFF


def unix_ms_of(any_id: uuid.UUID) -> int:
    return any_id.int >> 80


def created_at_of(any_id: uuid.UUID) -> datetime:
    return datetime.fromtimestamp(unix_ms_of(any_id) / 1000, tz=UTC)


def is_photostore_id(any_id: uuid.UUID) -> bool:
    """True when the id has our layout (version 7, RFC variant)."""
    return any_id.version == 7 and any_id.variant == uuid.RFC_4122


def parse_id(text: str) -> uuid.UUID | None:
    """Parse an id from a path segment; ``None`` when it is not one of ours."""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return None
    return parsed if is_photostore_id(parsed) else None
