"""Resumable uploads (tus 1.0): bytes appended over many requests, then made a photo like any upload.

Where things are:
- the upload's row (``MetadataStore``, on the owner's shard) says how many bytes are stored for good
  (``offset``), and the staging state: the multipart upload, its parts, and the tail;
- the bytes are in the staging bucket: whole parts of ``part_bytes`` in a multipart upload (S3's own
  in cluster mode), and the bytes past the last whole part in a *tail* object named by where it
  starts, ``<owner>/<upload>/tail-<start>``.

Guarantees:
- The offset a client is told is always covered by stored parts and the tail the row names. Bytes
  are written before the row moves, so a crash at any point leaves the row naming whole, durable
  data; whatever was written past it is rewritten, with the same bytes, by the resumed upload. A new
  tail gets a new name unless it only grows, so the tail the row names is never replaced by other
  bytes.
- One request appends at a time, across processes: an append takes a lease on the row (renewed while
  bytes arrive) and every write of the row checks it. A second append gets 423 until the lease is
  released or runs out; one at the wrong offset gets 409.
- A connection cut at any byte keeps every byte received (without a checksum); a chunk sent with
  ``Upload-Checksum`` is kept only whole and matching (460 otherwise, nothing kept).
- When the last byte arrives the parts become one object, which goes through ``UploadService``
  exactly as a ``POST /v1/photos`` body would (validation, dedup, pipeline), with the upload's id as
  idempotency key, so completing twice (a crash, a retried last request) makes one photo. A
  completed upload answers with its photo until it expires. Bytes that are not an accepted image end
  the upload (its staging is removed) with the same 4xx as ``POST /v1/photos``.
- Uploads not finished ``expire_after`` after creation answer 410, and ``sweep`` removes them with
  their staged bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from photostore.blobs.lazy_bucket import LazyBucket
from photostore.blobs.multipart import MultipartStore, UploadedPart
from photostore.blobs.port import BlobStore
from photostore.domain import JsonDict, ResumableUpload
from photostore.errors import (
    BlobNotFound,
    ChecksumMismatch,
    EmptyBody,
    PayloadTooLarge,
    PhotostoreError,
    UploadExpired,
    UploadLocked,
    UploadNotFound,
    UploadOffsetMismatch,
)
from photostore.ids import new_photo_id
from photostore.metadata.port import MetadataStore
from photostore.pipeline.chunk_checksum import ChunkChecksum
from photostore.pipeline.upload import UploadResult, UploadService
from photostore.settings import ResumableSettings, Settings

log = logging.getLogger(__name__)

SWEEP_BATCH = 200


def staging_bucket(settings: Settings) -> str:
    return settings.resumable.staging_bucket or f"{settings.placement.bucket_prefix}uploads"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Staging:
    """The ``storage`` of an upload's row: where its bytes are."""

    multipart_id: str
    parts: tuple[UploadedPart, ...] = ()
    tail_size: int = 0  # bytes in the tail object, which starts where the parts end

    @property
    def parts_size(self) -> int:
        return sum(part.size for part in self.parts)

    def to_json(self) -> JsonDict:
        return {
            "multipart_id": self.multipart_id,
            "parts": [[p.number, p.etag, p.size] for p in self.parts],
            "tail_size": self.tail_size,
        }

    @staticmethod
    def from_json(data: JsonDict) -> Staging:
        parts = tuple(UploadedPart(int(n), str(etag), int(size)) for n, etag, size in data.get("parts", []))
        return Staging(str(data["multipart_id"]), parts, int(data.get("tail_size", 0)))


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    upload: ResumableUpload
    photo: UploadResult | None = None  # set by the append that completed the upload


def _folder(upload: ResumableUpload) -> str:
    return f"{upload.owner_id}/{upload.id}"


def _object_key(upload: ResumableUpload) -> str:
    return f"{_folder(upload)}/data"


def _tail_key(upload: ResumableUpload, start: int) -> str:
    return f"{_folder(upload)}/tail-{start}"


