"""The dashboard page: structure only, every asset it names exists, nothing inline for the CSP."""

from __future__ import annotations

import re

from photostore.web.admin import CSP, PAGE_HEADERS
from photostore.web.admin_page import render_page
from photostore.web.assets import ASSET_PREFIX, assets


def test_the_page_links_current_assets_only() -> None:
    page = render_page()
    linked = [url for url in re.findall(r'(?:src|href)="([^"]+)"', page) if not url.startswith("data:")]
    assert linked, "the page links its script and styles"
    current = {asset.url for asset in assets().values()}
    for url in linked:
        assert url.startswith(ASSET_PREFIX + "/")
        assert url in current
    assert any(url.endswith("/admin/admin.js") for url in linked)
    assert any(url.endswith("/vendor/uplot/uPlot.iife.min.js") for url in linked)


def test_the_page_has_no_inline_script_or_style() -> None:
    page = render_page()
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None
    assert "<style" not in page
    assert " style=" not in page
    assert re.search(r"\son[a-z]+=", page) is None  # no inline event handlers


def test_the_contract_ids_are_there() -> None:
    page = render_page()
    for element_id in ("admin-token", "admin-sign-in", "sign-in-error", "dashboard", "stat-uploads"):
        assert f'id="{element_id}"' in page


def test_the_csp_forbids_everything_not_served_here() -> None:
    assert PAGE_HEADERS["content-security-policy"] == CSP
    assert "script-src 'self';" in CSP
    assert "'unsafe-inline'" not in CSP
    assert "frame-ancestors 'none'" in CSP
    assert PAGE_HEADERS["cache-control"] == "no-cache"
