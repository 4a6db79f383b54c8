"""The rows of a batch of placement keys on one shard: read as a snapshot, written as one transaction.

A placement key is the unit a rebalance moves: every user with that key (almost always one) with
their API keys, photos, variants and resumable uploads in progress. Keys move in batches, so a
batch costs a few round trips whatever its size. Outbox rows and processed-event markers are per
shard, not per user: they stay where they were written (the relay drains every shard it knows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from photostore.metadata import fences
from photostore.metadata.dialect import upsert
from photostore.metadata.engines import is_sqlite, write_options
from photostore.metadata.schema import api_keys, photos, uploads, users, variants
from photostore.metadata.translate import translated

Row = dict[str, Any]


@dataclass(slots=True)
class KeyRows:
    """What one key owns on a shard (or what changed since a time)."""

    users: list[Row] = field(default_factory=list)
    api_keys: list[Row] = field(default_factory=list)
    photos: list[Row] = field(default_factory=list)
    variants: list[Row] = field(default_factory=list)
    uploads: list[Row] = field(default_factory=list)

    @property
    def count(self) -> int:
        return (
            len(self.users) + len(self.api_keys) + len(self.photos) + len(self.variants) + len(self.uploads)
        )

    def loads_by_key(self) -> dict[int, tuple[int, int]]:
        """Placement key -> (rows, object bytes) of these rows, for the journal."""
        key_of_user = {row["id"]: int(row["placement_key"]) for row in self.users}
        key_of_photo = {row["id"]: key_of_user.get(row["user_id"]) for row in self.photos}
        loads: dict[int, list[int]] = {key: [0, 0] for key in key_of_user.values()}
        owners = [
            *key_of_user.values(),
            *(key_of_user.get(row["user_id"]) for row in [*self.api_keys, *self.uploads]),
        ]
        for key in owners:
            if key is not None:
                loads[key][0] += 1
        for row, key in [(r, key_of_photo.get(r["id"])) for r in self.photos] + [
            (r, key_of_photo.get(r["photo_id"])) for r in self.variants
        ]:
            if key is not None:
                loads[key][0] += 1
                loads[key][1] += int(row["bytes"])
        return {key: (rows, size) for key, (rows, size) in loads.items()}

    @property
    def size(self) -> int:
        """Bytes of the objects these rows describe (what a bucket move of them would copy)."""
        return sum(int(row["bytes"]) for row in self.photos) + sum(int(row["bytes"]) for row in self.variants)


def _user_ids(keys: Sequence[int]) -> Any:
    return select(users.c.id).where(users.c.placement_key.in_(list(keys)))


async def keys_in_range(engine: AsyncEngine, lo: int, hi: int) -> list[int]:
    """The placement keys of the users this shard holds in [lo, hi), ascending."""
    stmt = (
        select(users.c.placement_key)
        .where((users.c.placement_key >= lo) & (users.c.placement_key < hi))
        .distinct()
        .order_by(users.c.placement_key)
    )
    with translated("listing the users of a key range"):
        async with engine.connect() as conn:
            return [int(key) for key in (await conn.execute(stmt)).scalars()]


Stamps = dict[Any, tuple[Any, Any]]


async def photo_stamps(engine: AsyncEngine, keys: Sequence[int]) -> Stamps:
    """Photo id -> (updated_at, deleted_at) of the keys' photos: what a catch-up compares.

    Every change to a photo or its variants sets its ``updated_at`` (and photos are never deleted
    outright), so a photo whose stamp differs between source and target is one to copy again. A
    stamp is compared, never ordered: a row stamped before a slow commit is still found.
    """
    stmt = select(photos.c.id, photos.c.updated_at, photos.c.deleted_at).where(
        photos.c.user_id.in_(_user_ids(keys))
    )
    with translated("reading a user's photo stamps"):
        async with engine.connect() as conn:
            return {row[0]: (row[1], row[2]) for row in (await conn.execute(stmt)).all()}


def changed_since(source: Stamps, target: Stamps) -> list[Any]:
    """Ids of the photos whose stamp on the source differs from the target's (or is missing there)."""
    return [photo_id for photo_id, stamp in source.items() if target.get(photo_id) != stamp]


