"""One typed settings tree, read from a TOML file and ``PHOTOSTORE_*`` environment variables.

Precedence (highest first): constructor arguments, environment variables, the TOML file, defaults.
Nested keys use ``__`` in the environment: ``PHOTOSTORE_SERVER__PORT=9000``. Every model forbids
unknown keys, so a typo stops start-up with a message naming the key instead of being ignored.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from photostore.errors import ConfigError

ENV_PREFIX = "PHOTOSTORE_"
CONFIG_ENV = "PHOTOSTORE_CONFIG"
# PHOTOSTORE_* variables that are not settings: the config file path, and the uploader's API key.
NON_SETTING_ENV = frozenset({CONFIG_ENV, "PHOTOSTORE_API_KEY"})
TOPIC_NAMES = ("photo-upload", "photo-processing", "thumbnail-generation")
SECRET_MASK = "*" * 10


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64, description="HTTP worker processes")
    role: Literal["all", "api", "worker", "relay"] = "all"
    metrics_refresh_s: float = Field(
        default=5.0, gt=0, description="how often lag, queue depth, shard health and resource gauges refresh"
    )


class PoolSettings(Section):
    """The spec's PoolConfig, per shard."""

    max_open_conns: int = Field(default=20, ge=1)
    max_idle_conns: int = Field(default=5, ge=0)
    conn_max_lifetime_s: float = Field(default=3600.0, gt=0)
    conn_max_idle_time_s: float = Field(default=600.0, gt=0)


class PlacementSettings(Section):
    partition_power: int = Field(default=16, ge=4, le=24, description="2**power ring partitions")
    shards: int = Field(default=4, ge=1, le=4096, description="metadata shards at first start")
    buckets: int = Field(default=4, ge=1, le=4096, description="object buckets at first start")
    bucket_prefix: str = Field(default="photos-", pattern=r"^[a-z0-9][a-z0-9.-]{0,40}$")


class PostgresShardSettings(Section):
    """One shard's primary and read replicas (SQLAlchemy URLs; the driver is forced to asyncpg)."""

    id: int = Field(ge=0)
    dsn: SecretStr
    replicas: tuple[SecretStr, ...] = ()


class PostgresSettings(Section):
    dsn_template: SecretStr = Field(
        default=SecretStr("postgresql://postgres:postgres@127.0.0.1:5432/photo_shard_{shard}"),
        description="primary of shard N: {shard} is replaced by N; per-shard entries in `shards` win",
    )
    shards: tuple[PostgresShardSettings, ...] = ()
    replica_selector: Literal["round_robin", "latency"] = "round_robin"
    read_your_writes_s: float = Field(
        default=5.0, ge=0, description="a user's reads go to the primary for this long after their write"
    )
    replica_check_interval_s: float = Field(default=2.0, gt=0)
    latency_alpha: float = Field(default=0.2, gt=0, le=1, description="weight of a new latency sample")
    create_databases: bool = Field(default=True, description="CREATE DATABASE a missing shard at start")


class MetadataSettings(Section):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    pool: PoolSettings = PoolSettings()
    postgres: PostgresSettings = PostgresSettings()
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL", description="FULL fsyncs each commit: an acknowledged upload survives power loss"
    )


