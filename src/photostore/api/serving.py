"""Serving stored bytes: strong ETags, 304s, single Range requests, immutable derivatives."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from photostore.api.problems import from_error
from photostore.api.ranges import parse_range
from photostore.errors import LocationPrivate, RangeNotSatisfiable
from photostore.imaging.location import CannotStrip, without_location
from photostore.pipeline.access import AccessTracker
from photostore.pipeline.reads import ORIGINAL, BlobRef, PhotoReader, PhotoView

IMMUTABLE = "private, max-age=31536000, immutable"
ORIGINAL_CACHE = "private, max-age=86400"


def etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def content_disposition(filename: str) -> str:
    """``inline`` with the uploader's file name, safe whatever it holds (RFC 6266): an ASCII
    fallback without quotes, backslashes or control characters, and the exact name UTF-8 encoded."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename) or "photo"
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _prelude(
    request: Request, etag: str, cache_control: str, filename: str | None
) -> tuple[dict[str, str], Response | None]:
    """The caching headers, and the 304 when If-None-Match already holds ``etag``."""
    headers = {"etag": etag, "cache-control": cache_control, "accept-ranges": "bytes"}
    if filename is not None:
        headers["content-disposition"] = content_disposition(filename)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and etag_matches(if_none_match, etag):
        return headers, Response(status_code=304, headers=headers)
    return headers, None


def _span(request: Request, etag: str, size: int) -> tuple[int, int] | Response | None:
    """The single range asked for (when If-Range allows), a 416, or None for the whole object."""
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if not range_header or (if_range is not None and if_range.strip() != etag):
        return None
    try:
        return parse_range(range_header, size)
    except RangeNotSatisfiable as exc:
        return from_error(exc, {"content-range": f"bytes */{size}"})


async def serve_blob(
    request: Request,
    reader: PhotoReader,
    ref: BlobRef,
    *,
    cache_control: str,
    cacheable: bool,
    filename: str | None = None,
) -> Response:
    etag = f'"{ref.sha256}"'
    headers, not_modified = _prelude(request, etag, cache_control, filename)
    if not_modified is not None:
        return not_modified
    span = _span(request, etag, ref.size)
    if isinstance(span, Response):
        return span
    if span is not None:
        start, end = span
        data = await reader.read_range(ref, start, end)
        headers["content-range"] = f"bytes {start}-{end - 1}/{ref.size}"
        return Response(data, status_code=206, media_type=ref.content_type, headers=headers)
    data = await reader.read_bytes(ref, cacheable=cacheable)
    return Response(data, media_type=ref.content_type, headers=headers)


async def serve_original(
    request: Request,
    reader: PhotoReader,
    view: PhotoView,
    cache_control: str = ORIGINAL_CACHE,
    access: AccessTracker | None = None,
) -> Response:
    """The original's bytes (never kept in the process cache: the thumbnails need the room); the
    read is noted in ``access`` for tiering."""
    if access is not None:
        access.original_read(view.json["id"])
    return await serve_blob(
        request,
        reader,
        view.blobs[ORIGINAL],
        cache_control=cache_control,
        cacheable=False,
        filename=view.json["filename"],
    )


def bytes_response(
    request: Request, data: bytes, etag: str, content_type: str, cache_control: str, filename: str | None
) -> Response:
    """Bytes made for this answer (not stored as such): ETag, 304 and single ranges over ``data``."""
    headers, not_modified = _prelude(request, etag, cache_control, filename)
    if not_modified is not None:
        return not_modified
    span = _span(request, etag, len(data))
    if isinstance(span, Response):
        return span
    if span is not None:
        start, end = span
        headers["content-range"] = f"bytes {start}-{end - 1}/{len(data)}"
        return Response(data[start:end], status_code=206, media_type=content_type, headers=headers)
    return Response(data, media_type=content_type, headers=headers)


async def serve_original_without_location(
    request: Request,
    reader: PhotoReader,
    view: PhotoView,
    cache_control: str,
    access: AccessTracker | None,
    *,
    refuse_unstrippable: bool,
) -> Response:
    """The original with its GPS removed in place (``imaging.location``). Where the format cannot
    be rewritten in place: LocationPrivate when ``refuse_unstrippable``, else the stored bytes."""
    if access is not None:
        access.original_read(view.json["id"])
    ref = view.blobs[ORIGINAL]
    data = await reader.read_bytes(ref, cacheable=False)
    try:
        stripped = await asyncio.to_thread(without_location, data, view.json["format"])
    except CannotStrip:
        if refuse_unstrippable:
            raise LocationPrivate(
                f"this {view.json['format']} original carries a location that cannot be removed without "
                "re-encoding it, so it is not shared by URL; its variants are (they carry no metadata)"
            ) from None
        stripped, etag = data, f'"{ref.sha256}"'
    else:
        etag = f'"{ref.sha256}-nogps"'
    return bytes_response(request, stripped, etag, ref.content_type, cache_control, view.json["filename"])
