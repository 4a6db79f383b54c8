"""Resumable uploads on real embedded stores: a failure at any write leaves an upload that resumes
to the right bytes; expiry answers 410 until the sweep removes the upload and its staged bytes."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from photostore.blobs.multipart import ObjectParts
from photostore.blobs.port import BlobStore
from photostore.domain import User
from photostore.errors import BackendUnavailable, UploadExpired, UploadNotFound
from photostore.ids import new_user_id
from photostore.pipeline.notify import Notifier
from photostore.pipeline.resumable import ResumableUploads
from photostore.pipeline.upload import UploadService
from photostore.placement.bucket_map import BucketMap
from photostore.settings import LimitSettings, ResumableSettings
from tests.support.images import jpeg
from tests.support.photo_library import Library, embedded_spec, open_library

MAP = BucketMap.create(1, prefix="tus-")
STAGING = "tus-uploads"
PART = 1024  # far below S3's minimum: the embedded parts take any size, and small parts mean many writes


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class FailingPuts:
    """A BlobStore whose ``fail_at``-th put (counting from 1) fails as an outage would."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.puts = 0
        self.fail_at = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> None:
        self.puts += 1
        if self.puts == self.fail_at:
            raise BackendUnavailable("injected: the disk went away")
        await self.inner.put(bucket, key, data, content_type)


@dataclass
class Env:
    library: Library
    blobs: FailingPuts
    clock: Clock
    service: ResumableUploads


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with open_library(embedded_spec(tmp_path, [*MAP.buckets, STAGING]), MAP) as library:
        blobs = FailingPuts(library.blobs)
        clock = Clock()
        settings = ResumableSettings.model_construct(
            **{**ResumableSettings().model_dump(), "part_bytes": PART}
        )
        uploads = UploadService(library.metadata, library.blobs, MAP, LimitSettings(), Notifier())
        service = ResumableUploads(
            library.metadata, blobs, ObjectParts(blobs), uploads, settings, 1 << 24, STAGING, clock=clock
        )
        yield Env(library, blobs, clock, service)


async def _chunks(data: bytes, size: int = 700) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _owner(env: Env) -> uuid.UUID:
    user = User(id=new_user_id(), name="u", created_at=env.clock())
    await env.library.metadata.create_user(user)
    return user.id


async def test_a_failure_at_any_write_leaves_an_upload_that_resumes_to_the_same_bytes(env: Env) -> None:
    owner = await _owner(env)
    data = jpeg(640, 480, seed=3)
    half = len(data) // 2
    # Count the writes of one clean upload of these bytes in two appends, then fail each in turn.
    probe = await env.service.create(owner, len(data), "", "p.jpg")
    await env.service.append(owner, probe.id, 0, _chunks(data[:half]))
    await env.service.append(owner, probe.id, half, _chunks(data[half:]))
    writes = env.blobs.puts
    assert writes > 6
    for fail_at in range(1, writes + 1):
        await env.library.delete((await env.library.metadata.list_photos(owner, 1))[0])
        upload = await env.service.create(owner, len(data), "", "p.jpg")
        env.blobs.puts, env.blobs.fail_at = 0, fail_at
        offset, photo_id = 0, None
        for _ in range(4):  # the failed append, then resumes from what the row says
            with contextlib.suppress(BackendUnavailable):
                await env.service.append(owner, upload.id, offset, _chunks(data[offset : offset + half]))
            # A HEAD: it also finishes an upload whose bytes are all in but whose completion failed.
            current = await env.service.status(owner, upload.id)
            offset, photo_id = current.offset, current.photo_id
            if photo_id is not None:
                break
        assert env.blobs.puts >= fail_at  # the failure did happen
        assert photo_id is not None, f"the upload failing at write {fail_at} did not finish"
        photo = await env.library.metadata.get_photo(owner, photo_id)
        assert photo is not None
        assert photo.sha256 == hashlib.sha256(data).hexdigest(), f"write {fail_at}"
        assert await env.library.blobs.get(photo.bucket, photo.storage_path) == data
        assert [info async for info in env.library.blobs.list(STAGING, f"{owner}/{upload.id}")] == []


async def test_an_expired_upload_answers_410_until_the_sweep_removes_it_and_its_bytes(env: Env) -> None:
    owner = await _owner(env)
    data = jpeg(400, 300, seed=4)
    upload = await env.service.create(owner, len(data), "filename cC5qcGc=", "p.jpg")
    await env.service.append(owner, upload.id, 0, _chunks(data[: PART + 100]))
    staged = [info.key async for info in env.library.blobs.list(STAGING, "")]
    assert staged  # a part and a tail
    env.clock.now += timedelta(hours=23)
    assert await env.service.sweep() == 0
    assert (await env.service.status(owner, upload.id)).offset == PART + 100
    env.clock.now += timedelta(hours=2)
    with pytest.raises(UploadExpired):
        await env.service.status(owner, upload.id)
    with pytest.raises(UploadExpired):
        await env.service.append(owner, upload.id, PART + 100, _chunks(data[PART + 100 :]))
    assert await env.service.sweep() == 1
    with pytest.raises(UploadNotFound):
        await env.service.status(owner, upload.id)
    assert [info.key async for info in env.library.blobs.list(STAGING, "")] == []


class RecordingParts(ObjectParts):
    """The embedded multipart store, noting which uploads were aborted."""

    def __init__(self, blobs: BlobStore) -> None:
        super().__init__(blobs)
        self.begun: list[str] = []
        self.aborted: list[str] = []

    async def begin(self, bucket: str, key: str) -> str:
        self.begun.append(await super().begin(bucket, key))
        return self.begun[-1]

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        self.aborted.append(upload_id)
        await super().abort(bucket, key, upload_id)


class RowsDown:
    """The metadata store with its shard unreachable for new upload rows."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create_upload(self, upload: Any) -> None:
        raise BackendUnavailable("injected: the shard is down")


async def test_a_multipart_upload_begun_for_a_row_that_was_never_written_is_aborted(env: Env) -> None:
    owner = await _owner(env)
    parts = RecordingParts(env.blobs)
    service = ResumableUploads(
        RowsDown(env.library.metadata),
        env.blobs,
        parts,
        env.service.uploads,
        env.service.settings,
        1 << 24,
        STAGING,
        clock=env.clock,
    )
    with pytest.raises(BackendUnavailable):
        await service.create(owner, 1000, "", "p.jpg")
    assert parts.begun
    assert parts.aborted == parts.begun
