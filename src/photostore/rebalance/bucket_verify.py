"""Verifying bucket placement: every live photo's objects exist where their rows say, with the rows'
sizes and checksums, in the buckets a map gives the photos. Also the helpers the mover shares: a
photo's objects as its rows name them, their SHA-256, and bounded concurrency."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from photostore.blobs.checksum import sha256_hex
from photostore.blobs.port import BlobStore
from photostore.domain import Photo, Variant
from photostore.errors import BlobNotFound
from photostore.metadata.port import MetadataStore
from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.bucket_results import Progress, Tracker

T = TypeVar("T")
ORIGINAL = "original"


# --- objects of a photo ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhotoObject:
    name: str  # "original" or the variant's name
    bucket: str
    key: str
    sha256: str
    size: int
    content_type: str


def objects_of(photo: Photo, variants: Iterable[Variant]) -> list[PhotoObject]:
    original = PhotoObject(
        ORIGINAL, photo.bucket, photo.storage_path, photo.sha256, photo.bytes, photo.content_type
    )
    return [original] + [
        PhotoObject(v.name, v.bucket, v.storage_path, v.sha256, v.bytes, v.content_type) for v in variants
    ]


sha256_of = sha256_hex  # the name the movers use


async def bounded(limit: int, jobs: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``jobs`` with at most ``limit`` at a time; results in order; the first error cancels the rest."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(job)) for job in jobs]
    return [task.result() for task in tasks]


# --- verification ------------------------------------------------------------------------------------


class ProblemKind(enum.StrEnum):
    MISSING = "missing"  # no object where the row says
    SIZE = "size"  # the object's size differs from the row's
    SHA256 = "sha256"  # its SHA-256 differs from the row's (checksums=True only)
    MISPLACED = "misplaced"  # the row's bucket is not the map's for the photo
    UNKNOWN_BUCKET = "unknown_bucket"  # the row names a bucket the blob store does not have


@dataclass(frozen=True, slots=True)
class ObjectProblem:
    kind: ProblemKind
    photo_id: uuid.UUID
    object: str  # "original" or a variant name
    bucket: str  # the row's
    key: str
    expected: str | int | None = None
    found: str | int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "photo_id": str(self.photo_id),
            "object": self.object,
            "bucket": self.bucket,
            "key": self.key,
            "expected": self.expected,
            "found": self.found,
        }


@dataclass(frozen=True, slots=True)
class VerifyReport:
    photos: int
    objects: int
    bytes_read: int
    checksums: bool
    problems: tuple[ObjectProblem, ...]

    @property
    def clean(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "photos": self.photos,
            "objects": self.objects,
            "bytes_read": self.bytes_read,
            "checksums": self.checksums,
            "problems": [problem.to_dict() for problem in self.problems],
        }


@dataclass
class _VerifyTally:
    photos: int = 0
    objects: int = 0
    bytes_read: int = 0
    problems: list[ObjectProblem] = field(default_factory=list)


async def verify_objects(
    metadata: MetadataStore,
    blobs: BlobStore,
    bucket_map: BucketMap,
    *,
    checksums: bool,
    progress: Progress | None = None,
    concurrency: int = 8,
    page_size: int = 200,
    pinned: Collection[str] = (),
) -> VerifyReport:
    """Check every live photo's and variant's object: it exists in the bucket its row names, with
    the row's size (and SHA-256 when ``checksums``, which reads every byte), and that bucket is the
    map's for the photo, or for an original one of ``pinned`` (the cold tier).
    ``progress(done, total)`` counts photos."""
    total = sum(stats.photos for stats in await metadata.shard_stats())
    tracker = Tracker(progress, total)
    tally = _VerifyTally()

    async def check_photo(photo: Photo, variants: list[Variant]) -> None:
        expected_bucket = bucket_map.bucket_for(photo.id)
        for o in objects_of(photo, variants):
            tally.objects += 1
            if o.bucket != expected_bucket and not (o.name == ORIGINAL and o.bucket in pinned):
                tally.problems.append(_problem(ProblemKind.MISPLACED, photo, o, expected_bucket, o.bucket))
            problem = await _check_object(blobs, photo, o, checksums, tally)
            if problem is not None:
                tally.problems.append(problem)
        tally.photos += 1
        tracker.advance(1)

    for shard_id in metadata.shard_ids():
        after: uuid.UUID | None = None
        while page := await metadata.live_photos_after(shard_id, after, page_size):
            after = page[-1][0].id
            await bounded(concurrency, [partial(check_photo, p, v) for p, v in page])
    problems = sorted(tally.problems, key=lambda p: (str(p.photo_id), p.object, p.kind.value))
    return VerifyReport(tally.photos, tally.objects, tally.bytes_read, checksums, tuple(problems))


def _problem(
    kind: ProblemKind, photo: Photo, o: PhotoObject, expected: str | int | None, found: str | int | None
) -> ObjectProblem:
    return ObjectProblem(kind, photo.id, o.name, o.bucket, o.key, expected, found)


async def _check_object(
    blobs: BlobStore, photo: Photo, o: PhotoObject, checksums: bool, tally: _VerifyTally
) -> ObjectProblem | None:
    if o.bucket not in blobs.buckets():
        return _problem(ProblemKind.UNKNOWN_BUCKET, photo, o, None, o.bucket)
    try:
        if checksums:
            data = await blobs.get(o.bucket, o.key)
            tally.bytes_read += len(data)
            size, digest = len(data), await sha256_of(data)
        else:
            size, digest = (await blobs.head(o.bucket, o.key)).size, None
    except BlobNotFound:
        return _problem(ProblemKind.MISSING, photo, o, None, None)
    if size != o.size:
        return _problem(ProblemKind.SIZE, photo, o, o.size, size)
    if digest is not None and digest != o.sha256:
        return _problem(ProblemKind.SHA256, photo, o, o.sha256, digest)
    return None
