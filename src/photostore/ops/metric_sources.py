"""Where the autoscaler reads its metrics: the service's own ``/metrics``, or Prometheus' HTTP API.

Metric names the rules use (``ScalingRule.metric``):

- ``consumer_lag``: records not yet handled, all pipeline groups (each (group, topic, partition)
  counted once, however many processes report it);
- ``concurrent_uploads``: uploads in progress, summed over the service's processes;
- ``cpu`` / ``memory``: the service's processes' mean CPU (cores busy) and memory (share of RAM);
- ``active_users``: users with a request in the last five minutes, summed over processes;
- ``request_rate`` and ``error_rate`` (5xx share): per second between two readings (service
  source) or over Prometheus' rate window.

The service source reads every URL in ``autoscale.service_urls``; a process that does not answer
is left out (its metrics are unknown, not zero). The Prometheus source runs the PromQL of
``autoscale.queries`` with ``{service}`` replaced by the rule's service.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from photostore.errors import BackendUnavailable

TIMEOUT_S = 5.0


class MetricSource(Protocol):
    async def read(self, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float | None]:
        """A value for each (service, metric), None where it cannot be known now."""


@dataclass
class Sample:
    name: str
    labels: dict[str, str]
    value: float


async def scrape(client: httpx.AsyncClient, url: str) -> list[Sample] | None:
    """Every sample of one process's ``/metrics``; None when it does not answer."""
    try:
        response = await client.get(f"{url.rstrip('/')}/metrics", timeout=TIMEOUT_S)
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    return [
        Sample(sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


@dataclass
class ServiceSource:
    urls: Callable[[], Sequence[str]]  # asked at every reading: a pool's processes come and go
    client: httpx.AsyncClient
    # (service, metric) -> (time, requests, 5xx requests) at the last reading, for rates
    _previous: dict[tuple[str, str], tuple[float, float, float]] = field(default_factory=dict)

    async def _scrape(self) -> list[list[Sample]]:
        scraped = [await scrape(self.client, url) for url in self.urls()]
        return [samples for samples in scraped if samples is not None]  # a silent process is left out

    async def read(self, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float | None]:
        wanted = list(wanted)
        processes = await self._scrape()
        if not processes:
            return dict.fromkeys(wanted)
        return {key: self._value(processes, *key) for key in wanted}

    def _value(self, processes: list[list[Sample]], service: str, metric: str) -> float | None:
        def of(name: str, **match: str) -> list[Sample]:
            return [
                s
                for samples in processes
                for s in samples
                if s.name == name and all(s.labels.get(k) == v for k, v in match.items())
            ]

        if metric == "consumer_lag":
            # Every process reports the same shared log's lag: count each partition once.
            per_partition: dict[tuple[str, str, str], float] = {}
            for s in of("photostore_consumer_lag"):
                key = (s.labels["group"], s.labels["topic"], s.labels["partition"])
                per_partition[key] = max(per_partition.get(key, 0.0), s.value)
            return sum(per_partition.values())
        if metric == "concurrent_uploads":
            return _sum_or_none(of("photostore_concurrent_uploads"))
        if metric in ("cpu", "memory"):
            found = of("photostore_resource_utilization", service=service, resource=metric)
            return sum(s.value for s in found) / len(found) if found else None
        if metric == "active_users":
            return _sum_or_none(of("photostore_active_users"))
        if metric in ("request_rate", "error_rate"):
            return self._rate(service, metric, of("photostore_requests_total", service=service))
        return None

    def _rate(self, service: str, metric: str, requests: list[Sample]) -> float | None:
        """Per second (request_rate) or the 5xx share (error_rate) since this metric's last reading."""
        now = time.monotonic()
        total = sum(s.value for s in requests)
        failed = sum(s.value for s in requests if s.labels.get("status", "").startswith("5"))
        previous = self._previous.get((service, metric))
        self._previous[(service, metric)] = (now, total, failed)
        if previous is None or now <= previous[0]:
            return None  # a rate needs two readings
        done, errors = total - previous[1], failed - previous[2]
        if metric == "request_rate":
            return done / (now - previous[0])
        return errors / done if done > 0 else 0.0


def _sum_or_none(samples: list[Sample]) -> float | None:
    return sum(s.value for s in samples) if samples else None


@dataclass
class PrometheusSource:
    url: str
    queries: dict[str, str]
    client: httpx.AsyncClient

    async def read(self, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float | None]:
        values: dict[tuple[str, str], float | None] = {}
        for service, metric in wanted:
            query = self.queries.get(metric)
            values[(service, metric)] = (
                None if query is None else await self._query(query.replace("{service}", service))
            )
        return values

    async def _query(self, promql: str) -> float | None:
        try:
            response = await self.client.get(
                f"{self.url.rstrip('/')}/api/v1/query", params={"query": promql}, timeout=TIMEOUT_S
            )
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise BackendUnavailable(f"Prometheus at {self.url} did not answer {promql!r}: {exc}") from None
        if body.get("status") != "success":
            raise BackendUnavailable(f"Prometheus refused {promql!r}: {body.get('error')}")
        result = body["data"]["result"]
        if not result:
            return None  # no series: the metric is not reported (yet)
        return float(result[0]["value"][1])
