"""``photostore edge``: the front door that sends each request to the nearest healthy region.

API calls are proxied (the body streamed through). GETs of bytes (originals, variants, signed CDN
paths) are answered with a 307 to the region, so the bytes skip the edge (``edge.byte_reads``,
``proxy`` to proxy them too); one that carries Authorization is proxied all the same, since
clients drop credentials on a redirect to another host. A region that refuses a connection is
marked down at once and the request goes to the next nearest; probes bring it back. The edge's
own routes live under ``/edge/``: ``healthz``, ``readyz`` (503 ``no_healthy_region`` when every
region is down), ``regions`` (each region's HealthStatus as JSON) and ``metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict

import aiohttp
import orjson
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from photostore.api.problems import from_error, problem
from photostore.errors import NoHealthyRegion, PhotostoreError, RegionUnreachable
from photostore.logs import configure_logging
from photostore.regions.forwarding import (
    SAFE_METHODS,
    OnceBody,
    counts_as_failure,
    downstream_headers,
    has_body,
    upstream_headers,
)
from photostore.regions.geo import GeoLocator, parse_networks, request_client
from photostore.regions.probes import HealthProber
from photostore.regions.router import Region, RegionRouter
from photostore.regions.router import Route as RegionRoute
from photostore.settings import Settings, load_settings

log = logging.getLogger(__name__)

BYTE_READ = re.compile(r"^/(v1/photos/[^/]+/(original|variants/[^/]+)|cdn/.+)$")
CONNECT_TIMEOUT_S = 2.0
BUFFER_BELOW_BYTES = 256 * 1024
# A region that cannot be reached at all: nothing was sent, so the request may go elsewhere.
CONNECT_FAILURES = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
REGION_HEADER = "x-photostore-edge-region"


class EdgeMetrics:
    def __init__(self, router: RegionRouter) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "photostore_edge_requests",
            "requests routed, by region and answer status",
            ["region", "status"],
            registry=self.registry,
        )
        self.failovers = Counter(
            "photostore_edge_failovers",
            "requests sent on to another region because one could not be reached",
            ["from_region"],
            registry=self.registry,
        )
        self.no_region = Counter(
            "photostore_edge_no_healthy_region", "requests refused: no region up", registry=self.registry
        )
        healthy = Gauge(
            "photostore_edge_region_healthy",
            "1 while a region takes traffic",
            ["region"],
            registry=self.registry,
        )
        for region in router.regions:
            healthy.labels(region.name).set_function(_health_reader(region))


def open_session(request_timeout_s: float) -> aiohttp.ClientSession:
    """The edge's client to the regions: aiohttp, whose pool keeps up under concurrency (httpx's
    reached ~300 requests/s at 64 concurrent here, aiohttp ~10,000), bodies passed through as sent."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1024, limit_per_host=0, enable_cleanup_closed=True),
        timeout=aiohttp.ClientTimeout(total=request_timeout_s, sock_connect=CONNECT_TIMEOUT_S),
        auto_decompress=False,  # Content-Encoding goes through untouched
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),  # only what the client sent
        cookie_jar=aiohttp.DummyCookieJar(),  # a proxy keeps no cookies
    )


def _health_reader(region: Region) -> Callable[[], float]:
    return lambda: float(region.health.healthy)


