"""The routes of the browser apps: the gallery, the operator dashboard and their static files."""

from __future__ import annotations

from starlette.routing import Route

from photostore.web import admin, gallery
from photostore.web.assets import ASSET_PREFIX, serve_asset


def web_routes() -> list[Route]:
    return [
        Route("/", gallery.gallery_page, methods=["GET"]),
        Route("/admin", admin.admin_page, methods=["GET"]),
        Route("/v1/admin/stats", admin.admin_stats, methods=["GET"]),
        Route(ASSET_PREFIX + "/{digest}/{path:path}", serve_asset, methods=["GET"]),
    ]
