"""What the workers do with each event. Every handler is idempotent: a redelivery changes nothing.

photo-upload          (group ``dispatch``)    uploaded -> queue processing; deleted -> remove objects
photo-processing      (group ``processing``)  EXIF, taken_at, camera, GPS -> queue thumbnails
thumbnail-generation  (group ``thumbnails``)  one decode -> every variant + placeholder -> ready

Effects, the processed-event marker and the next stage's event commit in one shard transaction
(``apply_photo_update``), so a crash between steps repeats work but never loses or doubles it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from photostore.blobs.paths import variant_key
from photostore.blobs.port import BlobStore
from photostore.cache.tiered import TieredCache
from photostore.domain import ApplyResult, Photo, PhotoChanges, PhotoStatus, Variant
from photostore.events.port import Record
from photostore.imaging.derive import make_derivatives
from photostore.imaging.exif import read_exif
from photostore.metadata.port import MetadataStore
from photostore.pipeline import cache_keys
from photostore.pipeline.messages import (
    MAKE_THUMBNAILS,
    PHOTO_DELETED,
    PHOTO_UPLOADED,
    PROCESS_PHOTO,
    TOPIC_PROCESSING,
    TOPIC_THUMBNAILS,
    decode,
    photo_event,
)
from photostore.pipeline.notify import Notifier
from photostore.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class HandlerStats:
    processed: int = 0
    derivatives: int = 0
    objects_removed: int = 0
    by_result: dict[str, int] = field(default_factory=dict)

    def count(self, result: ApplyResult) -> None:
        self.by_result[result.value] = self.by_result.get(result.value, 0) + 1


class PipelineHandlers:
    def __init__(
        self,
        settings: Settings,
        metadata: MetadataStore,
        blobs: BlobStore,
        cache: TieredCache,
        notifier: Notifier,
    ) -> None:
        self._settings = settings
        self._metadata = metadata
        self._blobs = blobs
        self._cache = cache
        self._notifier = notifier
        self.stats = HandlerStats()

    async def dispatch(self, record: Record) -> None:
        message = decode(record.value)
        if message.type == PHOTO_DELETED:
            await self.remove_objects(message.photo_id)
            return
        if message.type != PHOTO_UPLOADED:
            log.warning("dispatch ignores unknown event type %r", message.type)
            return
        job = photo_event(TOPIC_PROCESSING, PROCESS_PHOTO, message.photo_id, message.owner_id)
        result = await self._metadata.apply_photo_update(
            "dispatch", message.event_id, message.photo_id, PhotoChanges(), [], [job]
        )
        await self._after(result, message.photo_id)

    async def process(self, record: Record) -> None:
        message = decode(record.value)
        photo = await self._live_photo(message.photo_id)
        if photo is None:
            return
        data = await self._blobs.get(photo.bucket, photo.storage_path)
        summary = await asyncio.to_thread(read_exif, data)
        changes = PhotoChanges(exif=summary.data, taken_at=summary.taken_at)
        job = photo_event(TOPIC_THUMBNAILS, MAKE_THUMBNAILS, photo.id, photo.owner_id)
        result = await self._metadata.apply_photo_update(
            "processing", message.event_id, photo.id, changes, [], [job]
        )
        self.stats.processed += result is ApplyResult.APPLIED
        await self._after(result, photo.id)

    async def thumbnails(self, record: Record) -> None:
        message = decode(record.value)
        photo = await self._live_photo(message.photo_id)
        if photo is None or photo.status is PhotoStatus.READY:
            return
        data = await self._blobs.get(photo.bucket, photo.storage_path)
        specs = self._settings.imaging.variants
        made = await asyncio.to_thread(make_derivatives, data, specs, self._settings.limits)
        now = datetime.now(UTC)
        variants: list[Variant] = []
        for derived in made.variants:
            key = variant_key(photo.id, derived.name, derived.format)
            await self._blobs.put(photo.bucket, key, derived.data, derived.content_type)
            variants.append(
                Variant(
                    photo_id=photo.id,
                    name=derived.name,
                    bucket=photo.bucket,
                    storage_path=key,
                    format=derived.format,
                    content_type=derived.content_type,
                    width=derived.width,
                    height=derived.height,
                    bytes=len(derived.data),
                    sha256=hashlib.sha256(derived.data).hexdigest(),
                    created_at=now,
                )
            )
        changes = PhotoChanges(placeholder=made.placeholder, status=PhotoStatus.READY)
        result = await self._metadata.apply_photo_update(
            "thumbnails", message.event_id, photo.id, changes, variants, []
        )
        if result is ApplyResult.PHOTO_GONE:
            # Deleted while we worked: the delete's cleanup could not see these objects yet.
            for variant in variants:
                await self._blobs.delete(variant.bucket, variant.storage_path)
        elif result is ApplyResult.APPLIED:
            self.stats.derivatives += len(variants)
        await self._after(result, photo.id)

    async def remove_objects(self, photo_id: uuid.UUID) -> None:
        """Delete a deleted photo's original and variants (idempotent)."""
        photo = await self._metadata.get_photo_any_state(photo_id)
        if photo is None or photo.deleted_at is None:
            return
        targets = [(photo.bucket, photo.storage_path)]
        targets += [(v.bucket, v.storage_path) for v in await self._metadata.list_variants(photo_id)]
        for bucket, key in targets:
            await self._blobs.delete(bucket, key)
            await self._cache.delete(cache_keys.blob(bucket, key))
            self.stats.objects_removed += 1
        await self._cache.delete(cache_keys.photo_view(photo_id))

    async def _live_photo(self, photo_id: uuid.UUID) -> Photo | None:
        photo = await self._metadata.get_photo_any_state(photo_id)
        if photo is None or photo.deleted_at is not None:
            return None
        return photo

    async def _after(self, result: ApplyResult, photo_id: uuid.UUID) -> None:
        self.stats.count(result)
        if result is ApplyResult.APPLIED:
            await self._cache.delete(cache_keys.photo_view(photo_id))
            self._notifier.notify()