class S3EndpointSettings(Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    url: str = Field(description="e.g. http://127.0.0.1:8333 or https://s3.eu-west-1.amazonaws.com")
    region: str = "us-east-1"
    access_key_id: str
    secret_access_key: SecretStr
    allow_http: bool = False


class S3BucketSettings(Section):
    """The spec's StorageBucket: name, region, endpoint, capacity (used is measured)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,62}$")
    endpoint: str = Field(description="name of an entry in blobs.s3.endpoints")
    region: str | None = Field(default=None, description="defaults to the endpoint's region")
    capacity_bytes: int = Field(default=0, ge=0, description="0: unbounded")


class S3Settings(Section):
    endpoints: tuple[S3EndpointSettings, ...] = ()
    buckets: tuple[S3BucketSettings, ...] = Field(
        default=(),
        description="empty: placement.buckets buckets named by bucket_prefix on the first endpoint",
    )
    multipart_threshold_bytes: int = Field(default=16 * 1024 * 1024, ge=5 * 1024 * 1024)
    multipart_part_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)
    create_buckets: bool = True


class BlobSettings(Section):
    backend: Literal["local", "s3"] = "local"
    fsync: bool = Field(default=True, description="fsync objects and their folder before acknowledging")
    s3: S3Settings = S3Settings()


class TopicSettings(Section):
    partitions: int = Field(ge=1, le=4096)
    retention_ms: int = Field(ge=1000)


def _default_topics() -> dict[str, TopicSettings]:
    # The spec's Kafka topic layout.
    return {
        "photo-upload": TopicSettings(partitions=128, retention_ms=604_800_000),
        "photo-processing": TopicSettings(partitions=256, retention_ms=259_200_000),
        "thumbnail-generation": TopicSettings(partitions=64, retention_ms=86_400_000),
    }


class KafkaSettings(Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    partitions_scale: float = Field(
        default=1.0, gt=0, le=1, description="scales the spec's partition counts (at least 1 each)"
    )
    replication_factor: int = Field(default=1, ge=1)
    client_id: str = "photostore"
    request_timeout_s: float = Field(default=10.0, gt=0)
    namespace: str = Field(
        default="",
        max_length=100,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="prefix of every topic and consumer group on the broker (<namespace>.<name>), so "
        "several deployments can share one Kafka cluster; empty: the plain names",
    )


class EventSettings(Section):
    backend: Literal["sqlite", "kafka"] = "sqlite"
    kafka: KafkaSettings = KafkaSettings()
    topics: dict[str, TopicSettings] = Field(default_factory=_default_topics)
    relay_interval_s: float = Field(default=0.05, gt=0)
    worker_concurrency: int = Field(default=2, ge=1, le=256)
    # A photo still processing whose row has not changed for this long is re-driven through the
    # pipeline (its event was lost, e.g. by a broker that restarted without its log).
    redrive_after_s: float = Field(default=600.0, gt=0)
    # ... but not while the pipeline works through a backlog (total lag of its groups above this,
    # and moving): the photo may just be waiting in it, and re-driving would only grow the backlog.
    redrive_max_lag: int = Field(default=100, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _merge_topic_defaults(cls, data: Any) -> Any:
        """Fill what a topic override leaves out from the spec's defaults, field by field."""
        if not isinstance(data, dict) or not isinstance(data.get("topics"), dict):
            return data
        merged: dict[str, Any] = {name: t.model_dump() for name, t in _default_topics().items()}
        for name, value in data["topics"].items():
            known = merged.get(name)
            merged[name] = {**known, **value} if known is not None and isinstance(value, dict) else value
        return {**data, "topics": merged}

    @field_validator("topics")
    @classmethod
    def _known_topics(cls, topics: dict[str, TopicSettings]) -> dict[str, TopicSettings]:
        unknown = sorted(set(topics) - set(TOPIC_NAMES))
        if unknown:
            raise ValueError(f"unknown topic(s) {unknown}; topics are {list(TOPIC_NAMES)}")
        merged = _default_topics()
        merged.update(topics)
        return merged


class RedisSettings(Section):
    mode: Literal["single", "cluster", "ring"] = "single"
    url: str = Field(default="redis://127.0.0.1:6379/0", description="mode single")
    cluster_nodes: tuple[str, ...] = Field(default=(), description="mode cluster: host:port seeds")
    ring_nodes: tuple[str, ...] = Field(default=(), description="mode ring: independent redis:// URLs")
    ring_replication: int = Field(default=2, ge=1, description="copies of each key on the ring")
    socket_timeout_s: float = Field(default=0.25, gt=0)
    key_prefix: str = "ps:"


class CacheSettings(Section):
    """``memory`` is the in-process LRU; ``redis`` keeps it as a small first tier in front of Redis."""

    backend: Literal["memory", "redis"] = "memory"
    redis: RedisSettings = RedisSettings()
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    ttl_s: float = Field(default=300.0, gt=0)
    max_item_bytes: int = Field(default=2 * 1024 * 1024, ge=0, description="larger values are not cached")


class LimitSettings(Section):
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_pixels: int = Field(default=100_000_000, ge=1, description="width*height read from the header")
    max_frames: int = Field(default=1000, ge=1, description="animated images with more frames are refused")
    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "HEIF", "AVIF", "TIFF")


