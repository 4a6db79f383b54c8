"""What ``photostore cost optimize`` measures: CPU per service from the processes' metrics, stored
bytes by access recency from the metadata store, and the egress a month."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import httpx
from rich.console import Console
from rich.progress import Progress

from photostore.domain import AccessBand
from photostore.errors import BackendUnavailable, BadRequest
from photostore.metadata.port import MetadataStore
from photostore.ops.cost import EgressProfile, ServiceUtilisation, Skipped, StorageProfile, monthly_egress_gb
from photostore.ops.fleet import FleetAssumptions
from photostore.ops.metric_sources import PrometheusSource, Sample, ServiceSource, scrape
from photostore.settings import AutoscaleSettings, Settings, TieringSettings
from photostore.tiering.buckets import cold_buckets

CPU = "photostore_resource_utilization"
CPU_QUERY = 'avg(photostore_resource_utilization{service="{service}", resource="cpu"})'
REPLICAS_QUERY = 'count(photostore_resource_utilization{service="{service}", resource="cpu"})'
RATE_QUERY = 'sum(rate(photostore_requests_total{service="{service}"}[1m]))'
READ_SERVICE = "api"  # the service whose requests are the reads that leave as egress
PAGE = 1000


@dataclass(frozen=True, slots=True)
class Utilisation:
    services: list[ServiceUtilisation]
    read_rate: float | None  # the api's requests per second; None: not measured
    source: str
    skipped: Skipped | None = None  # why right-sizing could not run


# --- utilisation ------------------------------------------------------------------------------


async def read_utilisation(
    settings: AutoscaleSettings, client: httpx.AsyncClient, rate_window_s: float, want_rate: bool
) -> Utilisation:
    """CPU and replicas per service from ``autoscale.source``; the api's request rate if wanted."""
    if settings.source == "prometheus":
        return await _from_prometheus(settings, client, want_rate)
    urls = list(dict.fromkeys(settings.service_urls))  # a URL named twice is still one process
    return await _from_processes(urls, client, rate_window_s, want_rate)


async def _from_processes(
    urls: list[str], client: httpx.AsyncClient, rate_window_s: float, want_rate: bool
) -> Utilisation:
    source = f"service /metrics at {', '.join(urls)}"
    scraped = await asyncio.gather(*(scrape(client, url) for url in urls))
    answered = [samples for samples in scraped if samples is not None]
    if not answered:
        reason = (
            f"no process answered at {', '.join(urls) or '(no autoscale.service_urls)'}: right-sizing skipped"
        )
        return Utilisation([], None, source, Skipped("compute", reason))
    services = _per_service(answered)
    if not services:
        reason = f"no process at {', '.join(urls)} reports {CPU}: right-sizing skipped"
        return Utilisation([], None, source, Skipped("compute", reason))
    rate = None
    if want_rate and any(usage.service == READ_SERVICE for usage in services):
        rate = await _request_rate(urls, client, rate_window_s)
    return Utilisation(services, rate, source)


def _per_service(processes: list[list[Sample]]) -> list[ServiceUtilisation]:
    """Each process reports its own CPU once, labelled with its service: count and average them."""
    cores: dict[str, list[float]] = {}
    for samples in processes:
        for sample in samples:
            if sample.name == CPU and sample.labels.get("resource") == "cpu":
                cores.setdefault(sample.labels.get("service", "?"), []).append(sample.value)
    return [
        ServiceUtilisation(name, len(busy), sum(busy) / len(busy)) for name, busy in sorted(cores.items())
    ]


async def _request_rate(urls: list[str], client: httpx.AsyncClient, window_s: float) -> float | None:
    """Requests per second over ``window_s``: a rate needs two readings."""
    source = ServiceSource(urls=lambda: urls, client=client)
    wanted = [(READ_SERVICE, "request_rate")]
    await source.read(wanted)
    await asyncio.sleep(window_s)
    return (await source.read(wanted))[wanted[0]]


