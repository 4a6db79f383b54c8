"""The dashboard's figures: quantiles from histogram buckets, counters by route and status class,
cache ratios, lag filled in per partition, and reads of the engines that stay bounded (one in
flight, reused for their TTL) and degrade to an error entry when an engine is down or slow."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from photostore.api.metrics import ApiMetrics
from photostore.blobs.port import BlobInfo
from photostore.domain import ShardStats
from photostore.errors import BackendUnavailable
from photostore.events.port import TopicInfo
from photostore.placement.shard_map import ShardMap
from photostore.rebalance.routing import Routing
from photostore.settings import RegionSettings, RegionsSettings, load_settings
from photostore.web.admin_stats import (
    Snapshot,
    StatsGatherer,
    cache_stats,
    latency_summary,
    probe_endpoint,
    read_buckets,
    read_regions,
    read_topics,
    request_stats,
    section,
    timestamp,
    upload_stats,
)
from tests.support.engines.availability import free_port

INF = math.inf


# --- this process's counters -------------------------------------------------------------------------


def test_quantiles_interpolate_within_the_bucket_that_holds_the_rank() -> None:
    # 50 requests under 1 ms, 45 between 2.5 and 5 ms, 5 between 100 and 250 ms (cumulative counts).
    buckets = {0.001: 50, 0.0025: 50, 0.005: 95, 0.01: 95, 0.1: 95, 0.25: 100, INF: 100}
    summary = latency_summary(buckets)
    assert summary["count"] == 100
    assert summary["p50_ms"] == pytest.approx(1.0)  # rank 50: the top of the first bucket
    assert summary["p95_ms"] == pytest.approx(5.0)  # rank 95: 0.0025 + 0.0025 * 45/45
    assert summary["p99_ms"] == pytest.approx(220.0)  # rank 99: 0.1 + 0.15 * 4/5


def test_quantiles_in_the_open_last_bucket_are_the_highest_finite_bound() -> None:
    summary = latency_summary({0.5: 1, 1.0: 2, INF: 10})
    assert summary == {"count": 10, "p50_ms": 1000.0, "p95_ms": 1000.0, "p99_ms": 1000.0}


def test_no_observations_give_no_quantiles() -> None:
    assert latency_summary({}) == {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None}
    assert latency_summary({0.1: 0, INF: 0})["p50_ms"] is None


def _observe(metrics: ApiMetrics, route: str, method: str, status: int, seconds: float, times: int) -> None:
    for _ in range(times):
        metrics.requests.labels(metrics.service, metrics.region, route, method, str(status)).inc()
        metrics.latency.labels(metrics.service, metrics.region, route).observe(seconds)


def test_requests_by_route_and_status_class_with_latency_of_all_routes_and_each() -> None:
    metrics = ApiMetrics()
    _observe(metrics, "/v1/photos", "POST", 201, 0.02, 3)  # 25 ms bucket
    _observe(metrics, "/v1/photos", "GET", 200, 0.004, 4)  # 5 ms bucket
    _observe(metrics, "/v1/photos", "POST", 413, 0.004, 1)
    _observe(metrics, "/v1/photos/{photo_id}", "GET", 404, 0.0005, 2)  # 1 ms bucket
    _observe(metrics, "/v1/photos/{photo_id}", "GET", 503, 0.0005, 1)
    stats = request_stats(metrics)

    assert stats["total"] == 11
    assert stats["by_status_class"] == {"2xx": 7, "4xx": 3, "5xx": 1}
    assert stats["by_route"] == {
        "/v1/photos": {"2xx": 7, "4xx": 1},
        "/v1/photos/{photo_id}": {"4xx": 2, "5xx": 1},
    }
    latency = stats["latency"]
    assert latency["count"] == 11
    # cumulative: 3 under 1 ms, 8 under 5 ms, 11 under 25 ms
    assert ["0.001", 3] in latency["buckets"]
    assert ["0.005", 8] in latency["buckets"]
    assert ["0.025", 11] in latency["buckets"]
    assert latency["buckets"][-1] == ["+Inf", 11]
    assert latency["p50_ms"] == pytest.approx(2.5 + 2.5 * (5.5 - 3) / 5)  # rank 5.5 of 11
    assert latency["p99_ms"] == pytest.approx(10 + 15 * (10.89 - 8) / 3)
    by_route = stats["latency_by_route"]
    assert by_route["/v1/photos/{photo_id}"] == {
        "count": 3,
        "p50_ms": pytest.approx(0.5),
        "p95_ms": pytest.approx(0.95),
        "p99_ms": pytest.approx(0.99),
    }
    assert by_route["/v1/photos"]["count"] == 8


def test_uploads_by_outcome() -> None:
    metrics = ApiMetrics()
    assert upload_stats(metrics) == {"created": 0, "deduplicated": 0}
    for _ in range(3):
        metrics.uploads.labels("created").inc()
    metrics.uploads.labels("deduplicated").inc()
    assert upload_stats(metrics) == {"created": 3, "deduplicated": 1}


def test_cache_hit_ratio_of_each_tier() -> None:
    assert cache_stats({"hits": 3, "misses": 1, "bytes": 10}) == {
        "hits": 3,
        "misses": 1,
        "hit_ratio": 0.75,
        "shared": None,
    }
    assert cache_stats({})["hit_ratio"] is None  # no lookups yet: no ratio, not 0
    tiered = cache_stats({"hits": 1, "misses": 2, "shared_hits": 2, "shared_misses": 0, "shared_errors": 1})
    assert tiered["hit_ratio"] == pytest.approx(0.3333)
    assert tiered["shared"] == {"hits": 2, "misses": 0, "hit_ratio": 1.0}


def test_timestamps_are_utc_with_milliseconds() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    at = datetime(2026, 3, 1, 13, 5, 7, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert timestamp(at) == "2026-03-01T11:05:07.123Z"
    assert timestamp(datetime(2026, 1, 1, tzinfo=UTC)).endswith("T00:00:00.000Z")


# --- engines -----------------------------------------------------------------------------------------


class FakeEvents:
    """Three pipeline topics; lag known only for partitions that have had records (as the logs do)."""

    def __init__(self, lags: dict[tuple[str, str], dict[int, int]]) -> None:
        self.lags = lags

    async def topics(self) -> list[TopicInfo]:
        return [
            TopicInfo("thumbnail-generation", 2, 1000, {}),
            TopicInfo("photo-upload", 4, 1000, {1: 5, 3: 2}),
            TopicInfo("photo-processing", 3, 1000, {0: 1}),
        ]

    async def lag(self, group: str, topic: str) -> dict[int, int]:
        return self.lags.get((group, topic), {})


async def test_topics_have_a_lag_per_partition_for_each_group() -> None:
    events = FakeEvents(
        {("dispatch", "photo-upload"): {1: 2, 3: 0}, ("processing", "photo-processing"): {0: 1}}
    )
    items = await read_topics(events)  # type: ignore[arg-type]
    assert [t["topic"] for t in items] == ["photo-processing", "photo-upload", "thumbnail-generation"]
    upload = items[1]
    assert upload["partitions"] == 4
    assert upload["records"] == 7
    assert upload["groups"] == [{"group": "dispatch", "total": 2, "max": 2, "lag": [0, 2, 0, 0]}]
    assert items[0]["groups"] == [{"group": "processing", "total": 1, "max": 1, "lag": [1, 0, 0]}]
    assert items[2]["groups"] == [{"group": "thumbnails", "total": 0, "max": 0, "lag": [0, 0]}]


class BrokenBucket:
    """Lists every bucket but one, which fails like an unreachable endpoint."""

    def __init__(self, broken: str) -> None:
        self.broken = broken

    async def list(self, bucket: str, prefix: str = "") -> AsyncIterator[BlobInfo]:
        if bucket == self.broken:
            raise BackendUnavailable(f"bucket {bucket!r}: connection refused")
        yield BlobInfo("photos/a", 100)
        yield BlobInfo("photos/b", 23)


def _runtime(**parts: Any) -> Any:
    settings = load_settings(tiering={"cold_bucket": "photos-cold"})
    defaults: dict[str, Any] = {
        "settings": settings,
        "bucket_map": SimpleNamespace(buckets=["photos-0", "photos-1"], version=3),
        "routing": SimpleNamespace(routing=Routing(ShardMap.create(2, partition_power=8), version=7)),
        "cache": SimpleNamespace(stats=lambda: {"hits": 1, "misses": 1}),
    }
    return SimpleNamespace(**{**defaults, **parts})


async def test_a_bucket_that_fails_to_list_is_an_entry_with_its_error() -> None:
    runtime = _runtime(blobs=BrokenBucket("photos-1"))
    items = await read_buckets(runtime)
    assert items == [
        {"bucket": "photos-0", "tier": "hot", "objects": 2, "bytes": 123, "error": None},
        {
            "bucket": "photos-1",
            "tier": "hot",
            "objects": None,
            "bytes": None,
            "error": "bucket 'photos-1': connection refused",
        },
        {"bucket": "photos-cold", "tier": "cold", "objects": 2, "bytes": 123, "error": None},
    ]


async def test_no_regions_configured_is_an_empty_list() -> None:
    assert await read_regions(RegionsSettings(), 1.0) == []


async def test_a_region_is_healthy_while_any_endpoint_is_ready() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "up.example":
            return httpx.Response(200, json={"status": "ready"})
        if request.url.host == "sick.example":
            return httpx.Response(503)
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        up = await probe_endpoint(client, "http://up.example")
        sick = await probe_endpoint(client, "http://sick.example")
        gone = await probe_endpoint(client, "http://gone.example")
    assert up["healthy"] is True
    assert up["reason"] == "ready"
    assert up["latency_ms"] >= 0
    assert sick == {
        "url": "http://sick.example",
        "healthy": False,
        "reason": "/readyz answered 503",
        "latency_ms": sick["latency_ms"],
    }
    assert gone == {
        "url": "http://gone.example",
        "healthy": False,
        "reason": "ConnectError: connection refused",
        "latency_ms": None,
    }


async def test_regions_probe_every_endpoint() -> None:
    # Nothing listens on the port: refused at once, so both regions are down with a reason.
    dead = f"http://127.0.0.1:{free_port()}"
    regions = RegionsSettings(
        local="eu-west",
        regions=(
            RegionSettings(name="eu-west", lat=50, lon=8, role="primary", api_endpoints=(dead,)),
            RegionSettings(name="us-east", lat=39, lon=-77, api_endpoints=(dead, dead + "/")),
        ),
    )
    found = await read_regions(regions, 1.0)
    assert [(r["name"], r["role"], r["local"], r["healthy"]) for r in found] == [
        ("eu-west", "primary", True, False),
        ("us-east", "secondary", False, False),
    ]
    assert len(found[1]["endpoints"]) == 2
    assert all(not e["healthy"] and e["reason"] for r in found for e in r["endpoints"])


# --- bounded reads -----------------------------------------------------------------------------------


class Reads:
    """A read that counts its calls, can be held open, and can fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.release.set()
        self.fail: Exception | None = None

    async def __call__(self) -> int:
        self.calls += 1
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return self.calls


