"""The spec's ScalingMetrics beyond request counts: active users, resource use, queue depth, shards.

These are gauges, refreshed every ``server.metrics_refresh_s`` by one task per process, so a scrape costs
nothing: consumer lag per group, topic and partition; queue depth per topic (the lag summed);
whether each shard answers; this process's CPU (cores busy) and memory (share of the machine);
and the users who made a request in the last ``ACTIVE_WINDOW_S``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import uuid
from collections import deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from photostore.errors import PhotostoreError
from photostore.pipeline.messages import PIPELINE_GROUPS
from photostore.runtime import Runtime

log = logging.getLogger(__name__)

ACTIVE_WINDOW_S = 300.0
MAX_TRACKED_USERS = 1_000_000  # bounds memory (~100 MB) whatever the traffic


class ActiveUsers:
    """Distinct users seen in about the last ``window_s``, counted cheaply on the hot path.

    A request adds its user to the current minute's set (a set insert); counting, every few
    seconds, unions the sets of the minutes still inside the window. The window is therefore
    ``window_s`` rounded up to whole buckets.
    """

    BUCKET_S = 60.0

    def __init__(
        self, window_s: float = ACTIVE_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._buckets: deque[set[uuid.UUID]] = deque(
            [set()], maxlen=max(1, math.ceil(window_s / self.BUCKET_S))
        )
        self._bucket_end = clock() + self.BUCKET_S

    def seen(self, user_id: uuid.UUID) -> None:
        if self._clock() >= self._bucket_end:
            self._rotate()
        current = self._buckets[-1]
        if len(current) < MAX_TRACKED_USERS:
            current.add(user_id)

    def _rotate(self) -> None:
        now = self._clock()
        while now >= self._bucket_end:  # idle minutes leave empty buckets behind
            self._buckets.append(set())
            self._bucket_end += self.BUCKET_S

    def count(self) -> int:
        self._rotate()
        return len(set().union(*self._buckets))


class ResourceSampler:
    """CPU as cores busy since the last sample, memory as the share of the machine's RAM (RSS)."""

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._total = os.sysconf("SC_PHYS_PAGES") * self._page
        self._last = self._cpu_and_wall()

    @staticmethod
    def _cpu_and_wall() -> tuple[float, float]:
        times = os.times()
        return times.user + times.system, time.monotonic()

    def sample(self) -> dict[str, float]:
        cpu, wall = self._cpu_and_wall()
        last_cpu, last_wall = self._last
        self._last = (cpu, wall)
        cores = (cpu - last_cpu) / (wall - last_wall) if wall > last_wall else 0.0
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * self._page
        return {"cpu": cores, "memory": rss / self._total}


class ScalingGauges:
    def __init__(self, registry: CollectorRegistry, service: str, region: str) -> None:
        self.service, self.region = service, region
        labels = ["service", "region"]
        self.active_users = Gauge(
            "photostore_active_users",
            f"distinct users with a request in the last {ACTIVE_WINDOW_S:.0f} s (this process)",
            labels,
            registry=registry,
        )
        self.utilization = Gauge(
            "photostore_resource_utilization",
            "cpu: cores busy; memory: share of the machine's RAM held (this process)",
            [*labels, "resource"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "photostore_queue_depth",
            "records not yet handled, summed over a topic's partitions",
            [*labels, "topic"],
            registry=registry,
        )
        self.shard_up = Gauge(
            "photostore_shard_up", "1 while a metadata shard answers, else 0", ["shard"], registry=registry
        )


async def export_gauges(
    runtime: Runtime, lag_gauge: Gauge, gauges: ScalingGauges, active: ActiveUsers, interval_s: float
) -> None:
    """Refresh every gauge above, every few seconds, until cancelled."""
    sampler = ResourceSampler()
    service, region = gauges.service, gauges.region
    while True:
        try:
            for group, topic in PIPELINE_GROUPS:
                lag = await runtime.events.lag(group, topic)
                for partition, behind in lag.items():
                    lag_gauge.labels(group, topic, str(partition)).set(behind)
                gauges.queue_depth.labels(service, region, topic).set(sum(lag.values()))
        except PhotostoreError as exc:
            log.warning("could not read consumer lag: %s", exc.detail)
        for shard_id in runtime.metadata.shard_ids():
            try:
                await runtime.metadata.pending_outbox(shard_id, 1)
                gauges.shard_up.labels(str(shard_id)).set(1)
            except PhotostoreError:
                gauges.shard_up.labels(str(shard_id)).set(0)
        for resource, value in sampler.sample().items():
            gauges.utilization.labels(service, region, resource).set(value)
        gauges.active_users.labels(service, region).set(active.count())
        await asyncio.sleep(interval_s)