class ResumableSettings(Section):
    """Resumable uploads over tus 1.0 at /v1/uploads (photostore.pipeline.resumable)."""

    expire_after: timedelta = Field(
        default=timedelta(hours=24),
        description="an upload not finished this long after its creation is removed",
    )
    part_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        description="bytes of each multipart part (S3's minimum is 5 MiB); less is kept as a tail object",
    )
    lease_s: float = Field(
        default=30.0, gt=0, description="an append holds its upload this long, renewed while bytes arrive"
    )
    sweep_interval_s: float = Field(
        default=300.0, gt=0, description="expired uploads are looked for this often"
    )
    staging_bucket: str | None = Field(
        default=None, description="bucket of the parts of uploads in progress; default <bucket_prefix>uploads"
    )
    max_metadata_bytes: int = Field(default=4096, ge=64, description="longest Upload-Metadata header taken")

    @model_validator(mode="after")
    def _sane(self) -> ResumableSettings:
        if self.expire_after <= timedelta(0):
            raise ValueError("expire_after must be positive")
        return self


class RebalanceSettings(Section):
    """How `photostore rebalance` moves users between shards (see photostore.rebalance.shard_mover)."""

    parallel: int = Field(default=4, ge=1, le=64, description="batches of users moved at once")
    batch_keys: int = Field(
        default=32, ge=1, le=1000, description="users (placement keys) copied, fenced and switched together"
    )
    plan_grace_s: float = Field(
        default=2.0, ge=0, description="wait after a plan starts, so every process checks fences first"
    )
    cleanup_grace_s: float = Field(
        default=2.0, ge=0, description="wait after a switch before the source rows go (old views finish)"
    )
    object_grace_s: float = Field(
        default=20.0,
        ge=0,
        description="a moved object's source outlives its switch this long (views cached 10 s here + shared)",
    )


class TieringSettings(Section):
    """Storage tiers for originals (photostore.tiering): an original not read for ``cold_after`` moves
    to ``cold_bucket``; one read again moves back. Variants always stay hot."""

    cold_bucket: str | None = Field(
        default=None, description="bucket for cold originals, beside the placement's; unset: tiering off"
    )
    cold_after: timedelta = Field(
        default=timedelta(days=90), description="an original not read for this long goes cold"
    )
    warm_after: timedelta = Field(
        default=timedelta(days=30), description="cost optimize: originals idle this long suit a warm tier"
    )
    access_resolution: timedelta = Field(
        default=timedelta(hours=1),
        description="a process records one read of an original per this period (the rest cost nothing)",
    )
    access_flush_s: float = Field(default=10.0, gt=0, description="recorded reads are written this often")
    interval: timedelta = Field(
        default=timedelta(hours=1), description="tier run --watch: time between passes"
    )
    concurrency: int = Field(default=8, ge=1, le=256, description="originals copied at once")

    @model_validator(mode="after")
    def _sane(self) -> TieringSettings:
        if self.cold_after <= timedelta(0) or self.access_resolution <= timedelta(0):
            raise ValueError("cold_after and access_resolution must be positive")
        if self.access_resolution >= self.cold_after:
            raise ValueError("access_resolution must be shorter than cold_after, or reads would not count")
        if self.interval <= timedelta(0):
            raise ValueError("interval must be positive")
        return self


