"""The upload path: hash, dedup, validate by header, put durably, commit row + outbox, answer."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass, replace

from photostore.blobs.paths import original_key
from photostore.blobs.port import BlobStore
from photostore.domain import Photo, PhotoStatus
from photostore.errors import IdempotencyKeyReused
from photostore.ids import created_at_of, new_photo_id
from photostore.imaging.validate import ImageInfo, probe
from photostore.metadata.port import MetadataStore
from photostore.pipeline.messages import PHOTO_UPLOADED, TOPIC_UPLOAD, photo_event
from photostore.pipeline.notify import Notifier
from photostore.placement.bucket_map import BucketMap
from photostore.settings import LimitSettings

log = logging.getLogger(__name__)

_UNSAFE_FILENAME = re.compile(r"[^\w .()+,=@-]+")


@dataclass(frozen=True, slots=True)
class UploadResult:
    photo: Photo
    created: bool  # answer 201 (a new photo, or the replay of one), else 200
    inserted: bool = False  # this call wrote the row


def clean_filename(name: str | None, fallback: str) -> str:
    if not name:
        return fallback
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_FILENAME.sub("_", base).strip(" .")[:255]
    return cleaned or fallback


def _hash_and_probe(data: bytes, limits: LimitSettings) -> tuple[str, ImageInfo]:
    return hashlib.sha256(data).hexdigest(), probe(data, limits)


class UploadService:
    def __init__(
        self,
        metadata: MetadataStore,
        blobs: BlobStore,
        bucket_map: BucketMap,
        limits: LimitSettings,
        notifier: Notifier,
    ) -> None:
        self._metadata = metadata
        self._blobs = blobs
        self._bucket_map = bucket_map
        self._limits = limits
        self._notifier = notifier

    def set_bucket_map(self, bucket_map: BucketMap) -> None:
        self._bucket_map = bucket_map

    async def upload(
        self,
        owner_id: uuid.UUID,
        data: bytes,
        filename: str | None = None,
        idempotency_key: str | None = None,
    ) -> UploadResult:
        """Store ``data`` for ``owner_id``; raises a 4xx error for bad input, leaving nothing behind.

        Returns the existing photo (created=False) when the owner already has these bytes. A retry
        with the Idempotency-Key of an earlier upload of the same bytes replays its answer
        (created=True); the same key with other bytes raises IdempotencyKeyReused.
        """
        # Off the event loop, in one hop: both read every byte (hashlib releases the GIL).
        sha256, info = await asyncio.to_thread(_hash_and_probe, data, self._limits)
        photo = replace(
            self._new_photo(owner_id, data, sha256, filename, info), idempotency_key=idempotency_key
        )
        # The lookup for an earlier copy runs while the bytes go to disk, off the critical path;
        # when it finds one, the fresh copy is dropped again.
        earlier, put_outcome = await asyncio.gather(
            self._earlier(owner_id, sha256, idempotency_key),
            self._blobs.put(photo.bucket, photo.storage_path, data, info.content_type),
            return_exceptions=True,
        )
        if isinstance(earlier, BaseException) or earlier is not None:
            if not isinstance(put_outcome, BaseException):
                await self._discard(photo)
            if isinstance(earlier, BaseException):
                raise earlier
            return earlier
        if isinstance(put_outcome, BaseException):
            raise put_outcome
        event = photo_event(TOPIC_UPLOAD, PHOTO_UPLOADED, photo.id, owner_id)
        try:
            stored, created = await self._metadata.insert_photo(photo, [event])
        except BaseException:
            await self._discard(photo)
            raise
        if not created:
            # A concurrent upload of the same bytes won the race: keep its photo, drop our copy.
            await self._discard(photo)
            return UploadResult(stored, created=False)
        self._notifier.notify()
        return UploadResult(stored, created=True, inserted=True)

    async def _earlier(
        self, owner_id: uuid.UUID, sha256: str, idempotency_key: str | None
    ) -> UploadResult | None:
        """The answer an earlier upload already settled: its replay, or the owner's copy of these
        bytes; None when this upload is new."""
        if idempotency_key is not None:
            keyed = await self._metadata.get_photo_by_idempotency_key(owner_id, idempotency_key)
            if keyed is not None:
                if keyed.sha256 != sha256:
                    raise IdempotencyKeyReused()
                return UploadResult(keyed, created=True)
        existing = await self._metadata.get_photo_by_sha256(owner_id, sha256)
        return None if existing is None else UploadResult(existing, created=False)

    def _new_photo(
        self, owner_id: uuid.UUID, data: bytes, sha256: str, filename: str | None, info: ImageInfo
    ) -> Photo:
        photo_id = new_photo_id(owner_id)
        now = created_at_of(photo_id)
        return Photo(
            id=photo_id,
            owner_id=owner_id,
            filename=clean_filename(filename, f"{photo_id}"),
            bucket=self._bucket_map.bucket_for(photo_id),
            storage_path=original_key(photo_id),
            sha256=sha256,
            bytes=len(data),
            format=info.format,
            content_type=info.content_type,
            width=info.width,  # as displayed: the EXIF orientation is applied
            height=info.height,
            status=PhotoStatus.PROCESSING,
            created_at=now,
            updated_at=now,
        )

    async def _discard(self, photo: Photo) -> None:
        # Best effort: if this fails too, `photostore gc` collects the orphan after its grace period.
        try:
            await self._blobs.delete(photo.bucket, photo.storage_path)
        except Exception:
            log.warning("could not remove orphan object %s/%s", photo.bucket, photo.storage_path)