class _Append:
    """One PATCH: the bytes since the last whole part, flushed as parts fill, under the lease."""

    def __init__(self, owner: ResumableUploads, upload: ResumableUpload, token: str) -> None:
        self.owner = owner
        self.upload = upload  # as the row last recorded it
        self.token = token
        self.staging = Staging.from_json(upload.storage)  # as sent so far
        self.buffer = bytearray()
        self.renew_at = time.monotonic() + owner.settings.lease_s / 3

    @property
    def offset(self) -> int:
        return self.staging.parts_size + len(self.buffer)

    async def flush_parts(self, final: bool) -> bool:
        """Send whole parts (and on ``final`` the rest as the last part); True if any was sent."""
        size = self.owner.settings.part_bytes
        sent = False
        while len(self.buffer) >= size or (final and self.buffer):
            data = bytes(self.buffer[:size])
            number = len(self.staging.parts) + 1
            etag = await self.owner.multipart.put_part(
                self.owner.bucket, _object_key(self.upload), self.staging.multipart_id, number, data
            )
            del self.buffer[: len(data)]
            self.staging = replace(
                self.staging, parts=(*self.staging.parts, UploadedPart(number, etag, len(data)))
            )
            sent = True
        return sent

    async def save(self, offset: int, staging: Staging, keep_lease: bool) -> None:
        until = self.owner.clock() + timedelta(seconds=self.owner.settings.lease_s) if keep_lease else None
        saved = await self.owner.metadata.save_upload(
            self.upload.owner_id, self.upload.id, self.token, offset, staging.to_json(), until
        )
        if not saved:
            raise UploadLocked("the upload was taken over or ended while this request ran; check its offset")
        self.upload = replace(self.upload, offset=offset, storage=staging.to_json(), lease_until=until)
        self.renew_at = time.monotonic() + self.owner.settings.lease_s / 3