class RateLimitSettings(Section):
    """Requests per API key (photostore.ratelimit): GCRA, in Redis when the cache is."""

    enabled: bool = True
    requests_per_s: float = Field(default=200.0, gt=0, description="sustained requests a second, per key")
    burst: int = Field(
        default=1000,
        ge=1,
        description="requests at once after an idle period, per key (a grid of thumbnails)",
    )
    store: Literal["auto", "memory", "redis"] = Field(
        default="auto", description="auto: redis when cache.backend is redis (shared by every process)"
    )
    key_prefix: str = "rl:"


class IntegritySettings(Section):
    """Checking stored bytes against the SHA-256 kept with each object (photostore.integrity)."""

    verify_reads: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="share of whole-object reads from a bucket checked first (1: never serve a bad byte)",
    )
    quarantine_bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="where corrupt objects are moved; unset: <placement.bucket_prefix>quarantine",
    )
    gc_grace: timedelta = Field(
        default=timedelta(days=1),
        description="photostore gc deletes an object no row names only once it is this old",
    )


REGION_NAME = r"^[a-z][a-z0-9-]{0,40}$"


class RegionSettings(Section):
    """One region of the spec's multi-region deployment; every process knows all of them."""

    name: str = Field(pattern=REGION_NAME, description="e.g. us-west-2")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    role: Literal["primary", "secondary"] = "secondary"
    api_endpoints: tuple[str, ...] = Field(
        min_length=1, description="base URLs of the region's API (its load balancers), first preferred"
    )
    replica_dsn_templates: tuple[SecretStr, ...] = Field(
        default=(),
        description="this region's read replicas of every shard ({shard} is replaced by N); "
        "processes of the region read from these, and write to the primaries",
    )
    s3_read_endpoint: str | None = Field(
        default=None,
        description="name of a blobs.s3.endpoints entry holding this region's replica of the buckets "
        "(S3 Cross-Region Replication, SeaweedFS filer.sync): reads try it first, writes go home",
    )

    @field_validator("api_endpoints")
    @classmethod
    def _base_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"api endpoint {url!r} must be an http:// or https:// base URL")
        return tuple(url.rstrip("/") for url in urls)


class RegionsSettings(Section):
    local: str | None = Field(default=None, description="the region this process serves; unset: one region")
    regions: tuple[RegionSettings, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> RegionsSettings:
        names = [region.name for region in self.regions]
        if len(names) != len(set(names)):
            raise ValueError(f"region names must be unique, got {names}")
        primaries = [region.name for region in self.regions if region.role == "primary"]
        if self.regions and len(primaries) != 1:
            raise ValueError(f"exactly one region must have role 'primary', got {primaries}")
        if self.local is not None and self.local not in names:
            raise ValueError(f"regions.local {self.local!r} is not one of the regions {names}")
        return self

    def named(self, name: str) -> RegionSettings:
        for region in self.regions:
            if region.name == name:
                return region
        raise KeyError(name)

    @property
    def primary(self) -> RegionSettings | None:
        return next((region for region in self.regions if region.role == "primary"), None)


def _cidr_block(block: str, what: str) -> str:
    try:
        ipaddress.ip_network(block, strict=False)
    except ValueError as exc:
        raise ValueError(f"{what} {block!r} is not a CIDR block: {exc}") from None
    return block


class NetworkLocation(Section):
    """A CIDR block placed by hand: private networks, or where the GeoIP database is wrong."""

    cidr: str = Field(description="e.g. 10.20.0.0/16")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    label: str = ""

    @field_validator("cidr")
    @classmethod
    def _valid_cidr(cls, cidr: str) -> str:
        return _cidr_block(cidr, "cidr")


class GeoSettings(Section):
    database: Path | None = Field(
        default=None,
        description="a MaxMind City database (.mmdb); unset: the GeoLite2 file of maxminddb-geolite2",
    )
    networks: tuple[NetworkLocation, ...] = Field(default=(), description="checked before the database")
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="CIDR blocks whose X-Forwarded-For is believed (the edge, load balancers)",
    )
    cache_entries: int = Field(default=65536, ge=0, description="IP locations remembered (LRU)")

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, blocks: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_cidr_block(block, "trusted proxy") for block in blocks)


