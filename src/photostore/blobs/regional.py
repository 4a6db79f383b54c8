"""Reads from a region's own copy of the buckets, writes to the buckets' home endpoints.

A secondary region may keep a replica of the object buckets near it: S3 Cross-Region Replication,
or a SeaweedFS cluster fed by ``weed filer.sync``. Its processes then read objects there and fall
back to the bucket's home endpoint for an object the replica does not have yet (replication is
asynchronous, so a fresh upload is read from home) or when the replica cannot be reached. Writes,
deletes and listings always go home: the home endpoints are the truth, the replica only a copy.

A replica that cannot be opened at start does not stop the service: reads go home, and opening
is tried again every ``RETRY_AFTER_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from photostore.blobs.port import BlobInfo, BlobStore
from photostore.blobs.s3 import S3BlobStore
from photostore.errors import BackendUnavailable, BlobNotFound, ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_AFTER_S = 30.0
# What sends a read home: the object is not replicated yet, the replica is down, or it lacks the bucket.
_FALL_BACK = (BlobNotFound, BackendUnavailable, ConfigError)


@dataclass
class RegionalReadStats:
    from_region: int = 0  # reads the region's replica answered
    from_home: int = 0  # reads that went to the bucket's home endpoint


class RegionalReads:
    """A BlobStore: ``home`` for everything, ``replica`` tried first for reads."""

    def __init__(self, home: BlobStore, replica: S3BlobStore, replica_name: str) -> None:
        self._home = home
        self._replica = replica
        self._replica_name = replica_name
        self._replica_open = False
        self._retry_at = 0.0
        self._opening = asyncio.Lock()
        self.stats = RegionalReadStats()

    @property
    def home(self) -> BlobStore:
        """The store every write goes to (uploads stage their parts there)."""
        return self._home

    async def start(self) -> None:
        await self._home.start()
        await self._open_replica()

    async def _open_replica(self) -> None:
        async with self._opening:
            if self._replica_open or time.monotonic() < self._retry_at:
                return
            try:
                await self._replica.start()
            except (BackendUnavailable, ConfigError) as exc:
                self._retry_at = time.monotonic() + RETRY_AFTER_S
                log.warning(
                    "the region's object replica %s cannot be opened (%s): reading from home, "
                    "trying again in %.0f s",
                    self._replica_name,
                    exc.detail,
                    RETRY_AFTER_S,
                )
                return
            self._replica_open = True

    async def close(self) -> None:
        await self._replica.close()
        await self._home.close()

    def buckets(self) -> list[str]:
        return self._home.buckets()

    async def add_bucket(self, name: str) -> None:
        await self._home.add_bucket(name)
        if self._replica_open:
            try:
                await self._replica.add_bucket(name)
            except _FALL_BACK as exc:  # not replicated there (yet): its reads go home
                log.warning("bucket %s is not on the region's replica %s: %s", name, self._replica_name, exc)

    async def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> None:
        await self._home.put(bucket, key, data, content_type)

    async def delete(self, bucket: str, key: str) -> None:
        await self._home.delete(bucket, key)

    def list(self, bucket: str, prefix: str = "") -> AsyncIterator[BlobInfo]:
        return self._home.list(bucket, prefix)

    async def _replica_ready(self) -> bool:
        if not self._replica_open and time.monotonic() >= self._retry_at:
            await self._open_replica()
        return self._replica_open

    async def _read(self, read: Callable[[BlobStore], Awaitable[T]]) -> T:
        """``read`` from the replica when it has the object, else from home."""
        if await self._replica_ready():
            try:
                value = await read(self._replica)
            except _FALL_BACK:
                pass
            else:
                self.stats.from_region += 1
                return value
        self.stats.from_home += 1
        return await read(self._home)

    async def get(self, bucket: str, key: str) -> bytes:
        return await self._read(lambda store: store.get(bucket, key))

    async def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        return await self._read(lambda store: store.get_range(bucket, key, start, end))

    async def head(self, bucket: str, key: str) -> BlobInfo:
        return await self._read(lambda store: store.head(bucket, key))