async def read_rows(engine: AsyncEngine, keys: Sequence[int], photo_ids: list[Any] | None = None) -> KeyRows:
    """Every row of ``keys`` (or their users, API keys, uploads, and only the photos ``photo_ids``
    with their variants) in one snapshot."""
    found = KeyRows()
    with translated("reading a user's rows to move"):
        async with engine.connect() as conn:
            if not is_sqlite(engine):
                await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                owners = _user_ids(keys)

                async def owned(table: Any, owner_column: Any) -> list[Row]:
                    result = await conn.execute(select(table).where(owner_column.in_(owners)))
                    return [dict(r) for r in result.mappings()]

                found.users = await owned(users, users.c.id)
                found.api_keys = await owned(api_keys, api_keys.c.user_id)
                # Uploads change with every chunk and are few: each pass copies them all.
                found.uploads = await owned(uploads, uploads.c.user_id)
                # Deleted photos first: applied in this order, a live photo never meets a stale live
                # twin of the same bytes on the target (the dedup index is per statement).
                order = (photos.c.deleted_at.is_(None), photos.c.id)
                if photo_ids is None:
                    stmt = select(photos).where(photos.c.user_id.in_(owners)).order_by(*order)
                    found.photos = [dict(r) for r in (await conn.execute(stmt)).mappings()]
                for start in range(0, len(photo_ids or ()), 500):
                    chunk = (photo_ids or [])[start : start + 500]
                    stmt = select(photos).where(photos.c.user_id.in_(owners) & photos.c.id.in_(chunk))
                    found.photos.extend(
                        dict(r) for r in (await conn.execute(stmt.order_by(*order))).mappings()
                    )
                if photo_ids is not None:
                    found.photos.sort(key=lambda row: (row["deleted_at"] is None, row["id"]))
                ids = [row["id"] for row in found.photos]
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    stmt_v = select(variants).where(variants.c.photo_id.in_(chunk))
                    found.variants.extend(dict(r) for r in (await conn.execute(stmt_v)).mappings())
    return found


async def delete_keys(conn: AsyncConnection, keys: Sequence[int]) -> None:
    owners = _user_ids(keys)
    owned_photos = select(photos.c.id).where(photos.c.user_id.in_(owners))
    await conn.execute(delete(variants).where(variants.c.photo_id.in_(owned_photos)))
    await conn.execute(delete(photos).where(photos.c.user_id.in_(owners)))
    await conn.execute(delete(api_keys).where(api_keys.c.user_id.in_(owners)))
    await conn.execute(delete(uploads).where(uploads.c.user_id.in_(owners)))
    await conn.execute(delete(users).where(users.c.placement_key.in_(list(keys))))


async def write_rows(engine: AsyncEngine, keys: Sequence[int], rows: KeyRows, *, fresh: bool) -> None:
    """Upsert ``rows`` in one transaction; ``fresh`` first drops whatever ``keys`` have here (the
    leftovers of an interrupted move: this shard is not yet their home, so nothing else is)."""
    name = engine.dialect.name
    with translated("writing a user's moved rows"):
        async with engine.connect() as conn:
            await conn.execution_options(**write_options(engine))
            async with conn.begin():
                if fresh:
                    await delete_keys(conn, keys)
                    await fences.unfence_keys(conn, keys)
                else:  # every upload was read: those gone from the source (completed, ended) go here too
                    await conn.execute(delete(uploads).where(uploads.c.user_id.in_(_user_ids(keys))))
                for table, batch, pk in (
                    (users, rows.users, ("id",)),
                    (api_keys, rows.api_keys, ("key_id",)),
                    (photos, rows.photos, ("id",)),
                    (variants, rows.variants, ("photo_id", "name")),
                    (uploads, rows.uploads, ("id",)),
                ):
                    for start in range(0, len(batch), 500):
                        await conn.execute(upsert(name, table, pk), batch[start : start + 500])


async def delete_rows(engine: AsyncEngine, keys: Sequence[int]) -> None:
    """Drop every row of ``keys`` here (the source, once they are switched away and readers moved on)."""
    with translated("cleaning up a moved user's rows"):
        async with engine.connect() as conn:
            await conn.execution_options(**write_options(engine))
            async with conn.begin():
                await delete_keys(conn, keys)


async def fence_keys(engine: AsyncEngine, keys: Sequence[int], moved_to: int) -> None:
    with translated("fencing users for their move"):
        async with engine.connect() as conn:
            await conn.execution_options(**write_options(engine))
            async with conn.begin():
                await fences.fence_keys(conn, keys, moved_to)


async def fence_ranges(engine: AsyncEngine, ranges: Iterable[tuple[int, int]], moved_to: int) -> None:
    with translated("fencing key ranges for their move"):
        async with engine.connect() as conn:
            await conn.execution_options(**write_options(engine))
            async with conn.begin():
                await fences.fence_ranges(conn, ranges, moved_to)


async def clear_fences(engine: AsyncEngine) -> None:
    with translated("clearing the fences of a finished rebalance"):
        async with engine.connect() as conn:
            await conn.execution_options(**write_options(engine))
            async with conn.begin():
                await fences.clear_fences(conn)