class HealthSettings(Section):
    """How the edge decides a region is up: active /readyz probes plus passive error rates."""

    probe_interval_s: float = Field(default=1.0, gt=0)
    probe_timeout_s: float = Field(default=1.0, gt=0)
    fall: int = Field(default=2, ge=1, description="consecutive failed probes that take a region down")
    rise: int = Field(default=3, ge=1, description="consecutive good probes that bring a region back")
    error_window_s: float = Field(default=10.0, gt=0, description="passive errors are counted over this")
    error_rate: float = Field(default=0.5, gt=0, le=1, description="a region above this error rate is down")
    min_requests: int = Field(default=20, ge=1, description="requests in the window before the rate counts")


class EdgeSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    byte_reads: Literal["proxy", "redirect"] = Field(
        default="redirect",
        description="GETs of originals, variants and signed CDN paths: 307 to the region (the bytes "
        "skip the edge) or proxied; a read carrying Authorization is always proxied, because "
        "clients drop credentials on a redirect to another host",
    )
    request_timeout_s: float = Field(default=60.0, gt=0)
    health: HealthSettings = HealthSettings()


class CdnProviderSettings(Section):
    """The spec's CDNProvider: its regions, an endpoint per region, and a priority (higher wins)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    regions: tuple[str, ...] = Field(min_length=1)
    endpoints: dict[str, str] = Field(description="region name -> base URL of the provider there")
    priority: int = 0

    @model_validator(mode="after")
    def _endpoint_per_region(self) -> CdnProviderSettings:
        missing = sorted(set(self.regions) - set(self.endpoints))
        if missing:
            raise ValueError(f"CDN provider {self.name!r} has no endpoint for region(s) {missing}")
        return self


class SigningKey(Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    secret: SecretStr = Field(min_length=16)


class Location(Section):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class CdnSettings(Section):
    providers: tuple[CdnProviderSettings, ...] = ()
    locations: dict[str, Location] = Field(
        default_factory=dict,
        description="where the providers' regions are, for names that are not photostore regions",
    )
    coverage_threshold: float = Field(default=0.8, ge=0, le=1)
    full_coverage_km: float = Field(default=1500.0, gt=0, description="coverage 1 within this distance")
    no_coverage_km: float = Field(default=8000.0, gt=0, description="coverage 0 beyond this distance")
    signing_keys: tuple[SigningKey, ...] = Field(
        default=(), max_length=2, description="at most two valid at once: the active one and the one retiring"
    )
    active_key: str | None = Field(default=None, description="id of the key new URLs are signed with")
    url_ttl_s: int = Field(default=3600, ge=60)

    @model_validator(mode="after")
    def _consistent(self) -> CdnSettings:
        ids = [key.id for key in self.signing_keys]
        if len(ids) != len(set(ids)):
            raise ValueError(f"signing key ids must be unique, got {ids}")
        if self.active_key is not None and self.active_key not in ids:
            raise ValueError(f"cdn.active_key {self.active_key!r} is not one of the signing keys {ids}")
        if self.providers and self.active_key is None:
            raise ValueError("CDN providers are set: cdn.active_key and cdn.signing_keys are needed too")
        if self.no_coverage_km <= self.full_coverage_km:
            raise ValueError("cdn.no_coverage_km must be larger than cdn.full_coverage_km")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.providers)


class ScalingRuleSettings(Section):
    """The spec's ScalingRule: when ``metric`` crosses ``threshold``, add or remove ``count``."""

    service: str = Field(description="what to scale: worker, api, upload, relay, edge")
    metric: str = Field(description="a metric the source knows (see photostore.ops.metric_sources)")
    threshold: float
    action: Literal["scale_up", "scale_down"]
    count: int = Field(default=1, ge=1)
    cooldown_s: float = Field(default=60.0, ge=0, description="this rule acts at most once per cooldown")


class ReplicaLimits(Section):
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaLimits:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}")
        return self