class Edge:
    """The routing and forwarding of one edge process."""

    def __init__(self, settings: Settings, router: RegionRouter, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.router = router
        self.session = session
        self.trusted = parse_networks(settings.geo.trusted_proxies)
        self.metrics = EdgeMetrics(router)
        self._endpoint_count = sum(len(region.health.endpoints) for region in router.regions)

    def route(self, request: Request) -> tuple[RegionRoute, str | None]:
        address = request_client(request, self.trusted)
        return self.router.route_address(address), address

    async def forward(self, request: Request) -> Response:
        peer = request.client.host if request.client else None
        location = self.router.locator.locate(request_client(request, self.trusted))
        body = OnceBody(request) if has_body(request) else None
        tried: set[str] = set()
        for _ in range(self._endpoint_count):
            route = self.router.route(location, tried)
            endpoint = route.region.health.pick()
            if endpoint is None:
                tried.add(route.region.name)
                continue
            target = f"{endpoint.url}{_raw_target(request)}"
            if self.settings.edge.byte_reads == "redirect" and _redirectable(request):
                self.metrics.requests.labels(route.region.name, "307").inc()
                return RedirectResponse(target, 307, headers={REGION_HEADER: route.region.name})
            try:
                response = await self.session.request(
                    request.method,
                    target,
                    headers=CIMultiDict(upstream_headers(request, peer)),
                    data=body,
                    allow_redirects=False,
                )
            except CONNECT_FAILURES as exc:
                endpoint.unreachable(f"{type(exc).__name__}: {exc}")
                self.metrics.failovers.labels(route.region.name).inc()
                log.warning(
                    "region %s unreachable at %s (%s): failing over", route.region.name, endpoint.url, exc
                )
                if body is not None and body.started:
                    raise RegionUnreachable(f"region {route.region.name} failed during the upload") from None
                if not route.region.health.healthy:
                    tried.add(route.region.name)
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                endpoint.request_done(ok=False)
                if request.method in SAFE_METHODS:
                    self.metrics.failovers.labels(route.region.name).inc()
                    tried.add(route.region.name)
                    continue
                raise RegionUnreachable(
                    f"region {route.region.name} failed while answering: {type(exc).__name__} {exc}"
                ) from None
            endpoint.request_done(
                ok=not counts_as_failure(response.status, response.headers.get("retry-after"))
            )
            self.metrics.requests.labels(route.region.name, str(response.status)).inc()
            # Raw pairs, not a dict: repeated headers (Set-Cookie) must all reach the client.
            passed = downstream_headers(
                [(name.decode("latin-1"), value.decode("latin-1")) for name, value in response.raw_headers]
            )
            raw_headers = [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in [*passed, (REGION_HEADER, route.region.name)]
            ]
            answer: Response
            if response.content_length is not None and response.content_length <= BUFFER_BELOW_BYTES:
                # Small answers (JSON, thumbnails) in one piece: streaming costs more than the copy.
                try:
                    body_bytes = await response.read()
                except (aiohttp.ClientError, TimeoutError) as exc:  # the region died mid-answer
                    endpoint.request_done(ok=False)
                    if request.method in SAFE_METHODS:
                        tried.add(route.region.name)
                        continue
                    raise RegionUnreachable(
                        f"region {route.region.name} failed while answering: {exc}"
                    ) from None
                finally:
                    response.release()
                answer = Response(body_bytes, status_code=response.status)
            else:
                answer = StreamingResponse(_relay(response), status_code=response.status)
            answer.raw_headers = raw_headers
            return answer
        raise NoHealthyRegion(f"every region failed this request: tried {sorted(tried)}")


async def _relay(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The region's body as it arrives; the connection goes back to the pool even if the client left."""
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    finally:
        response.release()


def _raw_target(request: Request) -> str:
    """Path and query as the client sent them: decoding and re-encoding could change a signed path."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    return (raw + b"?" + query if query else raw).decode("latin-1")


def _redirectable(request: Request) -> bool:
    """A read of bytes that a 307 can send on: no Authorization, which clients drop on a redirect
    to another host (signed CDN paths carry their permission in the URL)."""
    return (
        request.method in ("GET", "HEAD")
        and "authorization" not in request.headers
        and BYTE_READ.match(request.url.path) is not None
    )


def _edge_of(request: Request) -> Edge:
    edge: Edge = request.app.state.edge
    return edge


async def proxied(edge: Edge, request: Request) -> Response:
    try:
        return await edge.forward(request)
    except NoHealthyRegion as exc:
        edge.metrics.no_region.inc()
        return from_error(exc)
    except PhotostoreError as exc:
        return from_error(exc)
    except Exception:
        log.exception("the edge failed on %s %s", request.method, request.url.path)
        return problem(500, "internal_error", "Internal error", "the edge failed; the error was logged")


class EdgeFront:
    """Requests outside ``/edge/`` go straight to the proxy, with no routing or middleware in their
    way (a quarter of the edge's time under load); the edge's own routes and the lifespan go to
    the Starlette app."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/edge/"):
            edge: Edge = self.app.state.edge
            response = await proxied(edge, Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def healthz(request: Request) -> Response:
    return Response(orjson.dumps({"status": "ok"}), media_type="application/json")


async def readyz(request: Request) -> Response:
    edge = _edge_of(request)
    up = [region.name for region in edge.router.regions if region.health.healthy]
    if not up:
        return from_error(NoHealthyRegion("every region is down"))
    return Response(orjson.dumps({"status": "ready", "regions_up": up}), media_type="application/json")


async def regions(request: Request) -> Response:
    """Each region's health, and where this caller would be sent."""
    edge = _edge_of(request)
    try:
        route, address = edge.route(request)
        chosen: dict[str, object] | None = {
            "client_address": address,
            "region": route.region.name,
            "distance_km": round(route.distance_km, 1),
            "located": route.location is not None,
        }
    except NoHealthyRegion:
        chosen = None
    body = {
        "regions": [
            {
                "name": region.name,
                "role": region.settings.role,
                "lat": region.point.lat,
                "lon": region.point.lon,
                "healthy": region.health.healthy,
                "endpoints": [
                    {"url": endpoint.url, **asdict(endpoint.status())} for endpoint in region.health.endpoints
                ],
            }
            for region in edge.router.regions
        ],
        "you": chosen,
    }
    return Response(orjson.dumps(body), media_type="application/json")


async def metrics(request: Request) -> Response:
    return Response(generate_latest(_edge_of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_edge_app(settings: Settings | None = None) -> EdgeFront:
    chosen = settings or load_settings()
    configure_logging(chosen, "edge")
    if not chosen.regions.regions:
        from photostore.errors import ConfigError

        raise ConfigError("the edge needs regions: set regions.regions (see config/regions.toml)")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        locator = GeoLocator(chosen.geo)
        router = RegionRouter(chosen.regions, locator, chosen.edge.health)
        session = open_session(chosen.edge.request_timeout_s)
        async with session:
            app.state.edge = Edge(chosen, router, session)
            prober = HealthProber(router, chosen.edge.health, session)
            probing = asyncio.create_task(prober.run())
            try:
                yield
            finally:
                probing.cancel()
                await asyncio.gather(probing, return_exceptions=True)
                locator.close()

    app = Starlette(
        routes=[
            Route("/edge/healthz", healthz),
            Route("/edge/readyz", readyz),
            Route("/edge/regions", regions),
            Route("/edge/metrics", metrics),
        ],
        lifespan=lifespan,
    )
    return EdgeFront(app)


def create_edge_app_from_environment() -> EdgeFront:
    """Factory for ASGI servers (granian ``--factory``): settings from env and config file."""
    return create_edge_app()
