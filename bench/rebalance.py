"""Online resharding on PostgreSQL: share moved / ideal, copy rate / COPY, write unavailability.

One run, on throwaway databases of the system PostgreSQL (dropped at the end):

1. ``--users`` users with ``--photos`` photo rows each (and a variant per photo) on 4 shards.
2. ``shards add`` planned; the dry-run preview gives the users moved / total against the ideal
   1/(N+1) (goal <= 1.1).
3. Copy rate, on that move with nothing else running: rows moved / the mover's time moving keys
   (grace periods excluded), against PostgreSQL ``COPY ... TO STDOUT`` then ``COPY ... FROM STDIN``
   of the same rows between the same two databases, measured just before (goal >= 0.5).
4. The new shard is removed again while one writer per user on it inserts photo rows back to
   back; a user's write unavailability is the longest gap between two of its acknowledged writes
   minus its median gap (goal p99 <= 1 s).

    .venv/bin/python -m bench.rebalance [--users 400] [--photos 50] [--writers 40]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.report import write_result
from photostore.domain import Photo, PhotoChanges, PhotoStatus, User, Variant
from photostore.errors import ShardMoveInProgress
from photostore.ids import new_photo_id, new_user_id, placement_key_of
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.rebalance.preview import key_loads, preview
from photostore.rebalance.shard_mover import ShardRebalancer, start_plan
from photostore.rebalance.watcher import RoutingWatcher
from photostore.runtime import Runtime, open_runtime
from photostore.settings import load_settings

SERVER = "postgresql://postgres:postgres@127.0.0.1:5432"
SHARDS = 4


def _photo(owner: uuid.UUID, n: int) -> Photo:
    now = datetime.now(UTC)
    photo_id = new_photo_id(owner)
    return Photo(
        id=photo_id,
        owner_id=owner,
        filename=f"IMG_{n:05}.jpg",
        bucket="photos-0",
        storage_path=f"photos/2026/11/28/{photo_id}",
        sha256=secrets.token_hex(32),
        bytes=2_000_000,
        format="JPEG",
        content_type="image/jpeg",
        width=4000,
        height=3000,
        status=PhotoStatus.READY,
        created_at=now,
        updated_at=now,
        exif={"Make": "bench", "Model": "rebalance"},
    )


async def _populate(runtime: Runtime, users: int, photos: int) -> list[uuid.UUID]:
    store = runtime.metadata
    owners = []
    for n in range(users):
        user = User(id=new_user_id(), name=f"bench-{n}", created_at=datetime.now(UTC))
        await store.create_user(user)
        owners.append(user.id)

    async def library(owner: uuid.UUID) -> None:
        for n in range(photos):
            photo = _photo(owner, n)
            await store.insert_photo(photo, [])
            variant = Variant(
                photo_id=photo.id,
                name="thumb",
                bucket=photo.bucket,
                storage_path=f"{photo.storage_path}/thumb",
                format="WEBP",
                content_type="image/webp",
                width=256,
                height=192,
                bytes=9000,
                sha256=secrets.token_hex(32),
                created_at=photo.created_at,
            )
            await store.apply_photo_update("bench", uuid.uuid4(), photo.id, _no_changes(), [variant], [])

    for start in range(0, len(owners), 50):
        await asyncio.gather(*(library(owner) for owner in owners[start : start + 50]))
    return owners


def _no_changes() -> PhotoChanges:
    return PhotoChanges()


async def _copy_baseline(
    prefix: str, moved_keys: set[int], pairs: list[tuple[int, int]]
) -> tuple[int, float]:
    """COPY the moved users' rows from each source to a scratch copy of the tables on its target."""
    rows = 0
    elapsed = 0.0
    for src, dst in pairs:
        source = await asyncpg.connect(f"{SERVER}/{prefix}_{src}")
        target = await asyncpg.connect(f"{SERVER}/{prefix}_{dst}")
        try:
            keys = [k for k in moved_keys]
            queries = {
                "users": "SELECT * FROM users WHERE placement_key = ANY($1::bigint[])",
                "api_keys": "SELECT k.* FROM api_keys k JOIN users u ON u.id = k.user_id"
                " WHERE u.placement_key = ANY($1::bigint[])",
                "photos": "SELECT p.* FROM photos p JOIN users u ON u.id = p.user_id"
                " WHERE u.placement_key = ANY($1::bigint[])",
                "variants": "SELECT v.* FROM variants v JOIN photos p ON p.id = v.photo_id"
                " JOIN users u ON u.id = p.user_id WHERE u.placement_key = ANY($1::bigint[])",
            }
            for table in queries:
                await target.execute(f"CREATE TABLE IF NOT EXISTS bench_{table} (LIKE {table})")
                await target.execute(f"TRUNCATE bench_{table}")
            started = time.perf_counter()
            for table, query in queries.items():
                literal = "ARRAY[" + ",".join(str(k) for k in keys) + "]::bigint[]"
                sql = query.replace("$1::bigint[]", literal)
                received: list[bytes] = []
                await source.copy_from_query(sql, output=_Sink(received).write, format="binary")
                data = b"".join(received)
                result = await target.copy_to_table(f"bench_{table}", source=_chunks(data), format="binary")
                rows += int(result.split()[-1])
            elapsed += time.perf_counter() - started
        finally:
            await source.close()
            await target.close()
    return rows, elapsed