async def _from_prometheus(
    settings: AutoscaleSettings, client: httpx.AsyncClient, want_rate: bool
) -> Utilisation:
    queries = {
        "replicas": REPLICAS_QUERY,
        "cpu": settings.queries.get("cpu", CPU_QUERY),
        "request_rate": settings.queries.get("request_rate", RATE_QUERY),
    }
    prometheus = PrometheusSource(settings.prometheus_url, queries, client)
    # The services the deployment knows of; one with no series in Prometheus is not running.
    names = sorted({*settings.kubernetes.deployments, *settings.limits})
    wanted = [(name, metric) for name in names for metric in ("replicas", "cpu")]
    if want_rate:
        wanted.append((READ_SERVICE, "request_rate"))
    source = f"Prometheus at {settings.prometheus_url}"
    try:
        values = await prometheus.read(wanted)
    except BackendUnavailable as exc:
        return Utilisation([], None, source, Skipped("compute", f"{exc.detail}: right-sizing skipped"))
    services = [
        ServiceUtilisation(name, int(replicas), values[(name, "cpu")] or 0.0)
        for name in names
        if (replicas := values[(name, "replicas")])
    ]
    skipped = None if services else Skipped("compute", f"{source} holds no CPU series: right-sizing skipped")
    return Utilisation(services, values.get((READ_SERVICE, "request_rate")), source, skipped)


# --- storage ----------------------------------------------------------------------------------


def band_edges(tiering: TieringSettings, now: datetime) -> list[datetime]:
    """Band 0 read since ``now - warm_after``, band 1 since ``now - cold_after``, band 2 older."""
    if tiering.warm_after >= tiering.cold_after:
        raise BadRequest(
            f"tiering.warm_after ({tiering.warm_after}) must be shorter than tiering.cold_after "
            f"({tiering.cold_after})"
        )
    return [now - tiering.warm_after, now - tiering.cold_after]


async def storage_profile(
    metadata: MetadataStore, settings: Settings, now: datetime, progress_to: Console
) -> StorageProfile:
    tiering = settings.tiering
    edges = band_edges(tiering, now)
    cold = cold_buckets(settings)
    totals: dict[tuple[int, bool], tuple[int, int]] = {}
    for shard_id in metadata.shard_ids():
        for band in await metadata.access_bands(shard_id, edges, cold):
            photos, size = totals.get((band.band, band.cold), (0, 0))
            totals[(band.band, band.cold)] = (photos + band.photos, size + band.bytes)
    bands = tuple(
        AccessBand(band, cold, photos, size) for (band, cold), (photos, size) in sorted(totals.items())
    )
    variants, variant_bytes = await _variants(metadata, progress_to)
    return StorageProfile(
        bands, variant_bytes, variants, tiering.cold_bucket, tiering.warm_after, tiering.cold_after
    )


async def _variants(metadata: MetadataStore, progress_to: Console) -> tuple[int, int]:
    """(variants, bytes) of every live photo: a keyset scan of each shard, PAGE photos at a time."""
    expected = sum(stats.photos for stats in await metadata.shard_stats())
    count = size = 0
    with Progress(console=progress_to, transient=True, disable=expected <= PAGE) as progress:
        task = progress.add_task("scanning variants", total=expected)
        for shard_id in metadata.shard_ids():
            after = None
            while page := await metadata.live_photos_after(shard_id, after, PAGE):
                for _, variants in page:
                    count += len(variants)
                    size += sum(variant.bytes for variant in variants)
                progress.advance(task, len(page))
                after = page[-1][0].id
                if len(page) < PAGE:
                    break
    return count, size


# --- egress -----------------------------------------------------------------------------------


def egress_profile(
    egress_gb: float | None,
    read_rate: float | None,
    assume: FleetAssumptions,
    offload_now: float,
    offload_target: float,
) -> EgressProfile:
    if egress_gb is not None:
        gb, source = egress_gb, "--egress-gb"
    elif read_rate is not None:
        gb = monthly_egress_gb(read_rate, assume)
        source = f"api request rate {read_rate:.3g}/s x {assume.read_bytes:,.0f} bytes per read"
    else:
        gb, source = None, "no --egress-gb and no measured api request rate"
    return EgressProfile(gb, source, offload_now, offload_target)
