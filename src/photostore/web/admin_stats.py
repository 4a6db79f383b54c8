"""What the operator dashboard shows, gathered at a bounded cost: the body of ``/v1/admin/stats``.

Two kinds of figures:
- This process's own counters (requests by route and status class, latency quantiles from the
  histogram's buckets, uploads, cache hits): read from memory, no I/O, always present.
- Figures held by the engines (users and photos per shard, objects and bytes per bucket, consumer
  lag per topic and partition, region health): each section is read through a ``Snapshot``, which
  keeps at most one read in flight and reuses its result for a few seconds, so any number of
  dashboards refreshing every few seconds cost the engines one read per section per TTL. A read
  that does not answer within ``SECTION_TIMEOUT_S`` (an engine is down) makes that section an
  error entry; the rest of the page still answers.

Bucket figures come from listing the buckets (no store keeps per-bucket counters), so they are
reused for ``BUCKETS_TTL_S`` and, while a new listing runs, the previous one is shown with its age.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import httpx
from prometheus_client import Counter, Histogram

from photostore.api.metrics import ApiMetrics
from photostore.blobs.usage import bucket_usage
from photostore.errors import PhotostoreError
from photostore.events.port import EventLog
from photostore.ops.top import quantile
from photostore.pipeline.messages import PIPELINE_GROUPS
from photostore.runtime import Runtime
from photostore.settings import RegionsSettings
from photostore.tiering.buckets import cold_buckets

log = logging.getLogger(__name__)

SECTION_TIMEOUT_S = 3.0  # the longest a section's read may hold up the answer
SHARDS_TTL_S = 2.0  # counting a shard's rows scans its tables: not more often than this
TOPICS_TTL_S = 2.0
BUCKETS_TTL_S = 30.0  # a listing costs one request per 1000 objects
REGIONS_TTL_S = 5.0
QUANTILES = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}

T = TypeVar("T")
Json = dict[str, Any]


# --- reading engines at a bounded cost -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading(Generic[T]):
    value: T
    age_s: float  # how long ago the value was read


class Snapshot(Generic[T]):
    """The latest result of an expensive read: reused while younger than ``ttl_s``, at most one read
    in flight however many callers ask, and the previous result (with its age) while a new read
    takes longer than a caller will wait.

    A read that is still running when its caller stops waiting goes on in the background; its
    result serves the next callers. A failed read raises to the callers waiting for it.
    """

    def __init__(
        self, read: Callable[[], Awaitable[T]], ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._read = read
        self._ttl_s = ttl_s
        self._clock = clock
        self._last: tuple[float, T] | None = None  # (when it was read, value)
        self._task: asyncio.Task[T] | None = None

    async def get(self, timeout_s: float) -> Reading[T]:
        now = self._clock()
        if self._last is not None and now - self._last[0] < self._ttl_s:
            return Reading(self._last[1], now - self._last[0])
        if self._task is None:
            self._task = asyncio.create_task(self._run())
            self._task.add_done_callback(_retrieve)
        try:
            value = await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            if self._last is None:
                raise
            return Reading(self._last[1], self._clock() - self._last[0])
        return Reading(value, 0.0)

    async def _run(self) -> T:
        try:
            value = await self._read()
        finally:
            self._task = None
        self._last = (self._clock(), value)
        return value


def _retrieve(task: asyncio.Task[Any]) -> None:
    # A read whose callers all stopped waiting has no one to see its error: mark it seen (the next
    # caller starts a new read and gets its own error), so asyncio does not log it as lost.
    if not task.cancelled():
        task.exception()


async def section(name: str, read: Awaitable[Json], empty: Json, timeout_s: float) -> Json:
    """``read``'s result with ``"error": None``, or ``empty`` with the error's text: one engine down
    (or slow) must not fail the whole page."""
    try:
        found = await read
    except TimeoutError:
        return {**empty, "error": f"no answer within {timeout_s:g} s"}
    except PhotostoreError as exc:
        return {**empty, "error": exc.detail}
    except Exception as exc:  # a bug in one section must leave the others readable
        log.exception("reading the %s section of the dashboard failed", name)
        return {**empty, "error": f"internal error ({type(exc).__name__}); the error was logged"}
    return {**found, "error": None}


# --- engines -----------------------------------------------------------------------------------------


async def read_shards(runtime: Runtime) -> list[Json]:
    """Users, live photos and bytes of live originals per shard, in shard order."""
    stats = await runtime.metadata.shard_stats()
    return [
        {
            "shard": s.shard_id,
            "users": s.users,
            "photos": s.photos,
            "bytes": s.bytes,
            "pending_outbox": s.pending_outbox,
        }
        for s in sorted(stats, key=lambda s: s.shard_id)
    ]


async def read_buckets(runtime: Runtime) -> list[Json]:
    """Objects and bytes of every bucket of the map, then the cold tier's, listed concurrently; a
    bucket that fails to list is an entry with its error, the others are still counted."""
    cold = sorted(cold_buckets(runtime.settings))
    names = [*runtime.bucket_map.buckets, *cold]
    counted = await asyncio.gather(
        *(bucket_usage(runtime.blobs, name) for name in names), return_exceptions=True
    )
    items: list[Json] = []
    for name, result in zip(names, counted, strict=True):
        item: Json = {"bucket": name, "tier": "cold" if name in cold else "hot"}
        if isinstance(result, PhotostoreError):
            item.update(objects=None, bytes=None, error=result.detail)
        elif isinstance(result, BaseException):
            raise result
        else:
            item.update(objects=result[0], bytes=result[1], error=None)
        items.append(item)
    return items


async def read_topics(events: EventLog) -> list[Json]:
    """Each topic with its partitions, records written, and for each pipeline group that reads it
    the lag of every partition, indexed by partition (0 for one that never had a record)."""
    infos = await events.topics()
    known = {info.name for info in infos}
    pairs = [(group, topic) for group, topic in PIPELINE_GROUPS if topic in known]
    lags = await asyncio.gather(*(events.lag(group, topic) for group, topic in pairs))
    by_pair = dict(zip(pairs, lags, strict=True))
    items = []
    for info in sorted(infos, key=lambda i: i.name):
        groups = []
        for group, topic in pairs:
            if topic == info.name:
                lag = [by_pair[(group, topic)].get(p, 0) for p in range(info.partitions)]
                groups.append({"group": group, "total": sum(lag), "max": max(lag, default=0), "lag": lag})
        items.append(
            {
                "topic": info.name,
                "partitions": info.partitions,
                "retention_ms": info.retention_ms,
                "records": sum(info.end_offsets.values()),
                "groups": groups,
            }
        )
    return items


async def probe_endpoint(client: httpx.AsyncClient, url: str) -> Json:
    """One GET of ``url``/readyz: healthy when it answers 200 in time (the edge's probe)."""
    started = time.perf_counter()
    try:
        response = await client.get(f"{url}/readyz")
    except httpx.HTTPError as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return {"url": url, "healthy": False, "reason": reason, "latency_ms": None}
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    healthy = response.status_code == 200
    reason = "ready" if healthy else f"/readyz answered {response.status_code}"
    return {"url": url, "healthy": healthy, "reason": reason, "latency_ms": latency_ms}


async def read_regions(regions: RegionsSettings, timeout_s: float) -> list[Json]:
    """Each configured region, healthy while any of its endpoints answers ``/readyz`` (one probe
    each, all at once); an empty list when no regions are configured."""
    if not regions.regions:
        return []
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        probed = await asyncio.gather(
            *(
                asyncio.gather(*(probe_endpoint(client, url) for url in region.api_endpoints))
                for region in regions.regions
            )
        )
    return [
        {
            "name": region.name,
            "role": region.role,
            "local": region.name == regions.local,
            "healthy": any(endpoint["healthy"] for endpoint in endpoints),
            "endpoints": endpoints,
        }
        for region, endpoints in zip(regions.regions, probed, strict=True)
    ]


# --- this process's counters -------------------------------------------------------------------------


def _samples(metric: Counter | Histogram, suffix: str) -> Iterable[tuple[Mapping[str, str], float]]:
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(suffix):
                yield sample.labels, sample.value


def latency_summary(buckets: Mapping[float, float]) -> Json:
    """Count and p50/p95/p99 (ms) from cumulative counts by upper bound (``le``), interpolated
    within a bucket like Prometheus' ``histogram_quantile``; None when nothing was observed."""
    summary: Json = {"count": int(buckets.get(math.inf, 0))}
    for name, q in QUANTILES.items():
        seconds = quantile(q, dict(buckets))
        summary[name] = None if seconds is None else round(seconds * 1000, 3)
    return summary


def request_stats(metrics: ApiMetrics) -> Json:
    """Requests of this process since it started: by route and status class, and latency."""
    by_route: dict[str, dict[str, int]] = {}
    by_class: dict[str, int] = {}
    for labels, value in _samples(metrics.requests, "_total"):
        status_class = f"{labels['status'][:1]}xx"
        route = by_route.setdefault(labels["route"], {})
        route[status_class] = route.get(status_class, 0) + int(value)
        by_class[status_class] = by_class.get(status_class, 0) + int(value)
    overall: dict[float, float] = {}
    per_route: dict[str, dict[float, float]] = {}
    for labels, value in _samples(metrics.latency, "_bucket"):
        bound = float(labels["le"])
        overall[bound] = overall.get(bound, 0.0) + value
        route_buckets = per_route.setdefault(labels["route"], {})
        route_buckets[bound] = route_buckets.get(bound, 0.0) + value
    return {
        "total": sum(by_class.values()),
        "by_status_class": dict(sorted(by_class.items())),
        "by_route": dict(sorted(by_route.items())),
        "latency": {
            **latency_summary(overall),
            # cumulative counts by upper bound, so a client can take quantiles of an interval
            "buckets": [[_bound_text(b), int(c)] for b, c in sorted(overall.items())],
        },
        "latency_by_route": {route: latency_summary(b) for route, b in sorted(per_route.items())},
    }


def _bound_text(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def upload_stats(metrics: ApiMetrics) -> Json:
    """Uploads this process answered since it started, by outcome."""
    counts = {"created": 0, "deduplicated": 0}
    for labels, value in _samples(metrics.uploads, "_total"):
        counts[labels["result"]] = counts.get(labels["result"], 0) + int(value)
    return counts


def _ratio(hits: float, misses: float) -> float | None:
    return None if hits + misses == 0 else round(hits / (hits + misses), 4)


def cache_stats(stats: Mapping[str, float]) -> Json:
    """Hits, misses and hit ratio of this process's cache (the local tier), and of the shared tier
    (Redis, the ring) as this process saw it, when there is one."""
    hits, misses = int(stats.get("hits", 0)), int(stats.get("misses", 0))
    found: Json = {"hits": hits, "misses": misses, "hit_ratio": _ratio(hits, misses), "shared": None}
    if "shared_hits" in stats:
        shared_hits, shared_misses = int(stats["shared_hits"]), int(stats.get("shared_misses", 0))
        found["shared"] = {
            "hits": shared_hits,
            "misses": shared_misses,
            "hit_ratio": _ratio(shared_hits, shared_misses),
        }
    return found


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the whole document ------------------------------------------------------------------------------


class StatsGatherer:
    """One per process: the snapshots of every engine-backed section, and the document they make."""

    def __init__(self, runtime: Runtime, metrics: ApiMetrics, timeout_s: float = SECTION_TIMEOUT_S) -> None:
        self._runtime = runtime
        self._metrics = metrics
        self._timeout_s = timeout_s
        probe_timeout_s = min(runtime.settings.edge.health.probe_timeout_s, timeout_s)
        self.shards = Snapshot(lambda: read_shards(runtime), SHARDS_TTL_S)
        self.buckets = Snapshot(lambda: read_buckets(runtime), BUCKETS_TTL_S)
        self.topics = Snapshot(lambda: read_topics(runtime.events), TOPICS_TTL_S)
        regions = runtime.settings.regions
        self.regions = Snapshot(lambda: read_regions(regions, probe_timeout_s), REGIONS_TTL_S)

    async def gather(self) -> Json:
        started = time.perf_counter()
        timeout = self._timeout_s
        shards, buckets, topics, regions = await asyncio.gather(
            section("shards", self._shards(), {"items": [], "totals": None, "age_s": None}, timeout),
            section("buckets", self._items(self.buckets), {"items": [], "age_s": None}, timeout),
            section("topics", self._items(self.topics), {"items": [], "age_s": None}, timeout),
            section("regions", self._items(self.regions), {"items": [], "age_s": None}, timeout),
        )
        routing = self._runtime.routing.routing
        shards.update(
            shard_map_version=routing.shard_map.version,
            routing_version=routing.version,
            bucket_map_version=self._runtime.bucket_map.version,
        )
        return {
            "generated_at": timestamp(datetime.now(UTC)),
            "process": {"service": self._metrics.service, "region": self._metrics.region},
            "shards": shards,
            "buckets": buckets,
            "topics": topics,
            "cache": cache_stats(self._runtime.cache.stats()),
            "regions": regions,
            "requests": request_stats(self._metrics),
            "uploads": upload_stats(self._metrics),
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
        }

    async def _shards(self) -> Json:
        reading = await self.shards.get(self._timeout_s)
        totals = {name: sum(item[name] for item in reading.value) for name in ("users", "photos", "bytes")}
        return {"items": reading.value, "totals": totals, "age_s": round(reading.age_s, 1)}

    async def _items(self, snapshot: Snapshot[list[Json]]) -> Json:
        reading = await snapshot.get(self._timeout_s)
        return {"items": reading.value, "age_s": round(reading.age_s, 1)}
