"""A bucket opened on first use (created where it lives if missing), not at start."""

from __future__ import annotations

import asyncio

from photostore.blobs.port import BlobStore


class LazyBucket:
    """``await open()`` before each use: a set lookup once open, one ``add_bucket`` the first time."""

    def __init__(self, blobs: BlobStore, name: str) -> None:
        self.blobs = blobs
        self.name = name
        self._opening = asyncio.Lock()

    async def open(self) -> None:
        if self.name in self.blobs.buckets():
            return
        async with self._opening:
            if self.name not in self.blobs.buckets():
                await self.blobs.add_bucket(self.name)