async def test_a_snapshot_is_reused_until_its_ttl_passes() -> None:
    now = [100.0]
    reads = Reads()
    snapshot = Snapshot(reads, ttl_s=30.0, clock=lambda: now[0])
    first = await snapshot.get(1.0)
    assert (first.value, first.age_s) == (1, 0.0)
    now[0] += 29.0
    again = await snapshot.get(1.0)
    assert (again.value, again.age_s, reads.calls) == (1, 29.0, 1)
    now[0] += 2.0
    assert (await snapshot.get(1.0)).value == 2


async def test_concurrent_callers_share_one_read() -> None:
    reads = Reads()
    reads.release.clear()
    snapshot = Snapshot(reads, ttl_s=5.0)
    waiting = [asyncio.create_task(snapshot.get(1.0)) for _ in range(10)]
    await asyncio.sleep(0.01)
    reads.release.set()
    assert {r.value for r in await asyncio.gather(*waiting)} == {1}
    assert reads.calls == 1


async def test_a_slow_read_times_out_then_serves_the_next_caller() -> None:
    reads = Reads()
    reads.release.clear()
    snapshot = Snapshot(reads, ttl_s=5.0)
    with pytest.raises(TimeoutError):
        await snapshot.get(0.01)  # nothing read yet: the section becomes an error
    reads.release.set()
    await asyncio.sleep(0.01)  # the read went on without its caller
    reading = await snapshot.get(0.01)
    assert (reading.value, reads.calls) == (1, 1)


