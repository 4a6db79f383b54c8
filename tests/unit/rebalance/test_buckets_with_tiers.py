"""A bucket rebalance beside the cold tier: originals tiering put in the cold bucket stay there while
their variants follow the new map, and verify counts them as placed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.buckets import BucketMover, ProblemKind, verify_objects
from photostore.rebalance.destinations import MapDestinations
from photostore.tiering.rule import TierDestinations
from tests.support.photo_library import Library, embedded_spec, open_library, seed_library

OLD = BucketMap.create(2, prefix="tb-")
ADDED = OLD.with_bucket_added("tb-2")
COLD = "tb-cold"
GRACE_S = 0.05


@pytest.fixture
async def library(tmp_path: Path) -> AsyncIterator[Library]:
    async with open_library(embedded_spec(tmp_path, OLD.buckets), OLD) as opened:
        yield opened


async def test_a_rebalance_leaves_cold_originals_and_moves_their_variants(
    library: Library, tmp_path: Path
) -> None:
    seeded = await seed_library(library, users=3, photos_per_user=8)
    journal = tmp_path / "journal"
    everything_idle = TierDestinations(OLD, COLD, datetime.now(UTC) + timedelta(days=1))
    tiered = await BucketMover(
        library.metadata, library.blobs, OLD, journal, grace_s=GRACE_S, rule=everything_idle
    ).run()
    assert tiered.complete
    assert tiered.objects_moved == len(seeded)  # the originals only

    # Without the pin the cold originals count as misplaced; with it the store is clean.
    plain = await verify_objects(library.metadata, library.blobs, OLD, checksums=True)
    assert {p.kind for p in plain.problems} == {ProblemKind.MISPLACED}
    assert len(plain.problems) == len(seeded)
    assert (await verify_objects(library.metadata, library.blobs, OLD, checksums=True, pinned={COLD})).clean

    rule = MapDestinations(ADDED, pinned={COLD})
    mover = BucketMover(library.metadata, library.blobs, ADDED, journal, grace_s=GRACE_S, rule=rule)
    plan = await mover.plan()
    assert {pair.source for pair in plan.pairs} <= set(OLD.buckets)  # nothing leaves the cold bucket
    result = await mover.run(plan=plan)
    assert result.complete
    assert result.objects_moved == plan.objects_to_move > 0
    for photo, _ in seeded:
        found = await library.metadata.photo_and_variants(photo.id)
        assert found is not None
        assert found[0].bucket == COLD
        assert {v.bucket for v in found[1]} == {ADDED.bucket_for(photo.id)}
    assert (await verify_objects(library.metadata, library.blobs, ADDED, checksums=True, pinned={COLD})).clean
    assert await library.stored_objects() == await library.named_objects()
