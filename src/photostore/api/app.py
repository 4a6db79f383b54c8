"""The ASGI application: routes, problem+json errors, metrics, and the process's lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Match, Route

from photostore.api import cdn, photos, tus
from photostore.api.cdn import CdnLinks
from photostore.api.context import ApiContext, context_of
from photostore.api.docs_page import render_docs
from photostore.api.hot_path import HotPath
from photostore.api.metrics import LOCAL_REGION, ROUTE_KEY, ApiMetrics, MetricsMiddleware, StatsCollector
from photostore.api.openapi import openapi_document
from photostore.api.problems import answer_error, problem
from photostore.api.scaling_metrics import export_gauges
from photostore.blobs.multipart_factory import multipart_for
from photostore.blobs.regional import RegionalReads
from photostore.errors import PhotostoreError
from photostore.integrity.quarantine import Quarantine, quarantine_bucket
from photostore.integrity.reads import ReadVerifier
from photostore.logs import configure_logging
from photostore.metadata.port import MetadataStore
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.pipeline.access import AccessTracker
from photostore.pipeline.auth import Authenticator
from photostore.pipeline.reads import PhotoReader
from photostore.pipeline.resumable import ResumableUploads, staging_bucket
from photostore.pipeline.services import BackgroundServices, Role
from photostore.pipeline.upload import UploadService
from photostore.ratelimit.factory import build_limiter
from photostore.runtime import open_runtime
from photostore.settings import Settings, load_settings
from photostore.web.routes import web_routes

log = logging.getLogger(__name__)

BLOCKING_THREADS = 64


async def healthz(request: Request) -> Response:
    request.scope[ROUTE_KEY] = "/healthz"
    return photos.json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    request.scope[ROUTE_KEY] = "/readyz"
    ctx = context_of(request)
    try:
        for shard_id in ctx.runtime.metadata.shard_ids():
            await ctx.runtime.metadata.pending_outbox(shard_id, 1)
        await ctx.runtime.events.topics()
    except PhotostoreError as exc:
        return problem(503, "not_ready", "Not ready", exc.detail)
    return photos.json_response({"status": "ready", "shard_map_version": ctx.runtime.shard_map.version})


async def metrics_endpoint(request: Request) -> Response:
    request.scope[ROUTE_KEY] = "/metrics"
    registry = context_of(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def openapi_json(request: Request) -> Response:
    request.scope[ROUTE_KEY] = "/openapi.json"
    return Response(orjson.dumps(request.app.state.openapi), media_type="application/json")


async def docs(request: Request) -> Response:
    request.scope[ROUTE_KEY] = "/docs"
    return HTMLResponse(render_docs(request.app.state.openapi))


async def on_photostore_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PhotostoreError)
    return answer_error(request, exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "route_not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    detail = f"{request.method} {request.url.path}: {exc.detail}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # RFC 9110: Allow lists every method of the path, over all its routes
        headers["allow"] = ", ".join(_methods_of(request))
    return problem(exc.status_code, code, str(exc.detail), detail, headers)


def _methods_of(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def on_unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "Internal error", "the server failed; the error was logged")


def routes(role: Role = "all") -> list[Route]:
    """Every role answers health, readiness and metrics; only api and all serve the API itself."""
    ops = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
    ]
    if role not in ("all", "api"):
        return ops
    return [
        *ops,
        Route("/openapi.json", openapi_json),
        Route("/docs", docs),
        Route("/v1/users", photos.post_user, methods=["POST"]),
        Route("/v1/photos", photos.post_photo, methods=["POST"]),
        Route("/v1/photos", photos.list_photos, methods=["GET"]),
        Route("/v1/photos/{photo_id}", photos.get_photo, methods=["GET"]),
        Route("/v1/photos/{photo_id}", photos.delete_photo, methods=["DELETE"]),
        Route("/v1/photos/{photo_id}/original", photos.get_original, methods=["GET"]),
        Route("/v1/photos/{photo_id}/variants/{name}", photos.get_variant, methods=["GET"]),
        Route("/cdn/{owner}/{photo_id}/{name}", cdn.get_cdn_object, methods=["GET"]),
        Route("/v1/uploads", tus.options, methods=["OPTIONS"]),
        Route("/v1/uploads", tus.create_upload, methods=["POST"]),
        Route("/v1/uploads/{upload_id}", tus.options, methods=["OPTIONS"]),
        Route("/v1/uploads/{upload_id}", tus.head_upload, methods=["HEAD"]),
        Route("/v1/uploads/{upload_id}", tus.patch_upload, methods=["PATCH"]),
        Route("/v1/uploads/{upload_id}", tus.delete_upload, methods=["DELETE"]),
        *web_routes(),
    ]


def _store_stats(metadata: MetadataStore) -> Iterable[tuple[str, str, str, dict[str, str], float]]:
    """Per-shard pool use and replica health, where the store keeps them (SQL stores)."""
    if not isinstance(metadata, SqlMetadataStore):
        return
    for pool in metadata.pool_stats():
        labels = {"shard": str(pool.shard_id), "role": pool.role, "target": pool.target}
        for name in ("size", "checked_out", "overflow", "idle", "max_open"):
            value = float(getattr(pool, name))
            yield "gauge", f"photostore_pool_{name}", f"connection pool {name}", labels, value
    for replica in metadata.replica_stats():
        labels = {"shard": str(replica.shard_id), "role": replica.role, "target": replica.target}
        yield "gauge", "photostore_replica_healthy", "replica health", labels, float(replica.healthy)
        yield "counter", "photostore_replica_reads", "reads served", labels, float(replica.reads)
        if replica.latency_ms is not None:
            yield "gauge", "photostore_replica_latency_ms", "latency EMA", labels, replica.latency_ms


_REBALANCE_FIGURES = {
    "routing_version": ("gauge", "routing version: grows at every change a rebalance publishes"),
    "running": ("gauge", "1 while a shard rebalance is planned or running"),
    "keys": ("counter", "placement keys (users) moved between shards"),
    "rows": ("counter", "metadata rows copied between shards"),
    "bytes": ("counter", "bytes of the objects of the users moved between shards"),
    "objects": ("counter", "objects moved between buckets"),
    "object_bytes": ("counter", "bytes of the objects moved between buckets"),
}


def _rebalance_stats(ctx: ApiContext) -> Iterable[tuple[str, str, str, dict[str, str], float]]:
    totals = ctx.runtime.control.totals()
    for name, (kind, help_text) in _REBALANCE_FIGURES.items():
        yield kind, f"photostore_rebalance_{name}", help_text, {}, float(totals.get(name, 0))
    for name, value in totals.items():
        if name.startswith("keys_"):
            labels = {"step": name.removeprefix("keys_")}
            yield (
                "gauge",
                "photostore_rebalance_keys_in_step",
                "keys of the running plan by step",
                labels,
                value,
            )


def _process_stats(ctx: ApiContext) -> Iterable[tuple[str, str, str, dict[str, str], float]]:
    cache = ctx.runtime.cache.stats()
    for name in ("hits", "misses", "evictions"):
        yield "counter", f"photostore_cache_{name}", f"cache {name}", {}, float(cache.get(name, 0))
    yield "gauge", "photostore_cache_bytes", "bytes held by the cache", {}, float(cache.get("bytes", 0))
    handlers = ctx.background.handlers.stats
    yield "counter", "photostore_derivatives", "derivatives made", {}, float(handlers.derivatives)
    yield "counter", "photostore_photos_processed", "photos processed", {}, float(handlers.processed)
    yield (
        "counter",
        "photostore_outbox_published",
        "outbox events relayed",
        {},
        float(ctx.background.relay.published),
    )
    yield (
        "counter",
        "photostore_photos_redriven",
        "stalled photos re-driven through the pipeline",
        {},
        float(ctx.background.reconciler.stats.redriven),
    )
    yield from _store_stats(ctx.runtime.metadata)
    verifier = ctx.reader.verifier
    if verifier is not None:
        checked, corrupt = float(verifier.checked), float(verifier.corrupt)
        yield "counter", "photostore_integrity_checked", "reads checked against their SHA-256", {}, checked
        yield "counter", "photostore_integrity_corrupt", "reads that failed it (quarantined)", {}, corrupt
    if ctx.limiter is not None:
        limits = ctx.limiter.stats
        for outcome, count in (("allowed", limits.allowed), ("limited", limits.limited)):
            labels = {"outcome": outcome}
            yield "counter", "photostore_rate_limit", "requests by rate-limit outcome", labels, float(count)
        errors = float(limits.store_errors)
        yield "counter", "photostore_rate_limit_store_errors", "limit checks the store failed", {}, errors
    if ctx.access is not None:
        access = ctx.access.stats
        yield "counter", "photostore_original_reads", "originals read", {}, float(access.reads)
        yield (
            "counter",
            "photostore_access_recorded",
            "original reads written for tiering",
            {},
            float(access.recorded),
        )
    if isinstance(ctx.runtime.blobs, RegionalReads):
        stats = ctx.runtime.blobs.stats
        for source, count in (("region", stats.from_region), ("home", stats.from_home)):
            yield (
                "counter",
                "photostore_blob_reads",
                "object reads by where they were served",
                {"source": source},
                float(count),
            )
    yield from _rebalance_stats(ctx)
    for loop in ctx.background.consumers:
        labels = {"group": loop.group, "topic": loop.topic}
        yield "counter", "photostore_events_handled", "events handled", labels, float(loop.stats.handled)
        yield "counter", "photostore_events_failed", "events given up on", labels, float(loop.stats.failed)


def create_app(settings: Settings | None = None, role: Role | None = None) -> HotPath:
    """Build the app; the stores open in its lifespan, so the factory itself does no I/O."""
    chosen = settings or load_settings()
    chosen_role: Role = role or chosen.server.role
    service = "api" if chosen_role == "all" else chosen_role
    configure_logging(chosen, service)
    metrics = ApiMetrics(service=service, region=chosen.regions.local or LOCAL_REGION)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Blob fsyncs park a thread each while the disk works; the default pool (cores + 4) would
        # leave hashing, probing and image work queued behind them.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=BLOCKING_THREADS))
        runtime = await open_runtime(chosen)
        background = BackgroundServices(runtime, chosen_role)
        quarantine = Quarantine(runtime.blobs, quarantine_bucket(chosen))
        verifier = ReadVerifier(quarantine, chosen.integrity.verify_reads)
        ctx = ApiContext(
            runtime=runtime,
            auth=Authenticator(runtime.metadata, runtime.cache),
            uploads=UploadService(
                runtime.metadata, runtime.blobs, runtime.bucket_map, chosen.limits, runtime.notifier
            ),
            reader=PhotoReader(
                runtime.metadata,
                runtime.blobs,
                runtime.cache,
                chosen.imaging.keep_gps_for_owner,
                verifier,
            ),
            metrics=metrics,
            background=background,
            variant_names=frozenset(v.name for v in chosen.imaging.variants),
            cdn=CdnLinks.from_settings(chosen),
        )
        serves_api = chosen_role in ("all", "api")
        if serves_api:
            ctx.limiter = build_limiter(chosen)
            ctx.resumable = ResumableUploads(
                runtime.metadata,
                runtime.blobs,
                multipart_for(runtime.blobs),
                ctx.uploads,
                chosen.resumable,
                chosen.limits.max_upload_bytes,
                staging_bucket(chosen),
            )
            ctx.access = AccessTracker(
                runtime.metadata,
                resolution_s=chosen.tiering.access_resolution.total_seconds(),
                flush_s=chosen.tiering.access_flush_s,
            )
        uploads = ctx.uploads
        runtime.on_routing_change.append(lambda _routing: uploads.set_bucket_map(runtime.bucket_map))
        metrics.add_collector(StatsCollector(lambda: _process_stats(ctx)))
        pool = chosen.metadata.pool
        for shard_id in runtime.shard_map.shard_ids:
            for field, value in pool.model_dump().items():
                metrics.pool_setting.labels(str(shard_id), field).set(value)
        app.state.ctx = ctx
        if serves_api:
            hot_path.ctx = ctx  # the cached-thumbnail shortcut is part of the API
        background.start()
        lag_export = asyncio.create_task(
            export_gauges(
                runtime,
                metrics.consumer_lag,
                metrics.scaling,
                metrics.active_users,
                chosen.server.metrics_refresh_s,
            )
        )
        access_flusher = asyncio.create_task(ctx.access.run()) if ctx.access is not None else None
        upload_sweeper = asyncio.create_task(ctx.resumable.run_sweeps()) if ctx.resumable else None
        try:
            yield
        finally:
            hot_path.ctx = None
            lag_export.cancel()
            await asyncio.gather(lag_export, return_exceptions=True)
            if upload_sweeper is not None and ctx.resumable is not None:
                upload_sweeper.cancel()
                await asyncio.gather(upload_sweeper, return_exceptions=True)
                await ctx.resumable.multipart.close()
            if access_flusher is not None and ctx.access is not None:
                access_flusher.cancel()
                await asyncio.gather(access_flusher, return_exceptions=True)
                await ctx.access.flush()  # the reads noted since the last tick
            await background.stop()
            if ctx.limiter is not None:
                await ctx.limiter.close()
            await runtime.close()
            if ctx.cdn is not None:
                ctx.cdn.close()

    app = Starlette(
        routes=routes(chosen_role),
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        exception_handlers={
            PhotostoreError: on_photostore_error,
            HTTPException: on_http_error,
            Exception: on_unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.openapi = openapi_document()
    hot_path = HotPath(app, metrics)
    return hot_path


def create_app_from_environment() -> HotPath:
    """Factory for ASGI servers (granian/uvicorn ``--factory``): settings from env and config file."""
    return create_app()