class _Sink:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def write(self, data: bytes) -> None:
        self._chunks.append(bytes(data))


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _writes_during_move(
    runtime: Runtime, store: SqlMetadataStore, watcher: RoutingWatcher, owners: list[uuid.UUID]
) -> tuple[list[float], dict[str, Any], float]:
    """Run the planned move while each owner writes back to back; (gaps, summary, seconds).

    A user's gap is the longest pause between two of its acknowledged writes, less its median one.
    """
    await watcher.refresh()
    stop = asyncio.Event()
    acks: dict[uuid.UUID, list[float]] = {u: [] for u in owners}

    async def write_forever(owner: uuid.UUID) -> None:
        n = 0
        while not stop.is_set():
            try:
                await store.insert_photo(_photo(owner, 100_000 + n), [])
                acks[owner].append(time.monotonic())
            except ShardMoveInProgress:  # a 503: the fence outlasted the wait; counted in the gap
                await asyncio.sleep(0.01)
            n += 1

    tasks = [asyncio.create_task(write_forever(u)) for u in owners]
    routing = asyncio.create_task(watcher.run(stop))
    started = time.monotonic()
    summary = await ShardRebalancer(store, runtime.placement, runtime.control).run()
    total_s = time.monotonic() - started
    stop.set()
    await asyncio.gather(*tasks, routing)
    assert summary is not None
    gaps = []
    for times in acks.values():
        deltas = [b - a for a, b in itertools.pairwise(times)]
        if deltas:
            gaps.append(max(deltas) - statistics.median(deltas))
    return sorted(gaps), summary, total_s


async def main(users: int, photos: int, writers: int) -> None:
    prefix = f"ps_bench_rb_{secrets.token_hex(3)}"
    folder = Path(tempfile.mkdtemp(prefix="bench-rebalance-"))
    settings = load_settings(
        data_dir=folder / "data",
        placement={"shards": SHARDS, "partition_power": 12},
        metadata={"backend": "postgres", "postgres": {"dsn_template": f"{SERVER}/{prefix}_{{shard}}"}},
    )
    runtime = await open_runtime(settings)
    try:
        print(f"populating {users} users x {photos} photos ...", file=sys.stderr)
        owners = await _populate(runtime, users, photos)
        store = runtime.metadata
        assert isinstance(store, SqlMetadataStore)
        watcher = runtime.routing_watcher()

        # Phase 1: add a shard with nothing else running: the share moved and the copy rate.
        current = runtime.placement.reload()[0]
        target = current.with_shard_added(current.next_shard_id)
        loads = [(s, await key_loads(store.primary_engine(s))) for s in current.shard_ids]
        plan = preview(current, target, loads)
        moved_keys = {
            k
            for k in (placement_key_of(u) for u in owners)
            if target.shard_for_key(k) != current.shard_for_key(k)
        }
        pairs = sorted({(current.shard_for_key(k), target.shard_for_key(k)) for k in moved_keys})
        # The baseline first: the mover deletes the rows from their sources once they are moved.
        await store.ensure_shards(set(target.shard_ids))
        copy_rows, copy_s = await _copy_baseline(prefix, moved_keys, pairs)
        start_plan(runtime.placement, runtime.control, lambda _m: target, "bench: add a shard")
        await watcher.refresh()
        added = await ShardRebalancer(store, runtime.placement, runtime.control).run()
        assert added is not None
        await watcher.refresh()

        # Phase 2: remove that shard again while its users write back to back: unavailability.
        current = runtime.placement.reload()[0]
        leaving = current.next_shard_id - 1
        sampled = [u for u in owners if current.shard_for_key(placement_key_of(u)) == leaving][:writers]
        start_plan(
            runtime.placement, runtime.control, lambda m: m.with_shard_removed(leaving), "bench: remove"
        )
        gaps, removed, total_s = await _writes_during_move(runtime, store, watcher, sampled)

        mover_rate = added["rows"] / added["moving_s"]
        copy_rate = copy_rows / copy_s
        p99 = gaps[int(0.99 * (len(gaps) - 1))] if gaps else float("nan")
        key_ratio = plan.moved_key_fraction / plan.ideal_fraction
        moved = f"{plan.moved_users} / {plan.total_users} ({plan.moved_user_fraction:.2%})"
        mover = f"{added['rows']} rows, {added['moving_s']:.2f} s ({mover_rate:,.0f} rows/s)"
        baseline = f"{copy_rows} rows, {copy_s:.2f} s ({copy_rate:,.0f} rows/s)"
        fence = f"{removed['fenced_p99_s']:.3f} / {removed['fenced_max_s']:.3f} s"
        rows = [
            ("users moved / total", moved, ""),
            ("key space moved / ideal 1/(N+1)", f"{key_ratio:.3f}", "<= 1.1"),
            ("users moved / ideal (a sample of users: noisier)", f"{plan.ratio_to_ideal:.3f}", "<= 1.1"),
            ("mover: rows moved, time moving keys", mover, ""),
            ("COPY TO + COPY FROM, same rows, same databases", baseline, ""),
            ("copy rate mover / COPY", f"{mover_rate / copy_rate:.3f}", ">= 0.5"),
            (
                f"write unavailability per user, p99 of {len(gaps)}",
                f"{p99:.3f} s (max {max(gaps, default=0):.3f})",
                "<= 1 s",
            ),
            ("fence held p99 / max (mover, remove)", fence, ""),
            ("remove: whole run incl. grace periods", f"{total_s:.1f} s", ""),
        ]
        lines = [f"| {figure} | {value} | {goal} |" for figure, value, goal in rows]
        table = "\n".join(["| figure | value | goal |", "|---|---|---|", *lines])
        print(table)
        write_result("rebalance", table)
    finally:
        await runtime.close()
        conn = await asyncpg.connect(f"{SERVER}/postgres")
        try:
            for row in await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", prefix + "_%"
            ):
                await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        finally:
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--writers", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(main(args.users, args.photos, args.writers))
