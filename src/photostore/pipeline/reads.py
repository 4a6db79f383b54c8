"""The read path: cache first, then the owner's shard, then the bucket.

A photo's view is cached as one entry holding its JSON and where its bytes live, so a cached
variant GET costs two cache lookups and no database or disk access. Views of photos still being
processed are cached briefly, since a worker in another process may finish them at any moment.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from photostore.blobs.port import BlobStore
from photostore.cache.tiered import TieredCache
from photostore.domain import Photo, PhotoStatus, Variant
from photostore.errors import BlobNotFound, PhotoNotFound
from photostore.integrity.reads import ReadVerifier
from photostore.metadata.port import MetadataStore
from photostore.pipeline import cache_keys
from photostore.pipeline.memo import Memo
from photostore.pipeline.views import photo_json

# A view is dropped at once by the process that deletes or changes its photo; other processes
# (several HTTP workers) see the change when their copy expires, so views live briefly.
READY_TTL_S = 10.0
# Derivative bytes never change under their key; they are reachable only through a live view.
BLOB_TTL_S = 300.0
DECODED_MEMO_SIZE = 4096
PROCESSING_TTL_S = 1.0
ORIGINAL = "original"


@dataclass(frozen=True, slots=True)
class BlobRef:
    bucket: str
    key: str
    content_type: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class PhotoView:
    owner_hex: str
    status: str
    json: dict[str, Any]
    blobs: dict[str, BlobRef]  # "original" and each made variant
    has_location: bool = False  # the original's EXIF holds GPS (whatever the JSON shows)


def _encode(view: PhotoView) -> bytes:
    blobs = {name: [b.bucket, b.key, b.content_type, b.sha256, b.size] for name, b in view.blobs.items()}
    return orjson.dumps(
        {"o": view.owner_hex, "s": view.status, "j": view.json, "b": blobs, "g": view.has_location}
    )


def _decode(raw: bytes) -> PhotoView:
    data = orjson.loads(raw)
    blobs = {name: BlobRef(b[0], b[1], b[2], b[3], b[4]) for name, b in data["b"].items()}
    return PhotoView(data["o"], data["s"], data["j"], blobs, bool(data.get("g", False)))


class PhotoReader:
    def __init__(
        self,
        metadata: MetadataStore,
        blobs: BlobStore,
        cache: TieredCache,
        include_location: bool,
        verifier: ReadVerifier | None = None,
    ) -> None:
        self._metadata = metadata
        self._blobs = blobs
        self._verifier = verifier
        self._cache = cache
        self._include_location = include_location
        # Decoded views by their cached bytes: a changed view is new bytes, so never stale.
        self._decoded: Memo[bytes, PhotoView] = Memo(DECODED_MEMO_SIZE, READY_TTL_S)

    def _cached_view(self, photo_id_text: str) -> PhotoView | None:
        """The view from this process's cache tier (no await: the hot path uses it)."""
        raw = self._cache.get_now(cache_keys.photo_view_text(photo_id_text))
        return None if raw is None else self._decoded_view(raw)

    async def _shared_view(self, photo_id: uuid.UUID) -> PhotoView | None:
        raw = await self._cache.get(cache_keys.photo_view(photo_id))
        return None if raw is None else self._decoded_view(raw)

    def _decoded_view(self, raw: bytes) -> PhotoView:
        view = self._decoded.get(raw)
        if view is None:
            view = _decode(raw)
            self._decoded.put(raw, view)
        return view

    async def view(self, owner_id: uuid.UUID, photo_id: uuid.UUID) -> PhotoView:
        """The owner's view of a live photo; PhotoNotFound for anyone else, or if deleted."""
        view = self._cached_view(str(photo_id)) or await self._shared_view(photo_id)
        if view is None:
            photo = await self._metadata.get_photo(owner_id, photo_id)
            if photo is None:
                raise PhotoNotFound()
            view = await self._remember(photo, await self._metadata.list_variants(photo_id))
        if view.owner_hex != owner_id.hex:
            raise PhotoNotFound()
        return view

    async def refreshed_view(self, owner_id: uuid.UUID, photo_id: uuid.UUID) -> PhotoView:
        """The view read again from the database: a cached view may name the bucket an object was
        moved out of (a bucket rebalance deletes the source once cached views should be gone)."""
        await self.forget(photo_id)
        return await self.view(owner_id, photo_id)

    async def page_views(self, owner_id: uuid.UUID, page: list[Photo]) -> list[PhotoView]:
        """Views of a page of the owner's photos: cached ones as they are, the rest built with one
        variants query for all of them."""
        views: dict[uuid.UUID, PhotoView] = {}
        for photo in page:
            cached = self._cached_view(str(photo.id)) or await self._shared_view(photo.id)
            if cached is not None:
                views[photo.id] = cached
        missing = [photo for photo in page if photo.id not in views]
        if missing:
            variants = await self._metadata.variants_of(owner_id, [p.id for p in missing])
            for photo in missing:
                views[photo.id] = await self._remember(photo, variants.get(photo.id, []))
        return [views[photo.id] for photo in page]

    async def fresh_view(self, photo: Photo) -> PhotoView:
        """The view of a photo just inserted: no variants yet, so no database read is needed."""
        return await self._remember(photo, [])

    async def _remember(self, photo: Photo, variants: list[Variant]) -> PhotoView:
        view = self._view_of(photo, variants)
        ttl = READY_TTL_S if view.status == PhotoStatus.READY.value else PROCESSING_TTL_S
        raw = _encode(view)
        await self._cache.set(cache_keys.photo_view(photo.id), raw, ttl)
        self._decoded.put(raw, view)
        return view

    def cached_derivative(
        self, photo_id_text: str, name: str, owner_hex: str
    ) -> tuple[BlobRef, bytes] | None:
        """A derivative's reference and bytes when both are cached and ``owner_hex`` owns the
        photo; None in every other case (the caller then takes the full path)."""
        view = self._cached_view(photo_id_text)
        if view is None or view.owner_hex != owner_hex or name == ORIGINAL:
            return None
        ref = view.blobs.get(name)
        if ref is None:
            return None
        data = self._cache.get_now(cache_keys.blob(ref.bucket, ref.key))
        return None if data is None else (ref, data)

    def _view_of(self, photo: Photo, variants: list[Variant]) -> PhotoView:
        blobs = {
            ORIGINAL: BlobRef(photo.bucket, photo.storage_path, photo.content_type, photo.sha256, photo.bytes)
        }
        for v in variants:
            blobs[v.name] = BlobRef(v.bucket, v.storage_path, v.content_type, v.sha256, v.bytes)
        json = photo_json(photo, variants, include_location=self._include_location)
        located = bool(photo.exif and photo.exif.get("gps"))
        return PhotoView(photo.owner_id.hex, photo.status.value, json, blobs, located)

    async def read_bytes(self, ref: BlobRef, *, cacheable: bool) -> bytes:
        """The whole object, from the cache when it is a small immutable derivative."""
        key = cache_keys.blob(ref.bucket, ref.key)
        if cacheable:
            cached = await self._cache.get(key)
            if cached is not None:
                return cached
        try:
            data = await self._blobs.get(ref.bucket, ref.key)
        except BlobNotFound:
            await self._quarantined(ref)
            raise
        if self._verifier is not None:
            await self._verifier.check(ref.bucket, ref.key, data, ref.sha256)
        if cacheable:
            await self._cache.set(key, data, BLOB_TTL_S)
        return data

    async def read_range(self, ref: BlobRef, start: int, end: int) -> bytes:
        try:
            return await self._blobs.get_range(ref.bucket, ref.key, start, end)
        except BlobNotFound:
            await self._quarantined(ref)
            raise

    @property
    def verifier(self) -> ReadVerifier | None:
        return self._verifier

    async def _quarantined(self, ref: BlobRef) -> None:
        """ObjectCorrupt when a missing object was taken by the quarantine (never served again)."""
        if self._verifier is not None:
            await self._verifier.raise_if_quarantined(ref.bucket, ref.key)

    async def forget(self, photo_id: uuid.UUID) -> None:
        await self._cache.delete(cache_keys.photo_view(photo_id))
