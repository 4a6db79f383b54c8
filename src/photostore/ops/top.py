"""What ``photostore top`` shows: rates and quantiles from two readings of processes' ``/metrics``.

Counters become rates over the time between readings; latency quantiles come from the histogram
buckets' growth in that time (the way Prometheus' ``histogram_quantile`` reads them), so they
describe the last interval, not the process's whole life.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx

from photostore.ops.metric_sources import scrape

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Reading:
    """Every sample of every process that answered, at one moment."""

    at: float
    samples: dict[tuple[str, Labels], float]
    processes: dict[str, str]  # url -> its service label, or "down"


async def read_processes(client: httpx.AsyncClient, urls: list[str]) -> Reading:
    samples: dict[tuple[str, Labels], float] = defaultdict(float)
    processes: dict[str, str] = {}
    for url in urls:
        scraped = await scrape(client, url)
        if scraped is None:
            processes[url] = "down"
            continue
        service = "?"
        for sample in scraped:
            labels = tuple(sorted(sample.labels.items()))
            samples[(sample.name, labels)] += sample.value  # the same series of several processes adds up
            service = sample.labels.get("service", service)
        processes[url] = service
    return Reading(time.monotonic(), dict(samples), processes)


def _total(reading: Reading, name: str, **match: str) -> float:
    return sum(
        value
        for (sample_name, labels), value in reading.samples.items()
        if sample_name == name and all(dict(labels).get(k) == v for k, v in match.items())
    )


def _by(reading: Reading, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    grouped: dict[tuple[str, ...], float] = defaultdict(float)
    for (sample_name, labels), value in reading.samples.items():
        if sample_name == name:
            as_dict = dict(labels)
            grouped[tuple(as_dict.get(k, "") for k in keys)] += value
    return dict(grouped)


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile``: cumulative counts by upper bound -> the q-quantile, interpolated."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # in the open last bucket: the highest finite bound is all we know
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass
class TopView:
    seconds: float
    processes: dict[str, str]
    request_rate: float
    error_share: float
    p50_ms: float | None
    p99_ms: float | None
    uploads_per_s: float
    derivatives_per_s: float
    concurrent_uploads: float
    active_users: float
    cache_hit_ratio: float | None
    lag: dict[tuple[str, str], float] = field(default_factory=dict)  # (group, topic) -> records
    shards_up: dict[str, float] = field(default_factory=dict)
    pools: dict[str, tuple[float, float]] = field(default_factory=dict)  # shard -> (checked out, max)
    cpu: dict[str, float] = field(default_factory=dict)  # service -> cores busy


def summarize(before: Reading, after: Reading) -> TopView:
    seconds = max(after.at - before.at, 1e-9)

    def delta(name: str, **match: str) -> float:
        return max(0.0, _total(after, name, **match) - _total(before, name, **match))

    requests = delta("photostore_requests_total")
    failed = sum(
        max(0.0, value - _by(before, "photostore_requests_total", "status").get(key, 0.0))
        for key, value in _by(after, "photostore_requests_total", "status").items()
        if key[0].startswith("5")
    )
    buckets_before = _by(before, "photostore_response_latency_seconds_bucket", "le")
    buckets = {
        float(key[0]): max(0.0, value - buckets_before.get(key, 0.0))
        for key, value in _by(after, "photostore_response_latency_seconds_bucket", "le").items()
    }
    p50, p99 = quantile(0.5, buckets), quantile(0.99, buckets)
    hits, misses = delta("photostore_cache_hits_total"), delta("photostore_cache_misses_total")
    lag = {
        (group, topic): value
        for (group, topic), value in _by(after, "photostore_consumer_lag", "group", "topic").items()
    }
    checked = _by(after, "photostore_pool_checked_out", "shard", "role")
    limits = _by(after, "photostore_pool_max_open", "shard", "role")
    pools = {
        shard: (value, limits.get((shard, role), 0.0))
        for (shard, role), value in checked.items()
        if role == "primary"
    }
    return TopView(
        seconds=seconds,
        processes=after.processes,
        request_rate=requests / seconds,
        error_share=failed / requests if requests else 0.0,
        p50_ms=None if p50 is None else p50 * 1000,
        p99_ms=None if p99 is None else p99 * 1000,
        uploads_per_s=delta("photostore_uploads_total") / seconds,
        derivatives_per_s=delta("photostore_derivatives_total") / seconds,
        concurrent_uploads=_total(after, "photostore_concurrent_uploads"),
        active_users=_total(after, "photostore_active_users"),
        cache_hit_ratio=hits / (hits + misses) if hits + misses else None,
        lag=lag,
        shards_up={key[0]: value for key, value in _by(after, "photostore_shard_up", "shard").items()},
        pools=pools,
        cpu={
            key[0]: value
            for key, value in _by(after, "photostore_resource_utilization", "service", "resource").items()
            if key[1] == "cpu"
        },
    )