async def test_while_a_new_read_is_slow_the_last_value_is_served_with_its_age() -> None:
    now = [0.0]
    reads = Reads()
    snapshot = Snapshot(reads, ttl_s=30.0, clock=lambda: now[0])
    await snapshot.get(1.0)
    now[0] = 45.0
    reads.release.clear()
    stale = await snapshot.get(0.01)
    assert (stale.value, stale.age_s) == (1, 45.0)
    assert reads.calls == 2  # one refresh in flight, not one per caller
    await snapshot.get(0.01)
    assert reads.calls == 2
    reads.release.set()
    await asyncio.sleep(0.01)
    assert (await snapshot.get(0.01)).value == 2


async def test_a_failed_read_raises_and_the_next_call_reads_again() -> None:
    reads = Reads()
    reads.fail = BackendUnavailable("shard 0: connection refused")
    snapshot = Snapshot(reads, ttl_s=5.0)
    with pytest.raises(BackendUnavailable):
        await snapshot.get(1.0)
    reads.fail = None
    assert (await snapshot.get(1.0)).value == 2


async def test_sections_turn_failures_into_error_entries(caplog: pytest.LogCaptureFixture) -> None:
    empty = {"items": []}

    async def ok() -> dict[str, Any]:
        return {"items": [1]}

    async def down() -> dict[str, Any]:
        raise BackendUnavailable("metadata shard 2 is unreachable")

    async def slow() -> dict[str, Any]:
        raise TimeoutError

    async def bug() -> dict[str, Any]:
        raise KeyError("x")

    assert await section("s", ok(), empty, 3.0) == {"items": [1], "error": None}
    assert await section("s", down(), empty, 3.0) == {"items": [], "error": "metadata shard 2 is unreachable"}
    assert await section("s", slow(), empty, 3.0) == {"items": [], "error": "no answer within 3 s"}
    assert await section("s", bug(), empty, 3.0) == {
        "items": [],
        "error": "internal error (KeyError); the error was logged",
    }
    assert "reading the s section" in caplog.text