class ConsumerScalingSettings(Section):
    """The spec's ScaleConsumers: lag above ``scale_up_lag`` adds, below ``scale_down_lag`` removes."""

    enabled: bool = True
    service: str = "worker"
    scale_up_lag: float = 10_000
    add: int = Field(default=5, ge=1)
    max_consumers: int = Field(default=50, ge=1)
    scale_down_lag: float = 1_000
    remove: int = Field(default=2, ge=1)
    min_consumers: int = Field(default=5, ge=0)
    cooldown_s: float = Field(default=60.0, ge=0)


def _default_queries() -> dict[str, str]:
    # PromQL per metric name; {service} is replaced by the rule's service.
    return {
        "consumer_lag": "sum(max by (group, topic, partition) (photostore_consumer_lag))",
        "concurrent_uploads": 'sum(photostore_concurrent_uploads{service="{service}"})',
        "cpu": 'avg(photostore_resource_utilization{service="{service}", resource="cpu"})',
        "memory": 'avg(photostore_resource_utilization{service="{service}", resource="memory"})',
        "request_rate": 'sum(rate(photostore_requests_total{service="{service}"}[1m]))',
        "error_rate": 'sum(rate(photostore_requests_total{service="{service}", status=~"5.."}[5m]))'
        ' / sum(rate(photostore_requests_total{service="{service}"}[5m]))',
        "active_users": "sum(photostore_active_users)",
    }


class KubernetesScalingSettings(Section):
    namespace: str = "photostore"
    deployments: dict[str, str] = Field(
        default_factory=lambda: {s: f"photostore-{s}" for s in ("api", "upload", "worker", "relay", "edge")},
        description="service -> Deployment name",
    )
    in_cluster: bool = Field(default=True, description="false: use ~/.kube/config")


class AutoscaleSettings(Section):
    interval_s: float = Field(default=15.0, gt=0, description="how often the rules are evaluated")
    source: Literal["service", "prometheus"] = "service"
    service_urls: tuple[str, ...] = Field(
        default=("http://127.0.0.1:8000",), description="source service: processes whose /metrics are read"
    )
    prometheus_url: str = "http://127.0.0.1:9090"
    queries: dict[str, str] = Field(default_factory=_default_queries)
    actuator: Literal["local", "kubernetes"] = "local"
    kubernetes: KubernetesScalingSettings = KubernetesScalingSettings()
    limits: dict[str, ReplicaLimits] = Field(
        default_factory=dict,
        description="service -> replica bounds; they win over the consumer rule's min/max_consumers",
    )
    rules: tuple[ScalingRuleSettings, ...] = ()
    consumers: ConsumerScalingSettings = ConsumerScalingSettings()


class VariantSpec(Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    max_px: int = Field(ge=16, le=8192, description="longest side in pixels")
    format: Literal["WEBP", "JPEG", "AVIF", "PNG"]
    quality: int = Field(default=82, ge=1, le=100)


def _default_variants() -> tuple[VariantSpec, ...]:
    return (
        VariantSpec(name="thumb", max_px=256, format="WEBP", quality=80),
        VariantSpec(name="preview", max_px=1440, format="JPEG", quality=85),
    )


class ImagingSettings(Section):
    variants: tuple[VariantSpec, ...] = Field(default_factory=_default_variants)
    keep_gps_for_owner: bool = True

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: tuple[VariantSpec, ...]) -> tuple[VariantSpec, ...]:
        names = [v.name for v in variants]
        if len(names) != len(set(names)):
            raise ValueError(f"variant names must be unique, got {names}")
        if not variants:
            raise ValueError("at least one variant is required")
        return variants


