"""Resumable uploads over tus 1.0 at /v1/uploads: core, creation, termination, checksum, expiration.

The protocol lives here (headers in, headers out); what happens to the bytes is in
``pipeline/resumable.py``. Every response but OPTIONS carries ``Tus-Resumable: 1.0.0``, errors too
(as problem+json). The request that completes an upload answers with ``Photo-Location``, the photo it
became, as does a HEAD of a completed upload.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import format_datetime

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from photostore.api.context import ApiContext, context_of
from photostore.api.metrics import ROUTE_KEY
from photostore.api.photos import principal_of
from photostore.api.problems import answer_error
from photostore.domain import ResumableUpload, Scope
from photostore.errors import (
    BadRequest,
    PhotostoreError,
    TusVersionUnsupported,
    UnsupportedMediaType,
    UploadNotFound,
)
from photostore.ids import parse_id
from photostore.pipeline.chunk_checksum import ALGORITHMS, parse_checksum
from photostore.pipeline.resumable import ResumableUploads

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,termination,checksum,expiration"
OFFSET_TYPE = "application/offset+octet-stream"
COLLECTION = "/v1/uploads"
ITEM = "/v1/uploads/{id}"
Handler = Callable[[Request], Awaitable[Response]]


def _tus_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"tus-resumable": TUS_VERSION, **(extra or {})}


def tus_endpoint(route: str) -> Callable[[Handler], Handler]:
    """Set the route label, check Tus-Resumable, and answer errors with the tus header."""

    def wrap(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            request.scope[ROUTE_KEY] = route
            try:
                if request.headers.get("tus-resumable") != TUS_VERSION:
                    raise TusVersionUnsupported(
                        f"send Tus-Resumable: {TUS_VERSION}; got {request.headers.get('tus-resumable')!r}"
                    )
                return await handler(request)
            except PhotostoreError as exc:
                extra = {"tus-version": TUS_VERSION} if isinstance(exc, TusVersionUnsupported) else None
                return answer_error(request, exc, _tus_headers(extra))

        return endpoint

    return wrap


async def options(request: Request) -> Response:
    """Discovery: no credentials needed (tus clients and browsers ask before they sign anything)."""
    request.scope[ROUTE_KEY] = COLLECTION
    ctx = context_of(request)
    headers = {
        "tus-resumable": TUS_VERSION,
        "tus-version": TUS_VERSION,
        "tus-extension": EXTENSIONS,
        "tus-max-size": str(ctx.runtime.settings.limits.max_upload_bytes),
        "tus-checksum-algorithm": ",".join(ALGORITHMS),
    }
    return Response(status_code=204, headers=headers)


def _service(ctx: ApiContext) -> ResumableUploads:
    if ctx.resumable is None:
        raise UploadNotFound("resumable uploads are served by the api role")
    return ctx.resumable


def parse_metadata(header: str, limit: int) -> dict[str, str]:
    """Upload-Metadata: ``key base64value`` pairs, comma separated; a key may have no value."""
    if len(header) > limit:
        raise BadRequest(f"Upload-Metadata has {len(header)} characters; the limit is {limit}")
    found: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, encoded = pair.partition(" ")
        if not key.isascii() or not key.isprintable() or key in found:
            raise BadRequest(f"Upload-Metadata key {key!r} is not a unique printable ASCII key")
        try:
            found[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text") from None
    return found


def _non_negative(request: Request, name: str) -> int:
    text = request.headers.get(name)
    if text is None or not text.isdigit():
        raise BadRequest(f"{name} must be a non-negative integer; got {text!r}")
    return int(text)


def _upload_id(request: Request) -> uuid.UUID:
    upload_id = parse_id(request.path_params["upload_id"])
    if upload_id is None:
        raise UploadNotFound(f"no upload {request.path_params['upload_id']!r}")
    return upload_id


def _state_headers(upload: ResumableUpload) -> dict[str, str]:
    headers = _tus_headers(
        {
            "upload-offset": str(upload.offset),
            "upload-expires": format_datetime(upload.expires_at, usegmt=True),
            "cache-control": "no-store",
        }
    )
    if upload.photo_id is not None:
        headers["photo-location"] = f"/v1/photos/{upload.photo_id}"
    return headers


@tus_endpoint(COLLECTION)
async def create_upload(request: Request) -> Response:
    ctx, principal = await principal_of(request, COLLECTION, Scope.WRITE)
    service = _service(ctx)
    if "upload-defer-length" in request.headers:
        raise BadRequest("Upload-Defer-Length is not supported: send Upload-Length")
    length = _non_negative(request, "upload-length")
    raw_metadata = request.headers.get("upload-metadata", "")
    metadata = parse_metadata(raw_metadata, service.settings.max_metadata_bytes)
    upload = await service.create(principal.user_id, length, raw_metadata, metadata.get("filename"))
    headers = _state_headers(upload)
    headers["location"] = f"{COLLECTION}/{upload.id}"
    return Response(status_code=201, headers=headers)


@tus_endpoint(ITEM)
async def head_upload(request: Request) -> Response:
    ctx, principal = await principal_of(request, ITEM, Scope.WRITE)
    upload = await _service(ctx).status(principal.user_id, _upload_id(request))
    headers = _state_headers(upload)
    headers["upload-length"] = str(upload.length)
    if upload.metadata:
        headers["upload-metadata"] = upload.metadata
    return Response(status_code=200, headers=headers)


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The body as it arrives; a cut connection ends it (what came before is kept)."""
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        return


@tus_endpoint(ITEM)
async def patch_upload(request: Request) -> Response:
    ctx, principal = await principal_of(request, ITEM, Scope.WRITE)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != OFFSET_TYPE:
        raise UnsupportedMediaType(f"a PATCH body must be sent as Content-Type: {OFFSET_TYPE}")
    offset = _non_negative(request, "upload-offset")
    checksum = parse_checksum(request.headers.get("upload-checksum"))
    ctx.metrics.concurrent_uploads.inc()
    try:
        outcome = await _service(ctx).append(
            principal.user_id, _upload_id(request), offset, _body(request), checksum
        )
    finally:
        ctx.metrics.concurrent_uploads.dec()
    if outcome.photo is not None:
        ctx.metrics.uploads.labels("created" if outcome.photo.created else "deduplicated").inc()
        if outcome.photo.created:
            ctx.metrics.upload_bytes.inc(outcome.photo.photo.bytes)
    return Response(status_code=204, headers=_state_headers(outcome.upload))


@tus_endpoint(ITEM)
async def delete_upload(request: Request) -> Response:
    ctx, principal = await principal_of(request, ITEM, Scope.WRITE)
    await _service(ctx).terminate(principal.user_id, _upload_id(request))
    return Response(status_code=204, headers=_tus_headers())
