"""The composition root: builds every adapter from settings, once, and hands out ports.

Handlers, workers and the CLI receive a ``Runtime``; none of them constructs an adapter. Each
engine is chosen by its ``backend`` setting: the embedded twins by default, the cluster engines
(PostgreSQL, S3, Kafka, Redis) by settings alone. Cluster adapters are imported only when chosen.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from photostore.blobs.port import BlobStore
from photostore.cache.memory import MemoryCache
from photostore.cache.port import Cache
from photostore.cache.tiered import TieredCache
from photostore.errors import ConfigError
from photostore.events.port import EventLog
from photostore.ids import placement_key_of
from photostore.integrity.quarantine import quarantine_bucket
from photostore.metadata.port import MetadataStore
from photostore.pipeline.notify import Notifier
from photostore.placement.bucket_map import BucketMap
from photostore.placement.shard_map import ShardMap
from photostore.placement.store import PlacementStore
from photostore.rebalance.control import ControlStore
from photostore.rebalance.routing import Routing, RoutingHolder
from photostore.rebalance.watcher import RoutingWatcher, load_routing, plan_shards
from photostore.settings import S3EndpointSettings, S3Settings, Settings
from photostore.tiering.buckets import cold_buckets

# How long this process keeps what it read from a shared cache: the most another process's delete
# takes to be seen here.
SHARED_CACHE_LOCAL_TTL_S = 10.0


@dataclass
class Runtime:
    settings: Settings
    placement: PlacementStore
    control: ControlStore
    routing: RoutingHolder
    bucket_map: BucketMap
    metadata: MetadataStore
    blobs: BlobStore
    events: EventLog
    cache: TieredCache
    notifier: Notifier = field(default_factory=Notifier)
    # Called with the new view whenever the routing watcher installs one (e.g. a new bucket map).
    on_routing_change: list[Callable[[Routing], None]] = field(default_factory=list)

    @property
    def shard_map(self) -> ShardMap:
        """The shard map in force in this process (a running rebalance may override single keys)."""
        return self.routing.routing.shard_map

    def shard_for(self, any_id: uuid.UUID) -> int:
        return self.routing.shard_for_key(placement_key_of(any_id))

    def routing_watcher(self) -> RoutingWatcher:
        """A watcher that keeps this runtime's routing (and bucket map) current; run it in the
        background of every long-lived process."""
        metadata, blobs, placement = self.metadata, self.blobs, self.placement

        async def prepare(shard_ids: set[int]) -> None:
            ensure = getattr(metadata, "ensure_shards", None)
            if ensure is not None:
                await ensure(shard_ids)
            for bucket in set(placement.bucket_map.buckets) - set(blobs.buckets()):
                await blobs.add_bucket(bucket)

        def changed(routing: Routing) -> None:
            self.bucket_map = placement.bucket_map
            for listener in self.on_routing_change:
                listener(routing)

        return RoutingWatcher(self.placement, self.control, self.routing, prepare, changed)

    async def close(self) -> None:
        await self.events.close()
        await self.blobs.close()
        await self.metadata.close()
        await self.cache.close()


def build_metadata(
    settings: Settings, shard_ids: list[int], shard_for_key: Callable[[int], int]
) -> MetadataStore:
    if settings.metadata.backend == "postgres":
        from photostore.metadata.factory import open_postgres_from_settings

        return open_postgres_from_settings(settings, shard_ids, shard_for_key)
    from photostore.metadata.factory import open_embedded_store

    return open_embedded_store(settings, shard_ids, shard_for_key)


def build_blobs(settings: Settings, bucket_names: list[str]) -> BlobStore:
    if settings.blobs.backend == "s3":
        from photostore.blobs.s3 import S3BlobStore

        home = S3BlobStore.from_settings(settings.blobs.s3, bucket_names)
        read_endpoint = _regional_read_endpoint(settings)
        if read_endpoint is None:
            return home
        from photostore.blobs.regional import RegionalReads

        # The replica's buckets carry the home names, on the region's endpoint; never created here.
        replica_settings = S3Settings(endpoints=(read_endpoint,), create_buckets=False)
        replica = S3BlobStore.from_settings(replica_settings, bucket_names)
        return RegionalReads(home, replica, read_endpoint.name)
    from photostore.blobs.local import LocalBlobStore

    return LocalBlobStore(settings.data_dir / "buckets", bucket_names, fsync=settings.blobs.fsync)


def _bucket_names(settings: Settings, bucket_map: BucketMap) -> list[str]:
    """The map's buckets, then the cold tier's. The quarantine is opened on first use (most
    deployments never need it). No map may name either: a rebalance would fill them."""
    own = {name: "tiering.cold_bucket" for name in cold_buckets(settings)}
    quarantine = quarantine_bucket(settings)
    if quarantine in own:
        raise ConfigError("tiering.cold_bucket and integrity.quarantine_bucket must be different buckets")
    own[quarantine] = "integrity.quarantine_bucket"
    for name, setting in own.items():
        if name in bucket_map.buckets:
            raise ConfigError(
                f"{setting} {name!r} is one of the placement's buckets {list(bucket_map.buckets)}; "
                "choose a bucket of its own"
            )
    return [*bucket_map.buckets, *cold_buckets(settings)]


def _regional_read_endpoint(settings: Settings) -> S3EndpointSettings | None:
    """The S3 endpoint of this process's region's bucket replica, if it has one."""
    if settings.regions.local is None:
        return None
    name = settings.regions.named(settings.regions.local).s3_read_endpoint
    return next((e for e in settings.blobs.s3.endpoints if e.name == name), None)


def build_events(settings: Settings) -> EventLog:
    if settings.events.backend == "kafka":
        from photostore.events.kafka_log import KafkaEventLog

        return KafkaEventLog(settings.events.kafka, settings.events.topics)
    from photostore.events.sqlite_log import SqliteEventLog

    return SqliteEventLog(settings.data_dir / "events" / "log.db", settings.events.topics)


def build_cache(settings: Settings) -> TieredCache:
    local = MemoryCache(
        max_bytes=settings.cache.max_bytes,
        default_ttl_s=settings.cache.ttl_s,
        max_item_bytes=settings.cache.max_item_bytes,
    )
    shared: Cache | None = None
    if settings.cache.backend == "redis":
        from photostore.cache.redis_cache import open_cache_backend

        shared = open_cache_backend(
            settings.cache.redis,
            default_ttl_s=settings.cache.ttl_s,
            max_item_bytes=settings.cache.max_item_bytes,
        )
    return TieredCache(local, shared, SHARED_CACHE_LOCAL_TTL_S)


async def open_runtime(settings: Settings) -> Runtime:
    """Open every store the settings name (embedded: files under ``settings.data_dir``)."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    placement = PlacementStore(data_dir / "placement")
    _, bucket_map = placement.load_or_init(settings)
    control = ControlStore(placement.directory)
    opened: list[MetadataStore] = []

    def open_shards() -> Sequence[int]:
        return opened[0].shard_ids() if opened else ()

    holder = RoutingHolder(
        load_routing(placement, control),
        version=control.version,
        load=lambda: load_routing(placement, control),
        open_shards=open_shards,
    )
    shard_ids = holder.routing.shard_ids() | plan_shards(control)
    metadata = build_metadata(settings, sorted(shard_ids), holder.shard_for_key)
    opened.append(metadata)
    set_policy = getattr(metadata, "set_fence_policy", None)
    if set_policy is not None:
        set_policy(holder.needs_fence_check)

    runtime = Runtime(
        settings,
        placement,
        control,
        holder,
        bucket_map,
        metadata,
        build_blobs(settings, _bucket_names(settings, bucket_map)),
        build_events(settings),
        build_cache(settings),
    )
    try:
        await runtime.metadata.start()
        await runtime.blobs.start()
        await runtime.events.start()
    except BaseException:
        await runtime.close()
        raise
    return runtime
