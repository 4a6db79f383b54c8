"""The MultipartStore contract, on both backends: ``ObjectParts`` over the embedded BlobStore, and
``S3Multipart`` (S3's own multipart API, signed here) on the session's SeaweedFS."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from photostore.blobs.local import LocalBlobStore
from photostore.blobs.multipart import MIN_PART_BYTES, MultipartStore, UploadedPart
from photostore.blobs.multipart_factory import multipart_for
from photostore.blobs.port import BlobStore
from photostore.blobs.s3 import S3BlobStore
from photostore.blobs.s3_multipart import S3Multipart
from photostore.errors import BlobNotFound

BUCKET = "photos-0"


@pytest.fixture(params=["local", "s3"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[BlobStore, MultipartStore]]:
    blobs: BlobStore
    if request.param == "s3":
        blobs = S3BlobStore.from_settings(request.getfixturevalue("seaweedfs").s3_settings(), [BUCKET])
    else:
        blobs = LocalBlobStore(tmp_path / "blobs", [BUCKET])
    await blobs.start()
    multipart = multipart_for(blobs)
    assert isinstance(multipart, S3Multipart) == (request.param == "s3")
    yield blobs, multipart
    await multipart.close()
    await blobs.close()


def _key() -> str:
    return f"uploads-test/{secrets.token_hex(8)}/data"


async def test_parts_complete_into_one_object_in_order(stores: tuple[BlobStore, MultipartStore]) -> None:
    blobs, multipart = stores
    key = _key()
    chunks = [os.urandom(MIN_PART_BYTES), os.urandom(MIN_PART_BYTES), os.urandom(1234)]
    upload_id = await multipart.begin(BUCKET, key)
    parts = []
    # Sent out of order, the second one twice (a retried part replaces the first attempt).
    for number in (2, 1, 3, 2):
        data = chunks[number - 1]
        etag = await multipart.put_part(BUCKET, key, upload_id, number, data)
        parts.append(UploadedPart(number, etag, len(data)))
    with pytest.raises(BlobNotFound):
        await blobs.head(BUCKET, key)  # nothing shows before completion
    final = sorted({p.number: p for p in parts}.values(), key=lambda p: p.number)
    await multipart.complete(BUCKET, key, upload_id, final)
    assert await blobs.get(BUCKET, key) == b"".join(chunks)
    # Completing again (a retry whose first answer was lost) fails as missing or changes nothing:
    # S3 servers differ (SeaweedFS and AWS, for a while, answer 200 again).
    with contextlib.suppress(BlobNotFound):
        await multipart.complete(BUCKET, key, upload_id, final)
    assert await blobs.get(BUCKET, key) == b"".join(chunks)
    await blobs.delete(BUCKET, key)


async def test_a_single_short_part_is_a_whole_object(stores: tuple[BlobStore, MultipartStore]) -> None:
    blobs, multipart = stores
    key = _key()
    upload_id = await multipart.begin(BUCKET, key)
    etag = await multipart.put_part(BUCKET, key, upload_id, 1, b"tiny")
    await multipart.complete(BUCKET, key, upload_id, [UploadedPart(1, etag, 4)])
    assert await blobs.get(BUCKET, key) == b"tiny"
    await blobs.delete(BUCKET, key)


async def test_upload_ids_survive_a_new_store(stores: tuple[BlobStore, MultipartStore]) -> None:
    """Another process (here another MultipartStore) continues an upload begun elsewhere."""
    blobs, multipart = stores
    key = _key()
    upload_id = await multipart.begin(BUCKET, key)
    first = os.urandom(MIN_PART_BYTES)
    etag1 = await multipart.put_part(BUCKET, key, upload_id, 1, first)
    other = multipart_for(blobs)
    etag2 = await other.put_part(BUCKET, key, upload_id, 2, b"end")
    await other.complete(
        BUCKET, key, upload_id, [UploadedPart(1, etag1, len(first)), UploadedPart(2, etag2, 3)]
    )
    await other.close()
    assert await blobs.get(BUCKET, key) == first + b"end"
    await blobs.delete(BUCKET, key)


async def test_abort_drops_the_parts_and_is_idempotent(stores: tuple[BlobStore, MultipartStore]) -> None:
    blobs, multipart = stores
    key = _key()
    upload_id = await multipart.begin(BUCKET, key)
    etag = await multipart.put_part(BUCKET, key, upload_id, 1, b"abc")
    await multipart.abort(BUCKET, key, upload_id)
    await multipart.abort(BUCKET, key, upload_id)
    with pytest.raises(BlobNotFound):
        await multipart.complete(BUCKET, key, upload_id, [UploadedPart(1, etag, 3)])
    with pytest.raises(BlobNotFound):
        await blobs.head(BUCKET, key)
    left = [info.key async for info in blobs.list(BUCKET, f".multipart/{upload_id}")]
    assert left == []
