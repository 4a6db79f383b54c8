"""The pipeline in one process on real embedded stores: upload, relay, the three consumer groups,
then every event delivered a second time, as at-least-once delivery will do after a crash."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from photostore.cache.memory import MemoryCache
from photostore.cache.tiered import TieredCache
from photostore.domain import OutboxRecord, PhotoStatus
from photostore.errors import BackendUnavailable
from photostore.events.port import Record
from photostore.metadata.port import MetadataStore
from photostore.pipeline.handlers import PipelineHandlers
from photostore.pipeline.messages import (
    PHOTO_DELETED,
    TOPIC_PROCESSING,
    TOPIC_THUMBNAILS,
    TOPIC_UPLOAD,
    photo_event,
)
from photostore.pipeline.reads import PhotoReader
from photostore.pipeline.reconciler import StalledPhotoReconciler
from photostore.pipeline.relay import OutboxRelay, ShardsFailed
from photostore.pipeline.upload import UploadService
from photostore.pipeline.users import create_user
from photostore.runtime import Runtime, open_runtime
from photostore.settings import load_settings
from tests.support import images

Handler = Callable[[Record], Awaitable[None]]


@dataclass
class Pipeline:
    runtime: Runtime
    uploads: UploadService
    relay: OutboxRelay
    handlers: PipelineHandlers

    async def deliver(self, group: str, topic: str, handle: Handler) -> list[Record]:
        """Relay pending events, then hand ``group`` everything new on ``topic`` once."""
        await self.relay.drain_all()
        consumer = await self.runtime.events.consumer(group, topic)
        try:
            records = await consumer.poll(100, 2.0)
            for record in records:
                await handle(record)
            await consumer.commit(records)
        finally:
            await consumer.close()
        return records

    def reconciler(self) -> StalledPhotoReconciler:
        """A reconciler that re-drives photos unchanged for a minute, with no backlog allowed."""
        r = self.runtime
        return StalledPhotoReconciler(r.metadata, r.events, r.notifier, after_s=60, max_lag=0)

    async def run_all_stages(self) -> list[tuple[Handler, Record]]:
        h = self.handlers
        delivered: list[tuple[Handler, Record]] = []
        for group, topic, handle in (
            ("dispatch", TOPIC_UPLOAD, h.dispatch),
            ("processing", TOPIC_PROCESSING, h.process),
            ("thumbnails", TOPIC_THUMBNAILS, h.thumbnails),
        ):
            delivered += [(handle, r) for r in await self.deliver(group, topic, handle)]
        return delivered


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    settings = load_settings(data_dir=tmp_path / "data")
    runtime = await open_runtime(settings)
    try:
        yield Pipeline(
            runtime,
            UploadService(
                runtime.metadata, runtime.blobs, runtime.bucket_map, settings.limits, runtime.notifier
            ),
            OutboxRelay(runtime.metadata, runtime.events, runtime.notifier, 0.05),
            PipelineHandlers(settings, runtime.metadata, runtime.blobs, runtime.cache, runtime.notifier),
        )
    finally:
        await runtime.close()


def bucket_files(runtime: Runtime) -> set[Path]:
    return {p for p in (runtime.settings.data_dir / "buckets").rglob("*") if p.is_file()}


async def end_offsets(runtime: Runtime) -> dict[str, int]:
    return {t.name: sum(t.end_offsets.values()) for t in await runtime.events.topics()}


async def test_each_stage_runs_once_and_redelivery_changes_nothing(pipeline: Pipeline) -> None:
    runtime = pipeline.runtime
    user, _ = await create_user(runtime.metadata, "alice")
    photo = (await pipeline.uploads.upload(user.id, images.jpeg(640, 480, seed=1))).photo

    delivered = await pipeline.run_all_stages()
    assert [r.topic for _, r in delivered] == [TOPIC_UPLOAD, TOPIC_PROCESSING, TOPIC_THUMBNAILS]
    ready = await runtime.metadata.get_photo_any_state(photo.id)
    assert ready is not None
    assert ready.status is PhotoStatus.READY
    assert ready.placeholder
    variants = await runtime.metadata.list_variants(photo.id)
    assert sorted(v.name for v in variants) == ["preview", "thumb"]
    files, offsets = bucket_files(runtime), await end_offsets(runtime)
    assert len(files) == 3

    for handle, record in delivered:  # every event again, in order
        await handle(record)
    assert await pipeline.relay.drain_all() == 0  # no new event was written
    assert await runtime.metadata.get_photo_any_state(photo.id) == ready
    assert await runtime.metadata.list_variants(photo.id) == variants
    assert bucket_files(runtime) == files
    assert await end_offsets(runtime) == offsets


async def test_a_deleted_photo_is_cleaned_up_once_and_never_revived(pipeline: Pipeline) -> None:
    runtime = pipeline.runtime
    user, _ = await create_user(runtime.metadata, "bob")
    photo = (await pipeline.uploads.upload(user.id, images.jpeg(320, 240, seed=2))).photo
    stages = await pipeline.run_all_stages()
    assert len(bucket_files(runtime)) == 3

    deleted = photo_event(TOPIC_UPLOAD, PHOTO_DELETED, photo.id, user.id)
    assert await runtime.metadata.delete_photo(user.id, photo.id, [deleted]) is not None
    cleanup = await pipeline.deliver("dispatch", TOPIC_UPLOAD, pipeline.handlers.dispatch)
    assert len(cleanup) == 1
    assert bucket_files(runtime) == set()

    # Late redeliveries of the upload's stages and of the delete itself change nothing.
    for handle, record in [*stages, (pipeline.handlers.dispatch, cleanup[0])]:
        await handle(record)
    assert bucket_files(runtime) == set()
    assert await runtime.metadata.get_photo(user.id, photo.id) is None
    assert await pipeline.relay.drain_all() == 0


async def test_a_page_of_views_reads_variants_once_for_all_photos(pipeline: Pipeline) -> None:
    runtime = pipeline.runtime
    user, _ = await create_user(runtime.metadata, "carol")
    ids = [
        (await pipeline.uploads.upload(user.id, images.jpeg(200, 150, seed=10 + i))).photo.id
        for i in range(3)
    ]
    await pipeline.run_all_stages()
    reader = PhotoReader(
        runtime.metadata, runtime.blobs, TieredCache(MemoryCache(1 << 20, 60, 1 << 16)), True
    )
    page = await runtime.metadata.list_photos(user.id, 10)
    views = await reader.page_views(user.id, page)
    assert [v.json["id"] for v in views] == [str(i) for i in reversed(ids)]
    for view in views:
        assert view.status == "ready"
        assert set(view.json["variants"]) == {"thumb", "preview"}
        assert set(view.blobs) == {"original", "thumb", "preview"}
    # The views are cached now: the single-photo read gives the same answer.
    assert (await reader.view(user.id, ids[0])).json == views[-1].json


async def test_a_photo_whose_event_was_lost_is_redriven_to_ready(pipeline: Pipeline) -> None:
    runtime = pipeline.runtime
    reconciler = pipeline.reconciler()
    user, _ = await create_user(runtime.metadata, "dora")
    lost = (await pipeline.uploads.upload(user.id, images.jpeg(320, 240, seed=20))).photo
    gone = (await pipeline.uploads.upload(user.id, images.jpeg(320, 240, seed=21))).photo

    async def drop(record: Record) -> None:  # the broker lost it: consumed, never handled
        pass

    assert len(await pipeline.deliver("dispatch", TOPIC_UPLOAD, drop)) == 2
    assert await runtime.metadata.delete_photo(user.id, gone.id, []) is not None
    assert await reconciler.pass_once() == []  # not stalled yet: both moved within after_s

    later = datetime.now(UTC) + timedelta(seconds=61)
    waiting = (await pipeline.uploads.upload(user.id, images.jpeg(320, 240, seed=22))).photo
    await pipeline.relay.drain_all()
    assert await reconciler.backlog() == 1  # its event waits in the queue: the pipeline is behind
    patient = pipeline.reconciler()
    assert await patient.pass_once(now=later) == []  # a backlog seen for the first time: wait
    assert patient.stats.skipped == 1
    assert len(await pipeline.deliver("dispatch", TOPIC_UPLOAD, pipeline.handlers.dispatch)) == 1
    await pipeline.run_all_stages()
    done = await runtime.metadata.get_photo_any_state(waiting.id)
    assert done is not None
    assert done.status is PhotoStatus.READY

    assert await reconciler.pass_once(now=later) == [lost.id]  # the deleted one stays deleted
    soon = datetime.now(UTC) + timedelta(seconds=30)
    assert await reconciler.pass_once(now=soon) == []  # the re-drive touched the row
    await pipeline.run_all_stages()

    ready = await runtime.metadata.get_photo_any_state(lost.id)
    assert ready is not None
    assert ready.status is PhotoStatus.READY
    assert sorted(v.name for v in await runtime.metadata.list_variants(lost.id)) == ["preview", "thumb"]
    assert await reconciler.pass_once(now=later + timedelta(hours=1)) == []  # ready: nothing left
    assert reconciler.stats.redriven == 1


class ShardDown:
    """The real store, except that one shard's outbox cannot be read (its database is down)."""

    def __init__(self, store: MetadataStore, down: int) -> None:
        self._store, self._down = store, down

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def pending_outbox(self, shard_id: int, limit: int) -> list[OutboxRecord]:
        if shard_id == self._down:
            raise BackendUnavailable(f"shard {shard_id} is down")
        return await self._store.pending_outbox(shard_id, limit)


