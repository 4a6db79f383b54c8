"""Prometheus metrics of one process, and the ASGI middleware that times every request."""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from photostore.api.scaling_metrics import ActiveUsers, ScalingGauges
from photostore.logs import request_id as log_request_id

ROUTE_KEY = "photostore.route"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


access_log = logging.getLogger("photostore.access")
LOCAL_REGION = "local"  # the region label of a process outside any configured region


class ApiMetrics:
    """The spec's ScalingMetrics for the api role, labelled by service and region."""

    def __init__(self, service: str = "api", region: str = LOCAL_REGION) -> None:
        self.registry = CollectorRegistry()
        self.service = service
        self.region = region
        labels = ["service", "region"]
        self.requests = Counter(
            "photostore_requests",
            "HTTP requests handled",
            [*labels, "route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "photostore_response_latency_seconds",
            "HTTP response latency",
            [*labels, "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "photostore_errors", "Error responses by problem code", [*labels, "code"], registry=self.registry
        )
        self.uploads = Counter(
            "photostore_uploads",
            "Uploads by outcome (created, deduplicated)",
            ["result"],
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "photostore_upload_bytes", "Bytes of accepted new originals", registry=self.registry
        )
        self.concurrent_uploads = Gauge(
            "photostore_concurrent_uploads", "Uploads in progress in this process", registry=self.registry
        )
        self.consumer_lag = Gauge(
            "photostore_consumer_lag",
            "Records not yet committed by a consumer group",
            ["group", "topic", "partition"],
            registry=self.registry,
        )
        self.pool_setting = Gauge(
            "photostore_shard_pool_setting",
            "Per-shard connection pool settings (the spec's PoolConfig)",
            ["shard", "setting"],
            registry=self.registry,
        )

        self.scaling = ScalingGauges(self.registry, service, region)
        self.active_users = ActiveUsers()
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, resident memory, fds

    def error(self, code: str) -> None:
        self.errors.labels(self.service, self.region, code).inc()

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)


class StatsCollector(Collector):
    """Exports counters kept by other components (cache, workers) at scrape time."""

    def __init__(self, read: Callable[[], Iterable[tuple[str, str, str, dict[str, str], float]]]) -> None:
        # read() yields (kind, name, help, labels, value) with kind "counter" or "gauge".
        self._read = read

    def collect(self) -> Iterable[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for kind, name, doc, labels, value in self._read():
            family = families.get(name)
            if family is None:
                cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                family = cls(name, doc, labels=list(labels))
                families[name] = family
            family.add_metric(list(labels.values()), value)
        return list(families.values())


class MetricsMiddleware:
    """Times each request and counts it by route template, method and status; adds X-Request-ID."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self._app = app
        self._metrics = metrics
        self._bound: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._region_header = region_header(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = _request_id(scope)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id),
                    *self._region_header,
                ]
            await send(message)

        token = log_request_id.set(request_id.decode("latin-1"))
        try:
            await self._app(scope, receive, send_with_id)
        finally:
            if access_log.isEnabledFor(logging.DEBUG):  # one line per request, at debug level only
                elapsed_ms = (time.perf_counter() - started) * 1000
                access_log.debug("%s %s %d %.1f ms", scope["method"], scope["path"], status, elapsed_ms)
            log_request_id.reset(token)
            counter, latency = self._children(scope.get(ROUTE_KEY, "unmatched"), scope["method"], status)
            counter.inc()
            latency.observe(time.perf_counter() - started)

    def _children(self, route: str, method: str, status: int) -> tuple[Counter, Histogram]:
        # Looking up labelled children costs more than the update itself: keep them.
        key = (route, method, status)
        found = self._bound.get(key)
        if found is None:
            m = self._metrics
            found = (
                m.requests.labels(m.service, m.region, route, method, str(status)),
                m.latency.labels(m.service, m.region, route),
            )
            self._bound[key] = found
        return found


def region_header(metrics: ApiMetrics) -> list[tuple[bytes, bytes]]:
    """``X-Photostore-Region``, when the process serves a named region: which region answered."""
    if metrics.region == LOCAL_REGION:
        return []
    return [(b"x-photostore-region", metrics.region.encode())]


# Request ids: a random per-process prefix and a counter; unique without a syscall per request.
_ID_PREFIX = uuid.uuid4().hex[:12]
_id_counter = itertools.count(1)


def next_request_id() -> bytes:
    return f"{_ID_PREFIX}-{next(_id_counter):x}".encode()


def _request_id(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and 0 < len(value) <= 128:
            return bytes(value)
    return next_request_id()
