"""Static files under immutable URLs: ``/assets/<digest>/<path>``, the digest taken from the content.

Guarantees:
- A URL names one exact content: when a file changes, its digest (and so its URL) changes, so the
  response may be cached for a year as ``immutable`` without a stale copy ever being served.
- Only files found in ``static/`` at start are served; a path outside it, or a digest that is not the
  file's current one, is a 404 (never cached), so an old page cannot get a new file under an old name.
- Files are read once, at first use, and kept in memory: the whole folder is a few hundred KB.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from photostore.api.metrics import ROUTE_KEY
from photostore.api.problems import problem

STATIC_ROOT = Path(__file__).parent / "static"
ASSET_PREFIX = "/assets"
IMMUTABLE = "public, max-age=31536000, immutable"
DIGEST_CHARS = 16
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


@dataclass(frozen=True, slots=True)
class Asset:
    path: str  # relative to static/, with forward slashes
    digest: str
    data: bytes
    content_type: str

    @property
    def url(self) -> str:
        return f"{ASSET_PREFIX}/{self.digest}/{self.path}"


def _content_type(path: Path) -> str:
    return _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@cache
def assets() -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for file in sorted(STATIC_ROOT.rglob("*")):
        if not file.is_file():
            continue
        data = file.read_bytes()
        relative = file.relative_to(STATIC_ROOT).as_posix()
        digest = hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]
        found[relative] = Asset(relative, digest, data, _content_type(file))
    return found


def asset_url(path: str) -> str:
    """The immutable URL of ``static/<path>``; a KeyError names a file that is not there."""
    return assets()[path].url


async def serve_asset(request: Request) -> Response:
    request.scope[ROUTE_KEY] = "/assets/{digest}/{path}"
    asset = assets().get(request.path_params["path"])
    if asset is None or asset.digest != request.path_params["digest"]:
        return problem(404, "asset_not_found", "No such asset", f"{request.url.path} is not a current asset")
    etag = f'"{asset.digest}"'
    headers = {"cache-control": IMMUTABLE, "etag": etag, "x-content-type-options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.data, media_type=asset.content_type, headers=headers)
