"""A bucket mover SIGKILLed at random points, in both modes, then run again: the rerun ends clean.

Each killed run moves the library towards another map than the one before (a bucket added, then
removed again), so every kill lands on work in flight: a copy, a switch, a journal write, the wait
before a source delete. The last run goes to the end; then every object is where its row says with
its checksum, the journal is empty, and listing every bucket finds nothing the live rows do not name.
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path
from typing import Any

from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.buckets import verify_objects
from tests.engines.bucket_mover_child import start_mover
from tests.support.photo_library import Library, assert_settled, library_fixtures, seed_library

KILLS = 5
GRACE_S = 0.3
# Names of this module's own (see test_bucket_moves.py on why fixed).
OLD = BucketMap.create(3, prefix="kills-")
ADDED = OLD.with_bucket_added("kills-3")

shard_databases, spec, library = library_fixtures(OLD, ADDED.buckets)


async def test_a_mover_killed_at_random_points_then_run_again_ends_clean(
    library: Library, spec: dict[str, Any], tmp_path: Path
) -> None:
    seed = random.randrange(1 << 32)
    print(f"kill points from random.Random({seed})")  # shown when the test fails: replay with it
    rng = random.Random(seed)
    await seed_library(library, users=6, photos_per_user=5)
    journal = tmp_path / "journal"

    landed = 0
    for kill in range(KILLS):
        target = ADDED if kill % 2 == 0 else OLD
        child, results = await asyncio.to_thread(start_mover, spec, target, journal, GRACE_S)
        await asyncio.sleep(rng.uniform(0.0, 0.6))
        child.kill()  # SIGKILL, to this child's own pid
        await asyncio.to_thread(child.join)
        results.close()
        landed += child.exitcode == -signal.SIGKILL
    assert landed >= KILLS // 2, "most runs ended before their kill: too little was tested"

    child, results = await asyncio.to_thread(start_mover, spec, ADDED, journal, GRACE_S)
    assert await asyncio.to_thread(results.poll, 120), "the last run did not finish"
    assert results.recv()["complete"]
    results.close()
    await asyncio.to_thread(child.join)
    assert child.exitcode == 0

    await library.blobs.add_bucket("kills-3")  # the children added it; this process has not yet
    report = await verify_objects(library.metadata, library.blobs, ADDED, checksums=True)
    assert report.problems == ()
    assert report.objects == 90
    # Every bucket either map ever named, listed: exactly what the live rows name, nothing more.
    await assert_settled(library, journal)