class HangingMetadata:
    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def shard_stats(self) -> list[ShardStats]:
        await self.release.wait()
        return []


class WorkingMetadata:
    async def shard_stats(self) -> list[ShardStats]:
        return [ShardStats(1, users=2, photos=5, bytes=500, pending_outbox=0), ShardStats(0, 1, 3, 300, 1)]


class QuietEvents(FakeEvents):
    def __init__(self) -> None:
        super().__init__({})


async def test_a_hung_engine_makes_its_section_an_error_and_the_rest_answers() -> None:
    metrics = ApiMetrics()
    metrics.uploads.labels("created").inc()
    metadata = HangingMetadata()
    runtime = _runtime(metadata=metadata, blobs=BrokenBucket("none"), events=QuietEvents())
    gatherer = StatsGatherer(runtime, metrics, timeout_s=0.05)
    body = await gatherer.gather()
    assert body["shards"]["error"] == "no answer within 0.05 s"
    assert body["shards"]["items"] == []
    assert body["shards"]["totals"] is None
    assert (body["shards"]["shard_map_version"], body["shards"]["routing_version"]) == (1, 7)
    assert body["shards"]["bucket_map_version"] == 3
    assert body["buckets"]["error"] is None
    assert [b["bytes"] for b in body["buckets"]["items"]] == [123, 123, 123]
    assert len(body["topics"]["items"]) == 3
    assert body["regions"] == {"items": [], "age_s": 0.0, "error": None}
    assert body["uploads"] == {"created": 1, "deduplicated": 0}
    assert body["cache"]["hit_ratio"] == 0.5
    assert body["generated_at"].endswith("Z")
    assert body["elapsed_ms"] < 1000
    metadata.release.set()  # the engine is back: the read still in flight answers the next call
    await asyncio.sleep(0.01)
    assert (await gatherer.gather())["shards"]["error"] is None


async def test_shard_totals_add_up_the_shards_in_shard_order() -> None:
    runtime = _runtime(metadata=WorkingMetadata(), blobs=BrokenBucket("none"), events=QuietEvents())
    shards = (await StatsGatherer(runtime, ApiMetrics()).gather())["shards"]
    assert [s["shard"] for s in shards["items"]] == [0, 1]
    assert shards["totals"] == {"users": 3, "photos": 8, "bytes": 800}
    assert shards["error"] is None
