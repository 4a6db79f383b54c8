"""The gallery page: every asset it names is current, the import map covers every module the scripts
import, and the CSP allows the import map by its hash and nothing else inline."""

from __future__ import annotations

import base64
import hashlib
import json
import re

from starlette.requests import Request

from photostore.api.metrics import ROUTE_KEY
from photostore.web import gallery
from photostore.web.assets import ASSET_PREFIX, STATIC_ROOT, assets

IMPORT = re.compile(r"""^\s*import\s[^"']*["']([^"']+)["']""", re.M)


def inline_scripts(html: str) -> list[str]:
    return re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, re.S)


def test_the_page_links_current_assets_only() -> None:
    html, _ = gallery.render_page()
    linked = [url for url in re.findall(r'(?:src|href)="([^"]+)"', html) if not url.startswith("data:")]
    current = {asset.url for asset in assets().values()}
    assert linked
    for url in linked:
        assert url.startswith(ASSET_PREFIX + "/")
        assert url in current
    mapped = json.loads(inline_scripts(html)[0])["imports"]
    assert set(mapped.values()) <= current


def test_the_import_map_covers_every_import_of_the_scripts() -> None:
    mapped = set(json.loads(gallery.import_map())["imports"])
    scripts = sorted((STATIC_ROOT / "gallery").glob("*.js"))
    imported = {name for script in scripts for name in IMPORT.findall(script.read_text())}
    assert imported, "the app is ES modules that import each other"
    assert imported <= mapped, f"add {sorted(imported - mapped)} to gallery.MODULES"
    # and every mapped module, plus the entry, is a file that exists
    for name in [*mapped, gallery.ENTRY, gallery.STYLESHEET, gallery.TUS_CLIENT]:
        assert (STATIC_ROOT / name).is_file(), name


def test_the_csp_allows_the_import_map_by_its_hash_and_nothing_else_inline() -> None:
    html, policy = gallery.render_page()
    (inline,) = inline_scripts(html)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["script-src"] == ["'self'", f"'sha256-{digest}'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert "unsafe" not in policy
    assert "<style" not in html
    assert " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None  # no inline event handlers


def test_the_ids_the_tests_use_are_there() -> None:
    html, _ = gallery.render_page()
    for element_id in (
        "signin-form",
        "api-key",
        "signin-button",
        "signin-error",
        "signout-button",
        "file-input",
        "dropzone",
        "upload-list",
        "grid",
        "grid-sentinel",
        "photo-view",
        "photo-preview",
        "exif-table",
        "photo-download",
        "photo-delete",
        "photo-close",
    ):
        assert f'id="{element_id}"' in html
    assert '<input id="file-input"' in html
    assert "multiple" in html.split('<input id="file-input"')[1].split(">")[0]
    assert '<label for="api-key">' in html


async def test_the_response_is_not_cached_and_carries_the_policy() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""})
    response = await gallery.gallery_page(request)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-security-policy"] == gallery.render_page()[1]
    assert response.headers["content-type"].startswith("text/html")
    assert request.scope[ROUTE_KEY] == "/"