async def test_the_relay_moves_the_other_shards_events_while_one_shard_is_down(pipeline: Pipeline) -> None:
    runtime = pipeline.runtime
    shard_of = runtime.metadata.shard_of  # type: ignore[attr-defined]
    users = [(await create_user(runtime.metadata, f"u{n}"))[0] for n in range(12)]
    by_shard: dict[int, list[uuid.UUID]] = {}
    for n, user in enumerate(users):
        photo = (await pipeline.uploads.upload(user.id, images.jpeg(64, 48, seed=30 + n))).photo
        by_shard.setdefault(shard_of(user.id), []).append(photo.id)
    assert len(by_shard) >= 2, "the users landed on one shard"
    down = min(by_shard)
    relay = OutboxRelay(ShardDown(runtime.metadata, down), runtime.events, runtime.notifier, 0.05)  # type: ignore[arg-type]

    with pytest.raises(ShardsFailed) as failed:
        await relay.drain_all()

    assert set(failed.value.errors) == {down}
    assert failed.value.moved == sum(len(ids) for shard, ids in by_shard.items() if shard != down)
    assert await pipeline.relay.drain_all() == len(by_shard[down])  # the shard is back: only its events


async def test_a_backlog_that_does_not_move_does_not_hold_the_reconciler_back(pipeline: Pipeline) -> None:
    runtime = pipeline.runtime
    reconciler = pipeline.reconciler()
    user, _ = await create_user(runtime.metadata, "erin")
    stalled = (await pipeline.uploads.upload(user.id, images.jpeg(320, 240, seed=40))).photo
    await pipeline.relay.drain_all()  # its event waits in photo-upload; no worker takes it
    later = datetime.now(UTC) + timedelta(seconds=61)

    assert await reconciler.pass_once(now=later) == []  # a backlog: first wait and see
    assert await reconciler.pass_once(now=later) == [stalled.id]  # nothing was consumed meanwhile
    assert reconciler.stats.skipped == 1
