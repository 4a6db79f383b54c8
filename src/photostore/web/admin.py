"""The operator dashboard: the page at ``/admin`` and its data at ``/v1/admin/stats``.

- ``/v1/admin/stats`` (admin token) answers one JSON document of this process's counters and the
  engines' figures, gathered by ``admin_stats.StatsGatherer`` at a bounded cost; never cached.
- ``/admin`` is a static page: no data, no inline script or style, so a strict CSP holds. Its
  script asks for the admin token, keeps it in ``sessionStorage`` (gone with the tab), and polls the
  stats every few seconds, keeping the time series of the line charts in the browser.
"""

from __future__ import annotations

from functools import cache

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from photostore.api.context import ApiContext, context_of
from photostore.api.metrics import ROUTE_KEY
from photostore.errors import Forbidden
from photostore.pipeline.auth import check_admin_token
from photostore.web.admin_page import render_page
from photostore.web.admin_stats import StatsGatherer

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "cache-control": "no-cache",  # the page names its assets by digest: revalidate it, cache them
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@cache
def _page() -> str:
    return render_page()


async def admin_page(request: Request) -> Response:
    request.scope[ROUTE_KEY] = "/admin"
    return HTMLResponse(_page(), headers=PAGE_HEADERS)


def require_admin(request: Request, ctx: ApiContext) -> None:
    """Refuse (401/403 problem+json) unless the request carries the server's admin token."""
    token = ctx.runtime.settings.admin_token
    if token is None:
        raise Forbidden("the dashboard is off: set PHOTOSTORE_ADMIN_TOKEN on the server")
    check_admin_token(request.headers.get("authorization"), token.get_secret_value())


def _gatherer(request: Request, ctx: ApiContext) -> StatsGatherer:
    """The process's gatherer, made on first use: its snapshots are shared by every caller."""
    state = request.app.state
    found = getattr(state, "admin_stats", None)
    if not isinstance(found, StatsGatherer):
        found = StatsGatherer(ctx.runtime, ctx.metrics)
        state.admin_stats = found
    return found


async def admin_stats(request: Request) -> Response:
    request.scope[ROUTE_KEY] = "/v1/admin/stats"
    ctx = context_of(request)
    require_admin(request, ctx)
    body = await _gatherer(request, ctx).gather()
    return Response(
        orjson.dumps(body),
        media_type="application/json",
        headers={"cache-control": "no-store", "x-content-type-options": "nosniff"},
    )
