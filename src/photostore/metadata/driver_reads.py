"""The timeline page read straight on the asyncpg connection under the SQLAlchemy pool.

Why: it is the hottest metadata read (every gallery scroll), and SQLAlchemy's per-call work
(building and compiling the ``select()``, the execution context, result wrapping) costs several
times the query itself on a keyset index scan. Here the statement text is made once, asyncpg
prepares it once per connection (its statement cache), and rows map straight to ``Photo``. The
connection still comes from the shard's pool, so pool limits, replicas and error translation are
the same as for every other read. PostgreSQL only; SQLite shards use the SQLAlchemy path.
"""

from __future__ import annotations

import uuid
from dataclasses import fields
from typing import Any

import asyncpg
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection

from photostore.domain import Photo, PhotoStatus
from photostore.metadata.schema import photos

# The columns in the order of Photo's fields, so a row is Photo's positional arguments.
_FIELDS = [field.name for field in fields(Photo)]
_ORDERED = ["user_id" if name == "owner_id" else name for name in _FIELDS]
if sorted(_ORDERED) != sorted(column.name for column in photos.columns):  # pragma: no cover - a schema edit
    raise ImportError("Photo's fields and the photos table's columns differ")
_STATUSES = {status.value: status for status in PhotoStatus}
_COLUMNS = ", ".join(f'"{name}"' for name in _ORDERED)
_LIVE_OF_OWNER = "user_id = $1 AND deleted_at IS NULL"
LIST_FIRST = f"SELECT {_COLUMNS} FROM photos WHERE {_LIVE_OF_OWNER} ORDER BY id DESC LIMIT $2"
LIST_BEFORE = f"SELECT {_COLUMNS} FROM photos WHERE {_LIVE_OF_OWNER} AND id < $2 ORDER BY id DESC LIMIT $3"


async def list_photos(
    conn: AsyncConnection, owner_id: uuid.UUID, limit: int, before: uuid.UUID | None
) -> list[Photo]:
    """``SqlMetadataStore.list_photos`` on one PostgreSQL connection (same rows, same order)."""
    sync = conn.sync_connection
    if sync is not None and not sync.invalidated:  # checked out just now: no greenlet hop needed
        raw = sync.connection
    else:
        raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection  # asyncpg.Connection; its jsonb codec is SQLAlchemy's
    statement, params = (
        (LIST_FIRST, (owner_id, limit)) if before is None else (LIST_BEFORE, (owner_id, before, limit))
    )
    try:
        records = await driver.fetch(statement, *params)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError) as error:
        # What SQLAlchemy would raise on its own path: callers translate and retry DBAPIErrors, and
        # a connection that failed other than by the server's answer (closed, or its protocol
        # state broken by a termination arriving mid-call) must leave the pool.
        broken = bool(driver.is_closed()) or not isinstance(error, asyncpg.PostgresError)
        if broken:
            await conn.invalidate(error)
        raise exc.DBAPIError(statement, params, error, connection_invalidated=broken) from error
    return [_photo(record) for record in records]


def _photo(record: Any) -> Photo:
    photo = Photo(*record)
    # The row's status text becomes its enum member: one write to a record made a line above.
    object.__setattr__(photo, "status", _STATUSES[photo.status])
    return photo
