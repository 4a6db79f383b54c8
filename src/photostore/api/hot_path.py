"""The hot read path: a cached derivative GET answered before any routing or middleware.

A thumbnail grid is the service's busiest request. When the caller's key was verified recently by
this process, and the photo's view and the derivative's bytes are both in the cache, the answer
needs no database, no disk and no framework: this layer writes it straight to the ASGI server.
Anything else (a cache miss, conditional or range headers, an error) goes to the full app, which
gives the same answer the slow way, so behaviour does not depend on which path served a request.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Receive, Scope, Send

from photostore.api.context import ApiContext
from photostore.api.metrics import ApiMetrics, next_request_id, region_header
from photostore.api.serving import IMMUTABLE
from photostore.domain import Scope as KeyScope
from photostore.pipeline.reads import BlobRef

ROUTE = "/v1/photos/{id}/variants/{name}"
_PREFIX = "/v1/photos/"
_CONDITIONAL = frozenset({b"if-none-match", b"range", b"if-range"})
_CACHE_CONTROL = IMMUTABLE.encode()


class HotPath:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.ctx: ApiContext | None = None  # set while the app's lifespan runs
        self._served = metrics.requests.labels(metrics.service, metrics.region, ROUTE, "GET", "200")
        self._latency = metrics.latency.labels(metrics.service, metrics.region, ROUTE)
        self._region_header = region_header(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and self.ctx is not None:
            started = time.perf_counter()
            found = self._lookup(self.ctx, scope)
            if found is not None:
                ref, data, request_id = found
                headers = [
                    (b"content-type", ref.content_type.encode()),
                    (b"content-length", str(len(data)).encode()),
                    (b"etag", f'"{ref.sha256}"'.encode()),
                    (b"cache-control", _CACHE_CONTROL),
                    (b"accept-ranges", b"bytes"),
                    (b"x-request-id", request_id),
                    *self._region_header,
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": data})
                self._served.inc()
                self._latency.observe(time.perf_counter() - started)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _lookup(ctx: ApiContext, scope: Scope) -> tuple[BlobRef, bytes, bytes] | None:
        path: str = scope["path"]
        if not path.startswith(_PREFIX):
            return None
        parts = path.split("/")  # "", "v1", "photos", id, "variants", name
        if len(parts) != 6 or parts[4] != "variants" or parts[5] not in ctx.variant_names:
            return None
        authorization = None
        request_id = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-request-id" and 0 < len(value) <= 128:
                request_id = value
            elif name in _CONDITIONAL:
                return None
        if authorization is None:
            return None
        principal = ctx.auth.verified(authorization.decode("latin-1"))
        if principal is None or not principal.can(KeyScope.READ):
            return None
        if ctx.limiter is not None and not ctx.limiter.allow_now(principal.key_id):
            return None  # no lease in hand: the full path asks the limiter's store
        ctx.metrics.active_users.seen(principal.user_id)
        found = ctx.reader.cached_derivative(parts[3], parts[5], principal.user_id.hex)
        if found is None:
            return None
        return found[0], found[1], request_id or next_request_id()
