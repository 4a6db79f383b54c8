"""The /v1 routes: users, and photos (upload, read, bytes, list, delete)."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from photostore.api.body import read_upload
from photostore.api.cdn import with_cdn
from photostore.api.context import ApiContext, context_of
from photostore.api.metrics import ROUTE_KEY
from photostore.api.serving import (
    IMMUTABLE,
    ORIGINAL_CACHE,
    serve_blob,
    serve_original,
    serve_original_without_location,
)
from photostore.domain import Scope
from photostore.errors import BadRequest, BlobNotFound, PhotoNotFound, UnknownVariant, VariantNotReady
from photostore.ids import parse_id
from photostore.pipeline.auth import Principal, check_admin_token
from photostore.pipeline.messages import PHOTO_DELETED, TOPIC_UPLOAD, photo_event
from photostore.pipeline.reads import PhotoView
from photostore.pipeline.users import create_user

DEFAULT_PAGE = 50
IDEMPOTENCY_KEY_MAX = 200
MAX_PAGE = 200


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


async def principal_of(request: Request, route: str, scope: Scope) -> tuple[ApiContext, Principal]:
    request.scope[ROUTE_KEY] = route
    ctx = context_of(request)
    principal = await ctx.auth.authenticate(request.headers.get("authorization"))
    if ctx.limiter is not None:
        await ctx.limiter.acquire(principal.key_id)
    principal.require(scope)
    ctx.metrics.active_users.seen(principal.user_id)
    return ctx, principal


def _photo_id(request: Request) -> uuid.UUID:
    photo_id = parse_id(request.path_params["photo_id"])
    if photo_id is None:
        raise PhotoNotFound()
    return photo_id


async def post_user(request: Request) -> Response:
    request.scope[ROUTE_KEY] = "/v1/users"
    ctx = context_of(request)
    token = ctx.runtime.settings.admin_token
    check_admin_token(request.headers.get("authorization"), token.get_secret_value() if token else None)
    name = "user"
    raw = await request.body()
    if raw:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BadRequest('the body must be JSON like {"name": "alice"}') from None
        if not isinstance(payload, dict) or not isinstance(payload.get("name", name), str):
            raise BadRequest('the body must be JSON like {"name": "alice"}')
        name = payload.get("name", name)
    user, api_key = await create_user(ctx.runtime.metadata, name)
    return json_response({"id": str(user.id), "name": user.name, "api_key": api_key}, 201)


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX or not key.isprintable():
        raise BadRequest(f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable characters")
    return key


async def post_photo(request: Request) -> Response:
    ctx, principal = await principal_of(request, "/v1/photos", Scope.WRITE)
    ctx.metrics.concurrent_uploads.inc()
    try:
        idempotency_key = _idempotency_key(request)
        body = await read_upload(request, ctx.runtime.settings.limits.max_upload_bytes)
        result = await ctx.uploads.upload(principal.user_id, body.data, body.filename, idempotency_key)
    finally:
        ctx.metrics.concurrent_uploads.dec()
    ctx.metrics.uploads.labels("created" if result.created else "deduplicated").inc()
    if result.created:
        ctx.metrics.upload_bytes.inc(result.photo.bytes)
    if result.inserted:
        view = await ctx.reader.fresh_view(result.photo)
    else:
        view = await ctx.reader.view(principal.user_id, result.photo.id)
    location = {"location": f"/v1/photos/{result.photo.id}"}
    return json_response(with_cdn(request, ctx, [view])[0], 201 if result.created else 200, location)


async def get_photo(request: Request) -> Response:
    ctx, principal = await principal_of(request, "/v1/photos/{id}", Scope.READ)
    view = await ctx.reader.view(principal.user_id, _photo_id(request))
    return json_response(with_cdn(request, ctx, [view])[0])


async def get_original(request: Request) -> Response:
    ctx, principal = await principal_of(request, "/v1/photos/{id}/original", Scope.READ)
    photo_id = _photo_id(request)
    view = await ctx.reader.view(principal.user_id, photo_id)
    try:
        return await _owners_original(request, ctx, view)
    except BlobNotFound:  # the object moved to another bucket after this view was cached
        view = await ctx.reader.refreshed_view(principal.user_id, photo_id)
        return await _owners_original(request, ctx, view)


async def _owners_original(request: Request, ctx: ApiContext, view: PhotoView) -> Response:
    """The owner's original: as uploaded, or without its location when the settings say the
    location is not kept even for the owner (where the format allows removing it in place)."""
    if view.has_location and not ctx.runtime.settings.imaging.keep_gps_for_owner:
        return await serve_original_without_location(
            request, ctx.reader, view, ORIGINAL_CACHE, ctx.access, refuse_unstrippable=False
        )
    return await serve_original(request, ctx.reader, view, access=ctx.access)


async def get_variant(request: Request) -> Response:
    ctx, principal = await principal_of(request, "/v1/photos/{id}/variants/{name}", Scope.READ)
    photo_id = _photo_id(request)
    name = request.path_params["name"]
    if name not in ctx.variant_names:
        raise UnknownVariant(f"no variant {name!r}; configured: {sorted(ctx.variant_names)}")
    view = await ctx.reader.view(principal.user_id, photo_id)
    try:
        return await _serve_variant(request, ctx, view, name)
    except BlobNotFound:  # the object moved to another bucket after this view was cached
        return await _serve_variant(
            request, ctx, await ctx.reader.refreshed_view(principal.user_id, photo_id), name
        )


async def _serve_variant(request: Request, ctx: ApiContext, view: PhotoView, name: str) -> Response:
    ref = view.blobs.get(name)
    if ref is None:
        raise VariantNotReady(f"variant {name!r} of this photo is still being made; retry shortly")
    return await serve_blob(request, ctx.reader, ref, cache_control=IMMUTABLE, cacheable=True)


def _encode_cursor(photo_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(photo_id.bytes).decode().rstrip("=")


def _decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError):
        raise BadRequest("the cursor is not one this API returned") from None


def _limit(request: Request) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return DEFAULT_PAGE
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_PAGE}")
    return int(text)


async def list_photos(request: Request) -> Response:
    ctx, principal = await principal_of(request, "/v1/photos", Scope.READ)
    limit = _limit(request)
    cursor = request.query_params.get("cursor")
    before = _decode_cursor(cursor) if cursor else None
    photos = await ctx.runtime.metadata.list_photos(principal.user_id, limit + 1, before)
    page, more = photos[:limit], len(photos) > limit
    items = with_cdn(request, ctx, await ctx.reader.page_views(principal.user_id, page))
    next_cursor = _encode_cursor(page[-1].id) if more and page else None
    return json_response({"items": items, "next_cursor": next_cursor})


async def delete_photo(request: Request) -> Response:
    ctx, principal = await principal_of(request, "/v1/photos/{id}", Scope.WRITE)
    photo_id = _photo_id(request)
    event = photo_event(TOPIC_UPLOAD, PHOTO_DELETED, photo_id, principal.user_id)
    deleted = await ctx.runtime.metadata.delete_photo(principal.user_id, photo_id, [event])
    if deleted is None:
        raise PhotoNotFound()
    await ctx.reader.forget(photo_id)
    ctx.runtime.notifier.notify()
    # Remove the objects now; the photo.deleted event repeats this if we crash before it is done.
    await ctx.background.handlers.remove_objects(photo_id)
    return Response(status_code=204)
