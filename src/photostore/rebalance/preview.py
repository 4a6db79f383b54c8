"""What a plan would move, counted on the shards: users, photo rows and bytes per (source, target)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from photostore.metadata.schema import photos, users
from photostore.metadata.translate import translated
from photostore.placement.shard_map import ShardMap


@dataclass(frozen=True, slots=True)
class KeyLoad:
    placement_key: int
    users: int
    photos: int
    bytes: int


@dataclass(frozen=True, slots=True)
class PairMove:
    source: int
    target: int
    users: int
    photos: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Preview:
    moves: tuple[PairMove, ...]
    total_users: int
    total_photos: int
    moved_key_fraction: float  # of the key space
    ideal_fraction: float  # what an ideal plan moves: 1/(N+1) for an added shard, its share for a removed one

    @property
    def moved_users(self) -> int:
        return sum(m.users for m in self.moves)

    @property
    def moved_user_fraction(self) -> float:
        return self.moved_users / self.total_users if self.total_users else 0.0

    @property
    def ratio_to_ideal(self) -> float:
        """Share of users moved / the ideal share (1.0 is ideal; the issue's goal is <= 1.1)."""
        return self.moved_user_fraction / self.ideal_fraction if self.ideal_fraction else 0.0


async def key_loads(engine: AsyncEngine) -> list[KeyLoad]:
    """Users, live photos and their bytes per placement key on one shard."""
    live = photos.c.deleted_at.is_(None)
    stmt = (
        select(
            users.c.placement_key,
            func.count(func.distinct(users.c.id)),
            func.count(photos.c.id),
            func.coalesce(func.sum(photos.c.bytes), 0),
        )
        .select_from(users.outerjoin(photos, (photos.c.user_id == users.c.id) & live))
        .group_by(users.c.placement_key)
    )
    with translated("counting users per placement key"):
        async with engine.connect() as conn:
            return [
                KeyLoad(int(k), int(u), int(p), int(b)) for k, u, p, b in (await conn.execute(stmt)).all()
            ]


def ideal_fraction(current: ShardMap, target: ShardMap) -> float:
    added = set(target.shard_ids) - set(current.shard_ids)
    removed = set(current.shard_ids) - set(target.shard_ids)
    if added and not removed:
        return sum(target.share(s) for s in added)
    if removed and not added:
        return sum(current.share(s) for s in removed)
    return current.moved_keys_fraction(target)


def preview(
    current: ShardMap, target: ShardMap, loads_by_shard: Iterable[tuple[int, list[KeyLoad]]]
) -> Preview:
    pairs: dict[tuple[int, int], list[int]] = {}
    total_users = total_photos = 0
    for shard_id, loads in loads_by_shard:
        for load in loads:
            total_users += load.users
            total_photos += load.photos
            destination = target.shard_for_key(load.placement_key)
            if destination != shard_id:
                counts = pairs.setdefault((shard_id, destination), [0, 0, 0])
                counts[0] += load.users
                counts[1] += load.photos
                counts[2] += load.bytes
    moves = tuple(PairMove(s, t, *counts) for (s, t), counts in sorted(pairs.items()))
    return Preview(
        moves, total_users, total_photos, current.moved_keys_fraction(target), ideal_fraction(current, target)
    )
