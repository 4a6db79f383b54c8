"""The access tracker on a real embedded store: one write per photo per resolution, batched,
written on a timer, kept when the write fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from photostore.domain import Photo
from photostore.errors import BackendUnavailable
from photostore.metadata.engines import build_postgres_engine
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.pipeline.access import AccessTracker
from photostore.placement.bucket_map import BucketMap
from photostore.settings import PoolSettings
from tests.support.photo_library import Library, embedded_spec, open_library, seed_library

MAP = BucketMap.create(1, prefix="access-")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def library(tmp_path: Path) -> AsyncIterator[Library]:
    async with open_library(embedded_spec(tmp_path, MAP.buckets), MAP) as opened:
        yield opened


async def last_read(library: Library, photo: Photo) -> datetime | None:
    found = await library.metadata.get_photo(photo.owner_id, photo.id)
    assert found is not None
    return found.last_accessed_at


async def test_reads_within_the_resolution_are_written_once(library: Library) -> None:
    (first, _), (second, _) = await seed_library(library, users=1, photos_per_user=2)
    clock = Clock()
    tracker = AccessTracker(library.metadata, resolution_s=60, flush_s=10, clock=clock)
    for _ in range(5):
        tracker.original_read(str(first.id))
    tracker.original_read(str(second.id))
    assert tracker.pending == 2
    assert await tracker.flush() == 2
    assert await last_read(library, first) == datetime.fromtimestamp(clock.now, UTC)
    assert tracker.stats.reads == 6

    clock.now += 59  # still within the resolution: nothing new to write
    tracker.original_read(str(first.id))
    assert await tracker.flush() == 0
    clock.now += 2
    tracker.original_read(str(first.id))
    assert await tracker.flush() == 1
    assert await last_read(library, first) == datetime.fromtimestamp(clock.now, UTC)
    assert tracker.stats.recorded == 3


async def test_the_runner_flushes_on_its_timer(library: Library) -> None:
    ((photo, _),) = await seed_library(library, users=1, photos_per_user=1)
    tracker = AccessTracker(library.metadata, resolution_s=60, flush_s=0.05)
    runner = asyncio.create_task(tracker.run())
    try:
        tracker.original_read(str(photo.id))
        for _ in range(100):
            if await last_read(library, photo) is not None:
                break
            await asyncio.sleep(0.02)
        assert await last_read(library, photo) is not None
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_a_failed_write_keeps_the_reads_for_the_next_flush(library: Library) -> None:
    ((photo, _),) = await seed_library(library, users=1, photos_per_user=1)
    # A store on a PostgreSQL port nothing listens on: the write really fails.
    down = SqlMetadataStore(
        {0: build_postgres_engine("postgresql://127.0.0.1:9/none", PoolSettings(), connect_timeout_s=1)},
        lambda key: 0,
    )
    clock = Clock()
    tracker = AccessTracker(down, resolution_s=60, flush_s=10, clock=clock)
    tracker.original_read(str(photo.id))
    with pytest.raises(BackendUnavailable):
        await down.record_accesses({photo.id: datetime.now(UTC)})
    assert await tracker.flush() == 0
    assert tracker.pending == 1
    assert tracker.stats.write_failures == 1
    await down.close()

    # The same reads, handed to a working store, land with their original time.
    tracker._metadata = library.metadata
    assert await tracker.flush() == 1
    assert await last_read(library, photo) == datetime.fromtimestamp(clock.now, UTC)


async def test_bad_periods_are_refused(library: Library) -> None:
    with pytest.raises(ValueError, match="positive"):
        AccessTracker(library.metadata, resolution_s=0, flush_s=1)
    with pytest.raises(ValueError, match="positive"):
        AccessTracker(library.metadata, resolution_s=1, flush_s=0)
