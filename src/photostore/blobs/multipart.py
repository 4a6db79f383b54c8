"""Multipart uploads that outlive a request: parts sent one call at a time, completed into one object.

Guarantees (every implementation):
- ``begin`` returns an upload id that stays valid across processes until ``complete`` or ``abort``.
- ``put_part`` stores part ``number`` durably and returns its tag; sending a number again replaces it.
- ``complete`` makes the object from the parts named, in order, atomically (the object is whole or
  absent); the upload id then ends. Every part but the last must hold at least ``MIN_PART_BYTES``
  (S3's rule, kept everywhere so code tested embedded behaves the same on S3). Completing again
  either raises ``BlobNotFound`` or changes nothing (S3 servers differ).
- ``abort`` drops the parts; an unknown upload id is not an error.

Two implementations: ``S3Multipart`` (blobs/s3_multipart.py) uses S3's own multipart API, so the parts
of a 20 GB upload never pass through this process again; ``ObjectParts`` here keeps each part as an
object of the BlobStore (for the embedded store) and concatenates them on completion.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import xxhash

from photostore.blobs.port import BlobStore
from photostore.errors import BlobNotFound

MIN_PART_BYTES = 5 * 1024 * 1024
PARTS_FOLDER = ".multipart"


@dataclass(frozen=True, slots=True)
class UploadedPart:
    number: int  # from 1
    etag: str
    size: int


class MultipartStore(Protocol):
    async def begin(self, bucket: str, key: str) -> str: ...

    async def put_part(self, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> str: ...

    async def complete(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[UploadedPart]
    ) -> None: ...

    async def abort(self, bucket: str, key: str, upload_id: str) -> None: ...

    async def assemble(self, bucket: str, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> bytes:
        """The bytes of the completed upload: ``complete`` (a repeat is harmless) and read back,
        or, where the parts are objects here, the parts read and joined (no whole object written)."""

    async def close(self) -> None: ...


def _tag(data: bytes) -> str:
    # Tells a part from one written over it (our own writes, not an attacker's): xxh3 at memory speed.
    return xxhash.xxh3_128_hexdigest(data)


class ObjectParts:
    """Parts as objects ``.multipart/<upload id>/<number>`` of the same bucket; completion reads them
    back, checks each against its tag (an xxh3 hash), and puts the whole object."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    @staticmethod
    def _part_key(upload_id: str, number: int) -> str:
        return f"{PARTS_FOLDER}/{upload_id}/{number:05d}"

    async def begin(self, bucket: str, key: str) -> str:
        return secrets.token_hex(16)

    async def put_part(self, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> str:
        await self._blobs.put(bucket, self._part_key(upload_id, number), data)
        return _tag(data)

    async def _joined(self, bucket: str, upload_id: str, parts: Sequence[UploadedPart]) -> bytes:
        chunks = []
        for part in parts:
            data = await self._blobs.get(bucket, self._part_key(upload_id, part.number))
            if _tag(data) != part.etag:
                raise BlobNotFound(f"part {part.number} of multipart upload {upload_id} was replaced")
            chunks.append(data)
        return b"".join(chunks)

    async def complete(self, bucket: str, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> None:
        await self._blobs.put(bucket, key, await self._joined(bucket, upload_id, parts))
        await self.abort(bucket, key, upload_id)

    async def assemble(self, bucket: str, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> bytes:
        return await self._joined(bucket, upload_id, parts)

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        keys = [info.key async for info in self._blobs.list(bucket, f"{PARTS_FOLDER}/{upload_id}/")]
        for part_key in keys:
            await self._blobs.delete(bucket, part_key)

    async def close(self) -> None:
        return None
