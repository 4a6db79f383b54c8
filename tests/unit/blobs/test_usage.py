"""Bucket usage by listing, on the embedded store."""

from __future__ import annotations

from pathlib import Path

from photostore.blobs.local import LocalBlobStore
from photostore.blobs.usage import bucket_usage


async def test_bucket_usage_counts_objects_and_bytes(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path, ["photos-0", "photos-1"], fsync=False)
    await blobs.start()
    await blobs.put("photos-0", "photos/2026/01/01/a", b"x" * 10)
    await blobs.put("photos-0", "photos/2026/01/02/b", b"y" * 32)
    assert await bucket_usage(blobs, "photos-0") == (2, 42)
    assert await bucket_usage(blobs, "photos-1") == (0, 0)
