"""Write fences for rebalancing, enforced by the source shard itself.

A mover switching placement key K off a shard first writes a ``placement_fences`` row for K there; a
write to K's users checks for that row inside its own transaction and, finding it, gives up (the
caller waits and retries on the shard its refreshed routing names). A range leaving the shard gets a
``range_fences`` row, which stops new users being created in it.

No write can slip past a fence:
- SQLite: every writer, the fence included, begins with ``BEGIN IMMEDIATE``, so a write transaction
  is wholly before the fence (the mover's last copy sees it) or wholly after (it sees the fence).
- PostgreSQL: a writer takes a shared transaction-level advisory lock on its key (user creation: on
  one shared "create" lock too) before it reads the fence table; the mover takes the exclusive lock
  to write the fence, so it waits for writers in flight and every later writer sees its row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from photostore.metadata.dialect import upsert
from photostore.metadata.schema import placement_fences, range_fences

KEY_LOCK_CLASS = 0x7073  # advisory lock class of per-key fences ("ps")
CREATE_LOCK_CLASS = 0x7074  # advisory lock class of user creation during a rebalance


class KeyFenced(Exception):
    """The key's users are being switched to another shard (or already were): retry shortly."""

    def __init__(self, placement_key: int) -> None:
        super().__init__(f"placement key {placement_key} is fenced for a move")
        self.placement_key = placement_key


def _int4(placement_key: int) -> int:
    """A 32-bit unsigned key as PostgreSQL's signed int4."""
    return placement_key - (1 << 32) if placement_key >= 1 << 31 else placement_key


def _is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


async def fenced_keys(conn: AsyncConnection, keys: Iterable[int], *, creating: bool = False) -> set[int]:
    """Which of ``keys`` are fenced on this shard, checked inside the caller's write transaction.

    ``creating``: the write creates users, so a range fence covering a key counts too.
    """
    wanted = sorted(set(keys))
    if not wanted:
        return set()
    if _is_postgres(conn):
        lock = text("SELECT pg_advisory_xact_lock_shared(:cls, :key)")
        if creating:
            await conn.execute(lock, {"cls": CREATE_LOCK_CLASS, "key": 0})
        for key in wanted:
            await conn.execute(lock, {"cls": KEY_LOCK_CLASS, "key": _int4(key)})
    found = await conn.execute(
        select(placement_fences.c.placement_key).where(placement_fences.c.placement_key.in_(wanted))
    )
    fenced = set(found.scalars())
    if creating:
        for key in wanted:
            covering = await conn.execute(
                select(func.count()).where((range_fences.c.lo <= key) & (range_fences.c.hi > key))
            )
            if covering.scalar_one():
                fenced.add(key)
    return fenced


async def fence_keys(conn: AsyncConnection, placement_keys: Sequence[int], moved_to: int) -> None:
    """Fence ``placement_keys`` on this shard (in the caller's write transaction); idempotent."""
    wanted = sorted(set(placement_keys))  # one lock order for every fencer: no deadlock
    if not wanted:
        return
    if _is_postgres(conn):
        lock = text("SELECT pg_advisory_xact_lock(:cls, :key)")
        for key in wanted:
            await conn.execute(lock, {"cls": KEY_LOCK_CLASS, "key": _int4(key)})
    stmt = upsert(conn.dialect.name, placement_fences, ("placement_key",))
    now = datetime.now(UTC)
    rows = [{"placement_key": k, "state": "fenced", "moved_to": moved_to, "since": now} for k in wanted]
    await conn.execute(stmt, rows)


async def fence_ranges(conn: AsyncConnection, ranges: Iterable[tuple[int, int]], moved_to: int) -> None:
    """Stop user creation in each [lo, hi) on this shard; idempotent."""
    if _is_postgres(conn):
        await conn.execute(text("SELECT pg_advisory_xact_lock(:cls, 0)"), {"cls": CREATE_LOCK_CLASS})
    now = datetime.now(UTC)
    rows = [{"lo": lo, "hi": hi, "moved_to": moved_to, "since": now} for lo, hi in ranges]
    if rows:
        await conn.execute(upsert(conn.dialect.name, range_fences, ("lo",)), rows)


async def unfence_keys(conn: AsyncConnection, placement_keys: Sequence[int]) -> None:
    fenced = placement_fences.c.placement_key.in_(list(placement_keys))
    await conn.execute(delete(placement_fences).where(fenced))


async def clear_fences(conn: AsyncConnection) -> None:
    """Drop every fence of this shard (a plan finished and every process routes by its map)."""
    await conn.execute(delete(placement_fences))
    await conn.execute(delete(range_fences))
