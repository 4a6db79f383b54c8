"""The quarantine: where a corrupt object goes, so it is never served again, with a report beside it.

Isolating an object copies its bytes to the quarantine bucket under ``<bucket>/<key>``, writes
``<bucket>/<key>.json`` (what was expected, what was found, when, by whom), then deletes it where
its row names it. Every later read of it finds nothing there. The steps are ordered so a crash
leaves the object in place or in both places, never nowhere: the next detection repeats them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import orjson

from photostore.blobs.lazy_bucket import LazyBucket
from photostore.blobs.port import BlobStore
from photostore.errors import BlobNotFound
from photostore.settings import Settings

log = logging.getLogger(__name__)
REPORT_SUFFIX = ".json"


def quarantine_bucket(settings: Settings) -> str:
    return settings.integrity.quarantine_bucket or f"{settings.placement.bucket_prefix}quarantine"


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    photo_id: str
    object: str  # "original" or the variant's name
    bucket: str  # where the row names it
    key: str
    expected_sha256: str
    found_sha256: str
    size: int
    detected_at: str  # ISO 8601, UTC
    detected_by: str  # "read" or "audit"


class Quarantine:
    def __init__(self, blobs: BlobStore, bucket: str) -> None:
        self._blobs = blobs
        self.bucket = bucket
        self._lazy = LazyBucket(blobs, bucket)  # opened on first use, not at start

    @staticmethod
    def _place(bucket: str, key: str) -> str:
        return f"{bucket}/{key}"

    async def isolate(
        self,
        photo_id: uuid.UUID,
        name: str,
        bucket: str,
        key: str,
        data: bytes,
        expected_sha256: str,
        found_sha256: str,
        detected_by: str,
    ) -> QuarantineRecord:
        """Move the corrupt ``data`` of ``bucket/key`` here and report it (see the module)."""
        record = QuarantineRecord(
            str(photo_id),
            name,
            bucket,
            key,
            expected_sha256,
            found_sha256,
            len(data),
            datetime.now(UTC).isoformat(),
            detected_by,
        )
        place = self._place(bucket, key)
        await self._lazy.open()
        await self._blobs.put(self.bucket, place, data, "application/octet-stream")
        await self._blobs.put(
            self.bucket, place + REPORT_SUFFIX, orjson.dumps(asdict(record)), "application/json"
        )
        await self._blobs.delete(bucket, key)
        log.error(
            "quarantined %s/%s (photo %s, %s): SHA-256 %s, expected %s (%s)",
            bucket,
            key,
            photo_id,
            name,
            found_sha256,
            expected_sha256,
            detected_by,
        )
        return record

    async def holds(self, bucket: str, key: str) -> bool:
        """Whether ``bucket/key`` was quarantined (its report is here)."""
        await self._lazy.open()
        try:
            await self._blobs.head(self.bucket, self._place(bucket, key) + REPORT_SUFFIX)
        except BlobNotFound:
            return False
        return True

    async def records(self) -> AsyncIterator[QuarantineRecord]:
        """Every report, in listing order."""
        await self._lazy.open()
        async for info in self._blobs.list(self.bucket):
            if info.key.endswith(REPORT_SUFFIX):
                try:
                    raw = await self._blobs.get(self.bucket, info.key)
                except BlobNotFound:
                    continue
                yield QuarantineRecord(**orjson.loads(raw))
