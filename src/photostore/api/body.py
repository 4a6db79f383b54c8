"""Reading upload bodies: bounded in size as they stream, raw or multipart."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from photostore.errors import BadRequest, EmptyBody, PayloadTooLarge


@dataclass(frozen=True, slots=True)
class UploadBody:
    data: bytes
    filename: str | None


# A refused body is still read (and dropped) up to this much before answering: a client that is
# still sending when the server answers and closes gets a connection reset instead of the 413.
DRAIN_BYTES = 16 * 1024 * 1024


async def _drain(request: Request, already: int) -> None:
    drained = already
    async for chunk in request.stream():
        drained += len(chunk)
        if drained > DRAIN_BYTES:
            return


async def _read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_size = int(declared)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if declared_size > limit:
            if declared_size <= DRAIN_BYTES:
                await _drain(request, 0)
            raise PayloadTooLarge(f"the body has {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            await _drain(request, size)
            raise PayloadTooLarge(f"the body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _once(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


async def _from_multipart(request: Request, raw: bytes) -> tuple[bytes, str | None]:
    parser = MultiPartParser(request.headers, _once(raw), max_files=1, max_fields=16)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"the multipart body cannot be read: {exc.message}") from None
    try:
        field = form.get("file")
        if not isinstance(field, UploadFile):
            raise BadRequest("the multipart body has no file field named 'file'")
        return await field.read(), field.filename
    finally:
        await form.close()


def _filename_from_headers(request: Request) -> str | None:
    disposition = request.headers.get("content-disposition", "")
    for part in disposition.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "filename" and value:
            return value.strip('"')
    return request.query_params.get("filename")


async def read_upload(request: Request, limit: int) -> UploadBody:
    """The image bytes of an upload: the raw body, or the multipart field ``file``."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        # The multipart envelope adds a few hundred bytes around the file.
        raw = await _read_bounded(request, limit + 64 * 1024)
        data, filename = await _from_multipart(request, raw)
        if len(data) > limit:
            raise PayloadTooLarge(f"the file exceeds the limit of {limit} bytes")
    else:
        data = await _read_bounded(request, limit)
        filename = _filename_from_headers(request)
    if not data:
        raise EmptyBody("send the image as the request body or as the multipart field 'file'")
    return UploadBody(data=data, filename=filename)
