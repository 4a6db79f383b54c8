"""Signed CDN URLs: handed out with photo views, and served at ``/cdn/...`` as the CDN's origin.

A URL names the owner, the photo and what to fetch (``original`` or a variant), and carries an
HMAC over that path, its expiry and the key id (:mod:`photostore.regions.signing`); holding it is
the permission, so the CDN needs no API key. The host is the provider endpoint nearest the client
(:mod:`photostore.regions.cdn`), found from the client's address behind trusted proxies. Variants
are negotiated by ``Accept``: AVIF, WebP or JPEG, made from the stored variant once and cached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from photostore.api.context import ApiContext, context_of
from photostore.api.metrics import ROUTE_KEY
from photostore.api.serving import (
    etag_matches,
    serve_blob,
    serve_original,
    serve_original_without_location,
)
from photostore.errors import (
    BlobNotFound,
    PhotoNotFound,
    RouteNotFound,
    UnknownVariant,
    VariantNotReady,
)
from photostore.ids import parse_id
from photostore.imaging.negotiate import MEDIA_TYPES, choose_format, transcode
from photostore.pipeline.reads import ORIGINAL, BlobRef, PhotoReader, PhotoView
from photostore.regions.cdn import CdnManager
from photostore.regions.geo import GeoLocator, Network, parse_networks, request_client
from photostore.regions.signing import UrlSigner
from photostore.settings import Settings

log = logging.getLogger(__name__)

ROUTE = "/cdn/{owner}/{id}/{name}"
TRANSCODED_TTL_S = 3600.0


class CdnLinks:
    """Builds the signed URLs of a view for one client, and checks the ones that come back."""

    def __init__(
        self, manager: CdnManager, signer: UrlSigner, locator: GeoLocator, trusted: tuple[Network, ...]
    ):
        self.manager = manager
        self.signer = signer
        self.locator = locator
        self.trusted = trusted

    @classmethod
    def from_settings(cls, settings: Settings) -> CdnLinks | None:
        """None unless CDN providers (and so a signing key) are configured."""
        signer = UrlSigner.from_settings(settings.cdn)
        if not settings.cdn.enabled or signer is None:
            return None
        manager = CdnManager.from_settings(settings.cdn, settings.regions)
        return cls(manager, signer, GeoLocator(settings.geo), parse_networks(settings.geo.trusted_proxies))

    def endpoint_for(self, request: Request) -> str:
        return self.manager.endpoint_for(self.locator.locate(request_client(request, self.trusted)))

    def links(self, endpoint: str, view: PhotoView) -> dict[str, Any]:
        photo_id = view.json["id"]
        original = self.signer.sign(f"/cdn/{view.owner_hex}/{photo_id}/{ORIGINAL}")
        variants = {
            name: endpoint + self.signer.sign(f"/cdn/{view.owner_hex}/{photo_id}/{name}")
            for name in view.json["variants"]
        }
        return {"original": endpoint + original, "variants": variants}

    def close(self) -> None:
        self.locator.close()


def with_cdn(request: Request, ctx: ApiContext, views: list[PhotoView]) -> list[dict[str, Any]]:
    """The views' JSON, each with a ``cdn`` object of signed URLs when a CDN is configured."""
    if ctx.cdn is None:
        return [view.json for view in views]
    endpoint = ctx.cdn.endpoint_for(request)
    return [{**view.json, "cdn": ctx.cdn.links(endpoint, view)} for view in views]


async def get_cdn_object(request: Request) -> Response:
    """What a CDN fetches from its origin: the bytes a signed URL names."""
    request.scope[ROUTE_KEY] = ROUTE
    ctx = context_of(request)
    if ctx.cdn is None:
        raise RouteNotFound("this service hands out no CDN URLs: cdn.providers is not configured")
    ctx.cdn.signer.verify(request.url.path, request.query_params)
    owner_id = parse_id(request.path_params["owner"])
    photo_id = parse_id(request.path_params["photo_id"])
    if owner_id is None or photo_id is None:
        raise PhotoNotFound()
    name: str = request.path_params["name"]
    if name != ORIGINAL and name not in ctx.variant_names:
        raise UnknownVariant(f"no variant {name!r}; configured: {sorted(ctx.variant_names)}")
    # Caches may keep the answer until the URL expires, never longer.
    max_age = max(0, int(request.query_params["exp"]) - int(time.time()))
    cache_control = f"public, max-age={max_age}"
    view = await ctx.reader.view(owner_id, photo_id)
    try:
        return await _serve(request, ctx, view, name, cache_control)
    except BlobNotFound:  # the object moved to another bucket after this view was cached
        view = await ctx.reader.refreshed_view(owner_id, photo_id)
        return await _serve(request, ctx, view, name, cache_control)


async def _serve(
    request: Request, ctx: ApiContext, view: PhotoView, name: str, cache_control: str
) -> Response:
    if name == ORIGINAL:
        if view.has_location:  # a signed URL is for anyone: never with the location
            return await serve_original_without_location(
                request, ctx.reader, view, cache_control, ctx.access, refuse_unstrippable=True
            )
        return await serve_original(request, ctx.reader, view, cache_control, ctx.access)
    ref = view.blobs.get(name)
    if ref is None:
        raise VariantNotReady(f"variant {name!r} of this photo is still being made; retry shortly")
    stored = view.json["variants"][name]["format"]
    target = choose_format(request.headers.get("accept"), stored)
    if target == stored:
        return await _stored_variant(request, ctx, ref, cache_control)
    etag = f'"{ref.sha256}-{target.lower()}"'
    headers = {"etag": etag, "cache-control": cache_control, "vary": "Accept"}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    try:
        data = await _transcoded(ctx, ctx.reader, ref, target)
    except ValueError:  # a stored variant Pillow cannot convert: the stored bytes still serve
        log.warning("could not convert variant %s of %s to %s", name, view.json["id"], target, exc_info=True)
        return await _stored_variant(request, ctx, ref, cache_control)
    return Response(data, media_type=MEDIA_TYPES[target], headers=headers)


async def _stored_variant(request: Request, ctx: ApiContext, ref: BlobRef, cache_control: str) -> Response:
    """The variant's bytes as stored (ETag, 304, Range), marked as chosen by ``Accept``."""
    response = await serve_blob(request, ctx.reader, ref, cache_control=cache_control, cacheable=True)
    response.headers["vary"] = "Accept"
    return response


async def _transcoded(ctx: ApiContext, reader: PhotoReader, ref: BlobRef, target: str) -> bytes:
    """The variant in ``target`` format: made once per (variant, format), then served from the cache."""
    key = f"cdn:{ref.sha256}:{target}"
    cached = await ctx.runtime.cache.get(key)
    if cached is not None:
        return cached
    source = await reader.read_bytes(ref, cacheable=True)
    data = await asyncio.to_thread(transcode, source, target)
    await ctx.runtime.cache.set(key, data, TRANSCODED_TTL_S)
    return data
