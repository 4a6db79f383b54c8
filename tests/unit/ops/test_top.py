"""``photostore top``'s arithmetic: histogram quantiles as Prometheus computes them, rates, shares."""

from __future__ import annotations

import math

from photostore.ops.top import Reading, quantile, summarize


def test_quantile_interpolates_inside_the_bucket_like_histogram_quantile() -> None:
    buckets = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, math.inf: 100.0}
    assert quantile(0.5, buckets) == 0.1  # the 50th of 100 sits at the top of the first bucket
    assert abs((quantile(0.7, buckets) or 0) - 0.3) < 1e-9  # 20 of the 40 in (0.1, 0.5]
    assert quantile(0.99, buckets) == 0.95
    assert quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None  # nothing observed
    assert quantile(0.99, {0.1: 1.0, math.inf: 10.0}) == 0.1  # in the open bucket: its lower edge


def _reading(at: float, **values: float) -> Reading:
    samples = {
        ("photostore_requests_total", (("service", "api"), ("status", "200"))): values.get("ok", 0.0),
        ("photostore_requests_total", (("service", "api"), ("status", "503"))): values.get("failed", 0.0),
        ("photostore_cache_hits_total", ()): values.get("hits", 0.0),
        ("photostore_cache_misses_total", ()): values.get("misses", 0.0),
        ("photostore_response_latency_seconds_bucket", (("le", "0.01"),)): values.get("fast", 0.0),
        ("photostore_response_latency_seconds_bucket", (("le", "+Inf"),)): values.get("all", 0.0),
        ("photostore_consumer_lag", (("group", "thumbnails"), ("partition", "0"), ("topic", "t"))): 7.0,
        ("photostore_consumer_lag", (("group", "thumbnails"), ("partition", "1"), ("topic", "t"))): 5.0,
    }
    return Reading(at, samples, {"http://x": "api"})


def test_rates_and_shares_cover_only_the_interval() -> None:
    before = _reading(10.0, ok=1000, failed=10, hits=100, misses=100, fast=900, all=1010)
    after = _reading(12.0, ok=1190, failed=20, hits=190, misses=110, fast=1090, all=1210)
    view = summarize(before, after)
    assert view.request_rate == 100.0  # 200 requests in 2 s
    assert view.error_share == 0.05  # 10 of those 200
    assert view.cache_hit_ratio == 0.9  # 90 hits, 10 misses in the interval
    assert view.p50_ms is not None
    assert view.p50_ms <= 10.0  # 190 of 200 were under 10 ms
    assert view.lag == {("thumbnails", "t"): 12.0}  # partitions summed per group and topic