class Settings(BaseSettings):
    """The whole configuration of one photostore process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Path("./data")
    admin_token: SecretStr | None = Field(
        default=None, description="bearer token for POST /v1/users; unset disables user creation over HTTP"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one object per line, with service, region and request_id"
    )
    server: ServerSettings = ServerSettings()
    placement: PlacementSettings = PlacementSettings()
    metadata: MetadataSettings = MetadataSettings()
    blobs: BlobSettings = BlobSettings()
    events: EventSettings = EventSettings()
    cache: CacheSettings = CacheSettings()
    limits: LimitSettings = LimitSettings()
    resumable: ResumableSettings = ResumableSettings()
    imaging: ImagingSettings = ImagingSettings()
    rebalance: RebalanceSettings = RebalanceSettings()
    tiering: TieringSettings = TieringSettings()
    integrity: IntegritySettings = IntegritySettings()
    ratelimit: RateLimitSettings = RateLimitSettings()
    regions: RegionsSettings = RegionsSettings()
    geo: GeoSettings = GeoSettings()
    edge: EdgeSettings = EdgeSettings()
    cdn: CdnSettings = CdnSettings()
    autoscale: AutoscaleSettings = AutoscaleSettings()

    @model_validator(mode="after")
    def _read_endpoints_exist(self) -> Settings:
        endpoints = {endpoint.name for endpoint in self.blobs.s3.endpoints}
        for region in self.regions.regions:
            if region.s3_read_endpoint is not None and region.s3_read_endpoint not in endpoints:
                raise ValueError(
                    f"region {region.name!r}: s3_read_endpoint {region.s3_read_endpoint!r} is not one of "
                    f"blobs.s3.endpoints {sorted(endpoints)}"
                )
        return self

    @model_validator(mode="after")
    def _cdn_regions_are_placed(self) -> Settings:
        known = {region.name for region in self.regions.regions} | set(self.cdn.locations)
        for provider in self.cdn.providers:
            unplaced = sorted(set(provider.regions) - known)
            if unplaced:
                raise ValueError(
                    f"CDN provider {provider.name!r}: region(s) {unplaced} are neither photostore regions "
                    "nor in cdn.locations, so their distance to a client is unknown"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_path = settings_cls.model_config.get("toml_file") or os.environ.get(CONFIG_ENV)
        if config_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(str(config_path))))
        return tuple(sources)


def _check_env_names(environ: dict[str, str]) -> None:
    """Refuse PHOTOSTORE_* variables that name no setting (pydantic-settings would ignore them)."""
    # pydantic-settings reads names case-insensitively, so the check must too.
    top = {name.upper() for name in Settings.model_fields}
    for name in environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in NON_SETTING_ENV:
            continue
        rest = upper[len(ENV_PREFIX) :]
        head = rest.split("__", 1)[0]
        if head not in top:
            raise ConfigError(f"unknown setting in environment variable {name}: no setting {head.lower()!r}")


_SECRET_WORDS = ("secret", "dsn", "token", "password", "key")


def _shown_input(where: str, value: Any) -> str:
    """The bad value for an error message: plain values only, and never one that may be a secret.

    A whole section (a model-level check failed) may hold secrets anywhere inside, so it is not
    shown; the message names the key, which is what the reader needs.
    """
    if isinstance(value, (dict, list, tuple)) or any(word in where.lower() for word in _SECRET_WORDS):
        return ""
    return f" (got {value!r})"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, or raise ConfigError naming every bad key and value."""
    settings_cls = Settings
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config file {config_file} does not exist")

        class FileSettings(Settings):  # the file named here wins over PHOTOSTORE_CONFIG
            model_config = SettingsConfigDict(toml_file=config_file)

        settings_cls = FileSettings
    elif (path := os.environ.get(CONFIG_ENV)) and not Path(path).is_file():
        raise ConfigError(f"{CONFIG_ENV}={path}: file does not exist")
    _check_env_names(dict(os.environ))
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"]) or "(root)"
            problems.append(f"  {where}: {err['msg']}{_shown_input(where, err.get('input'))}")
        raise ConfigError("invalid settings:\n" + "\n".join(problems)) from None
    except ValueError as exc:  # TOML syntax errors surface here
        raise ConfigError(f"cannot read settings: {exc}") from None


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, secrets replaced by '**********'."""
    data = settings.model_dump(mode="json")
    if settings.admin_token is not None:
        data["admin_token"] = SECRET_MASK
    return data
