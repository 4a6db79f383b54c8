"""The tiering job SIGKILLed at random points while readers read every original, in both modes.

Kills alternate between a pass that sends every original cold and one that brings every original
back, so each kill lands on work in flight: a copy, a switch, a journal write, the wait before a
source delete. Meanwhile a reader reads every original as the service does (the row, then the
bucket it names, the row again on a miss) and checks its SHA-256. The last pass runs to the end;
then every object is where its row says with its checksum, every original is cold, every variant
in its map bucket, the journal is empty and no bucket holds an object the rows do not name.
``PHOTOSTORE_TIER_KILLS`` sets the number of kills (5 in the suite; ``make test-long`` runs 50).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from photostore.errors import BlobNotFound
from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.buckets import verify_objects
from tests.engines.bucket_mover_child import start_mover
from tests.support.photo_library import Library, assert_settled, library_fixtures, seed_library

KILLS = int(os.environ.get("PHOTOSTORE_TIER_KILLS", "5"))
GRACE_S = 0.3
# The names of test_bucket_moves_sigkill.py's buckets: the bucket tests' SeaweedFS has a volume
# for 16 buckets in all, and every test empties its buckets after itself.
COLD = "kills-3"
MAP = BucketMap.create(2, prefix="kills-")
ALL_COLD = datetime.now(UTC) + timedelta(days=3650)  # everything counts as idle
ALL_HOT = datetime.now(UTC) - timedelta(days=3650)  # nothing does: cold originals come back

shard_databases, spec, library = library_fixtures(MAP, [*MAP.buckets, COLD])


async def _read_all_originals(
    library: Library, photo_ids: list[Any], stop: asyncio.Event
) -> tuple[int, list[str]]:
    """Read every original until ``stop``, as the service does; (reads, problems)."""
    reads, problems = 0, []
    while not stop.is_set():
        for photo_id in photo_ids:
            for attempt in range(2):
                found = await library.metadata.photo_and_variants(photo_id)
                assert found is not None
                photo = found[0]
                try:
                    data = await library.blobs.get(photo.bucket, photo.storage_path)
                except BlobNotFound:
                    if attempt == 0:
                        continue  # the row was read before a switch and the source is gone: again
                    problems.append(f"{photo_id}: missing from {photo.bucket} twice")
                    break
                if hashlib.sha256(data).hexdigest() != photo.sha256:
                    problems.append(f"{photo_id}: wrong bytes from {photo.bucket}")
                reads += 1
                break
    return reads, problems


async def test_tiering_killed_at_random_points_while_read_then_run_again_ends_clean(
    library: Library, spec: dict[str, Any], tmp_path: Path
) -> None:
    seed = random.randrange(1 << 32)
    print(f"kill points from random.Random({seed})")  # shown when the test fails: replay with it
    rng = random.Random(seed)
    seeded = await seed_library(library, users=6, photos_per_user=5)
    await library.blobs.add_bucket(COLD)
    journal = tmp_path / "journal"
    stop = asyncio.Event()
    landed = 0
    async with asyncio.TaskGroup() as group:
        reader = group.create_task(_read_all_originals(library, [p.id for p, _ in seeded], stop))
        try:
            for kill in range(KILLS):
                idle_before = ALL_COLD if kill % 2 == 0 else ALL_HOT
                child, results = await asyncio.to_thread(
                    start_mover, spec, MAP, journal, GRACE_S, (COLD, idle_before)
                )
                await asyncio.sleep(rng.uniform(0.0, 0.6))
                child.kill()  # SIGKILL, to this child's own pid
                await asyncio.to_thread(child.join)
                results.close()
                landed += child.exitcode == -signal.SIGKILL
            assert landed >= KILLS // 2, "most runs ended before their kill: too little was tested"

            tiers = (COLD, ALL_COLD)
            child, results = await asyncio.to_thread(start_mover, spec, MAP, journal, GRACE_S, tiers)
            assert await asyncio.to_thread(results.poll, 120), "the last run did not finish"
            assert results.recv()["complete"]
            results.close()
            await asyncio.to_thread(child.join)
            assert child.exitcode == 0
        finally:
            stop.set()
    reads, problems = reader.result()
    assert problems == []
    assert reads >= len(seeded)

    report = await verify_objects(library.metadata, library.blobs, MAP, checksums=True, pinned={COLD})
    assert report.problems == ()
    assert report.objects == 90
    for photo, _ in seeded:
        found = await library.metadata.photo_and_variants(photo.id)
        assert found is not None
        assert found[0].bucket == COLD
        assert {v.bucket for v in found[1]} == {MAP.bucket_for(photo.id)}
    # Every bucket listed: exactly what the live rows name, nothing more.
    await assert_settled(library, journal)
