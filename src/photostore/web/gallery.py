"""The gallery page at ``/``: a small browser app over the JSON API and the tus upload endpoint.

The page itself is a short HTML shell; everything else is static files under immutable URLs
(``photostore.web.assets``), so the shell is the only thing a browser must revalidate (``no-cache``).

The scripts are ES modules. Each asset has its own content digest in its URL, so a relative import
(``./api.js``) cannot find its sibling; the page carries an import map from bare names
(``gallery/api.js``) to the immutable URLs instead. The map is the one inline script, allowed by its
SHA-256 in the Content-Security-Policy, so the policy needs no ``'unsafe-inline'``.

Vendored: ``static/vendor/tus.min.js`` is tus-js-client 4.3.1's browser build (MIT, its licence beside
it). The blurhash decoder is our own (``static/gallery/blurhash.js``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from photostore.api.metrics import ROUTE_KEY
from photostore.web.assets import asset_url

# The ES modules the app imports by bare name (``import ... from "gallery/api.js"``).
MODULES = (
    "gallery/api.js",
    "gallery/blurhash.js",
    "gallery/grid.js",
    "gallery/uploads.js",
    "gallery/viewer.js",
)
ENTRY = "gallery/app.js"
STYLESHEET = "gallery/gallery.css"
TUS_CLIENT = "vendor/tus.min.js"


def import_map() -> str:
    """The import map's JSON text, exactly as it stands in the page (its hash is in the CSP)."""
    return json.dumps({"imports": {name: asset_url(name) for name in MODULES}}, separators=(",", ":"))


def script_hash(text: str) -> str:
    """A CSP hash-source for an inline script whose text is exactly ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def content_security_policy(map_text: str) -> str:
    directives = (
        "default-src 'self'",
        "img-src 'self' blob: data:",
        f"script-src 'self' {script_hash(map_text)}",
        "style-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
    return "; ".join(directives)


_BODY = """<body>
<header class="bar">
  <h1>photostore</h1>
  <button id="signout-button" type="button" hidden>Sign out</button>
</header>
<main>
  <section id="signin" aria-labelledby="signin-title">
    <h2 id="signin-title">Sign in</h2>
    <form id="signin-form" novalidate>
      <label for="api-key">API key</label>
      <input id="api-key" name="api-key" type="password" autocomplete="current-password" required
        spellcheck="false">
      <button id="signin-button" type="submit">Sign in</button>
      <p id="signin-error" class="error" role="alert" hidden></p>
    </form>
  </section>
  <section id="app" hidden>
    <section id="dropzone" class="dropzone" aria-labelledby="upload-title">
      <h2 id="upload-title" class="visually-hidden">Upload</h2>
      <p>Drop photos here, or
        <label class="button" for="file-input">choose files</label>
        <input id="file-input" class="visually-hidden" type="file" multiple accept="image/*">
      </p>
      <ul id="upload-list" class="uploads" aria-label="Uploads"></ul>
    </section>
    <section aria-labelledby="timeline-title">
      <h2 id="timeline-title">Photos</h2>
      <p id="grid-status" class="status" role="status"></p>
      <ul id="grid" class="grid" aria-label="Photos, newest first"></ul>
      <div id="grid-sentinel" class="sentinel" aria-hidden="true"></div>
    </section>
  </section>
</main>
<dialog id="photo-view" aria-labelledby="photo-title">
  <header class="bar">
    <h2 id="photo-title"></h2>
    <button id="photo-close" type="button" aria-label="Close">&times;</button>
  </header>
  <div class="view">
    <figure>
      <canvas id="photo-placeholder" width="32" height="32" aria-hidden="true"></canvas>
      <img id="photo-preview" alt="">
    </figure>
    <aside>
      <p id="photo-facts"></p>
      <div class="actions">
        <button id="photo-download" type="button">Download original</button>
        <button id="photo-delete" type="button" class="danger">Delete</button>
      </div>
      <p id="photo-error" class="error" role="alert" hidden></p>
      <h3>EXIF</h3>
      <table id="exif-table"><tbody></tbody></table>
      <p id="exif-empty" hidden>No EXIF data.</p>
    </aside>
  </div>
</dialog>
</body>
"""


@cache
def render_page() -> tuple[str, str]:
    """(the HTML, its Content-Security-Policy): both depend only on the assets, read once."""
    map_text = import_map()
    head = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>photostore</title>\n"
        '<link rel="icon" href="data:,">\n'  # no favicon request (a 404 on every first visit)
        f'<link rel="stylesheet" href="{asset_url(STYLESHEET)}">\n'
        f'<script type="importmap">{map_text}</script>\n'
        f'<script src="{asset_url(TUS_CLIENT)}" defer></script>\n'
        f'<script type="module" src="{asset_url(ENTRY)}"></script>\n'
        "</head>\n"
    )
    return head + _BODY + "</html>\n", content_security_policy(map_text)


async def gallery_page(request: Request) -> Response:
    request.scope[ROUTE_KEY] = "/"
    html, policy = render_page()
    headers = {
        "cache-control": "no-cache",
        "content-security-policy": policy,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }
    return HTMLResponse(html, headers=headers)