class ResumableUploads:
    def __init__(
        self,
        metadata: MetadataStore,
        blobs: BlobStore,
        multipart: MultipartStore,
        uploads: UploadService,
        settings: ResumableSettings,
        max_upload_bytes: int,
        bucket: str,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.metadata = metadata
        self.blobs = blobs
        self.multipart = multipart
        self.uploads = uploads
        self.settings = settings
        self.max_upload_bytes = max_upload_bytes
        self.bucket = bucket
        self.clock = clock
        self._staging = LazyBucket(blobs, bucket)  # opened on first use, not at start

    # --- creation and status -------------------------------------------------------------------

    async def create(
        self, owner_id: uuid.UUID, length: int, metadata: str, filename: str | None
    ) -> ResumableUpload:
        if length == 0:
            raise EmptyBody("an upload of 0 bytes cannot be a photo; Upload-Length must be at least 1")
        if length > self.max_upload_bytes:
            raise PayloadTooLarge(f"Upload-Length is {length}; the limit is {self.max_upload_bytes} bytes")
        await self._staging.open()
        now = self.clock()
        upload = ResumableUpload(
            id=new_photo_id(owner_id),  # the owner's placement key: the row lands on the owner's shard
            owner_id=owner_id,
            length=length,
            offset=0,
            metadata=metadata,
            filename=filename,
            created_at=now,
            expires_at=now + self.settings.expire_after,
        )
        multipart_id = await self.multipart.begin(self.bucket, _object_key(upload))
        upload = replace(upload, storage=Staging(multipart_id).to_json())
        try:
            await self.metadata.create_upload(upload)
        except BaseException:
            # No row names it, so nothing else would end it. (A crash right here leaves a multipart
            # upload with no part: no bytes are kept by it.)
            with contextlib.suppress(PhotostoreError):
                await self.multipart.abort(self.bucket, _object_key(upload), multipart_id)
            raise
        return upload

    async def _live(self, owner_id: uuid.UUID, upload_id: uuid.UUID) -> ResumableUpload:
        upload = await self.metadata.get_upload(owner_id, upload_id)
        if upload is None:
            raise UploadNotFound(f"no upload {upload_id}: it was never created, was terminated, or expired")
        if upload.expires_at <= self.clock():
            raise UploadExpired(f"upload {upload_id} expired at {upload.expires_at.isoformat()}; start anew")
        return upload

    async def status(self, owner_id: uuid.UUID, upload_id: uuid.UUID) -> ResumableUpload:
        """The upload as stored. One whose bytes are all in but is not yet a photo (its completing
        request died) is completed first, so a client told the full offset finds its photo."""
        upload = await self._live(owner_id, upload_id)
        if upload.offset == upload.length and upload.photo_id is None:
            token = await self._lease(upload, upload.offset)
            return (await self._complete(upload, token)).upload
        return upload

    # --- appending -------------------------------------------------------------------------------

    async def _lease(self, upload: ResumableUpload, offset: int) -> str:
        token = secrets.token_hex(16)
        now = self.clock()
        until = now + timedelta(seconds=self.settings.lease_s)
        if await self.metadata.lease_upload(upload.owner_id, upload.id, offset, token, now, until):
            return token
        current = await self._live(upload.owner_id, upload.id)
        if current.offset != offset:
            raise UploadOffsetMismatch(
                f"the upload is at offset {current.offset}, not {offset}; resume from there"
            )
        raise UploadLocked("another request is appending to this upload; retry in a moment")

    async def append(
        self,
        owner_id: uuid.UUID,
        upload_id: uuid.UUID,
        offset: int,
        chunks: AsyncIterator[bytes],
        checksum: ChunkChecksum | None = None,
    ) -> AppendOutcome:
        """Append the body at ``offset``; bytes received before a cut are kept (unless checksummed)."""
        upload = await self._live(owner_id, upload_id)
        if upload.photo_id is not None and offset == upload.length:
            return AppendOutcome(upload)  # a retry of the request that completed it
        if upload.offset != offset:
            raise UploadOffsetMismatch(
                f"the upload is at offset {upload.offset}, not {offset}; resume from there"
            )
        token = await self._lease(upload, offset)
        work = _Append(self, upload, token)
        try:
            work.buffer += await self._read_tail(upload, work.staging)
            await self._receive(work, chunks, checksum)
            if checksum is not None and not checksum.matches():
                raise ChecksumMismatch("the bytes received do not match Upload-Checksum; nothing was kept")
            done = work.offset == upload.length
            await work.flush_parts(final=done)
            await self._store_tail(work, Staging.from_json(upload.storage))
            await work.save(work.offset, work.staging, keep_lease=done)
        except BaseException:
            # Back to what the row last recorded (whole parts kept by the receive loop stay).
            await self._release(upload, token, work.upload.offset, Staging.from_json(work.upload.storage))
            raise
        if done:
            return await self._complete(work.upload, token)
        return AppendOutcome(work.upload)

    async def _receive(
        self,
        work: _Append,
        chunks: AsyncIterator[bytes],
        checksum: ChunkChecksum | None,
    ) -> None:
        length = work.upload.length
        async for chunk in chunks:
            if work.offset + len(chunk) > length:
                raise PayloadTooLarge(
                    f"the body goes past Upload-Length {length}; send {length - work.offset} bytes"
                )
            work.buffer += chunk
            if checksum is not None:
                checksum.update(chunk)
            sent = await work.flush_parts(final=False)
            if checksum is None and sent:
                # Record whole parts as they land: a crash loses at most the bytes since the last one.
                await work.save(work.staging.parts_size, replace(work.staging, tail_size=0), keep_lease=True)
            elif time.monotonic() >= work.renew_at:  # a slow sender keeps its lease
                await work.save(work.upload.offset, Staging.from_json(work.upload.storage), keep_lease=True)

    async def _read_tail(self, upload: ResumableUpload, state: Staging) -> bytes:
        if state.tail_size == 0:
            return b""
        data = await self.blobs.get(self.bucket, _tail_key(upload, state.parts_size))
        return data[: state.tail_size]  # a longer tail: a later append's, not yet recorded

    async def _store_tail(self, work: _Append, before: Staging) -> None:
        if work.buffer:
            await self.blobs.put(
                self.bucket, _tail_key(work.upload, work.staging.parts_size), bytes(work.buffer)
            )
        work.staging = replace(work.staging, tail_size=len(work.buffer))
        if before.tail_size and before.parts_size != work.staging.parts_size:
            await self._forget(_tail_key(work.upload, before.parts_size))

    async def _release(self, upload: ResumableUpload, token: str, offset: int, state: Staging) -> None:
        try:
            await self.metadata.save_upload(upload.owner_id, upload.id, token, offset, state.to_json(), None)
        except PhotostoreError as exc:  # the lease runs out by itself
            log.warning("could not release upload %s: %s", upload.id, exc.detail)

    async def _forget(self, key: str) -> None:
        try:
            await self.blobs.delete(self.bucket, key)
        except PhotostoreError as exc:  # left for the sweep of its upload
            log.warning("could not remove staged object %s: %s", key, exc.detail)

    # --- completion ------------------------------------------------------------------------------

    async def _assemble(self, upload: ResumableUpload) -> bytes:
        state = Staging.from_json(upload.storage)
        data = await self.multipart.assemble(
            self.bucket, _object_key(upload), state.multipart_id, state.parts
        )
        if len(data) != upload.length:
            raise BlobNotFound(f"upload {upload.id}: assembled {len(data)} bytes, expected {upload.length}")
        return data

    async def _complete(self, upload: ResumableUpload, token: str) -> AppendOutcome:
        try:
            data = await self._assemble(upload)
            result = await self.uploads.upload(upload.owner_id, data, upload.filename, f"tus:{upload.id}")
        except PhotostoreError as exc:
            if exc.status < 500:  # not an image we accept: the upload is over
                await self.discard(upload)
            else:
                await self._release(upload, token, upload.offset, Staging.from_json(upload.storage))
            raise
        if not await self.metadata.complete_upload(upload.owner_id, upload.id, token, result.photo.id):
            raise UploadLocked("the upload was taken over while it completed; check its offset")
        await self._remove_staged(upload)
        return AppendOutcome(replace(upload, photo_id=result.photo.id, offset=upload.length), result)

    # --- ending ----------------------------------------------------------------------------------

    async def terminate(self, owner_id: uuid.UUID, upload_id: uuid.UUID) -> None:
        upload = await self.metadata.get_upload(owner_id, upload_id)
        if upload is None:
            raise UploadNotFound(f"no upload {upload_id}")
        await self.discard(upload)

    async def discard(self, upload: ResumableUpload) -> None:
        """Remove everything staged, then the row: a crash between leaves the row, so the sweep
        finishes the job when the upload expires."""
        await self._remove_staged(upload)
        await self.metadata.delete_upload(upload.owner_id, upload.id)

    async def _remove_staged(self, upload: ResumableUpload) -> None:
        state = Staging.from_json(upload.storage)
        await self.multipart.abort(self.bucket, _object_key(upload), state.multipart_id)
        keys = [info.key async for info in self.blobs.list(self.bucket, _folder(upload) + "/")]
        for key in keys:
            await self._forget(key)

    async def sweep(self) -> int:
        """Remove every expired upload with its staged bytes; returns how many went."""
        removed = 0
        await self._staging.open()
        for shard_id in self.metadata.shard_ids():
            while expired := await self.metadata.expired_uploads(shard_id, self.clock(), SWEEP_BATCH):
                for upload in expired:
                    await self.discard(upload)
                    removed += 1
                if len(expired) < SWEEP_BATCH:
                    break
        return removed

    async def run_sweeps(self) -> None:
        """Sweep every ``sweep_interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                removed = await self.sweep()
            except PhotostoreError as exc:
                log.warning("sweep of expired uploads failed: %s", exc.detail)
                continue
            if removed:
                log.info("removed %d expired uploads", removed)
