"""The composition root: builds every adapter from settings, once, and hands out ports.

Handlers, workers and the CLI receive a ``Runtime``; none of them constructs an adapter.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from photostore.blobs.local import LocalBlobStore
from photostore.blobs.port import BlobStore
from photostore.cache.memory import MemoryCache
from photostore.events.port import EventLog
from photostore.events.sqlite_log import SqliteEventLog
from photostore.ids import placement_key_of
from photostore.metadata.factory import open_embedded_store
from photostore.metadata.port import MetadataStore
from photostore.pipeline.notify import Notifier
from photostore.placement.bucket_map import BucketMap
from photostore.placement.shard_map import ShardMap
from photostore.placement.store import PlacementStore
from photostore.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    placement: PlacementStore
    shard_map: ShardMap
    bucket_map: BucketMap
    metadata: MetadataStore
    blobs: BlobStore
    events: EventLog
    cache: MemoryCache
    notifier: Notifier = field(default_factory=Notifier)

    def shard_for(self, any_id: uuid.UUID) -> int:
        return self.shard_map.shard_for_key(placement_key_of(any_id))

    async def close(self) -> None:
        await self.events.close()
        await self.blobs.close()
        await self.metadata.close()
        await self.cache.close()


async def open_runtime(settings: Settings) -> Runtime:
    """Open every store the settings name (embedded: files under ``settings.data_dir``)."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    placement = PlacementStore(data_dir / "placement")
    shard_map, bucket_map = placement.load_or_init(settings)

    def shard_for_key(key: int) -> int:
        # Reads the runtime's current map, so a reloaded map takes effect at once.
        return runtime.shard_map.shard_for_key(key)

    metadata = open_embedded_store(settings, list(shard_map.shard_ids), shard_for_key)
    blobs = LocalBlobStore(data_dir / "buckets", list(bucket_map.buckets), fsync=settings.blobs.fsync)
    events = SqliteEventLog(data_dir / "events" / "log.db", settings.events.topics)
    cache = MemoryCache(
        max_bytes=settings.cache.max_bytes,
        default_ttl_s=settings.cache.ttl_s,
        max_item_bytes=settings.cache.max_item_bytes,
    )
    runtime = Runtime(settings, placement, shard_map, bucket_map, metadata, blobs, events, cache)
    try:
        await metadata.start()
        await blobs.start()
        await events.start()
    except BaseException:
        await runtime.close()
        raise
    return runtime
