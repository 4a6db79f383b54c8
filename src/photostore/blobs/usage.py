"""How much a bucket holds, by listing it (``photostore buckets list`` and the dashboard)."""

from __future__ import annotations

from photostore.blobs.port import BlobStore


async def bucket_usage(blobs: BlobStore, bucket: str) -> tuple[int, int]:
    """(objects, bytes) held by ``bucket`` now."""
    objects = size = 0
    async for info in blobs.list(bucket):
        objects += 1
        size += info.size
    return objects, size
