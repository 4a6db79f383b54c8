"""``photostore gc``: delete objects no live photo's row names, once they are older than a grace period.

Orphans come from crashes: an upload killed between putting the original and committing its row,
a worker killed between putting a variant and recording it, a photo.deleted handler that never
ran. The grace period (``integrity.gc_grace``, a day) keeps what is merely in flight: an upload
or a variant whose row is about to commit, a bucket move's copy before its switch (a mover
switches right after copying, and after a crash it settles old copies itself, never switching to
one). Every object is checked against rows read on the primary after it was listed, so a row
committed meanwhile is seen. Keys that are not photostore object keys are left alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from photostore.blobs.paths import parse_object_key
from photostore.blobs.port import BlobInfo, BlobStore
from photostore.domain import Photo, Variant
from photostore.metadata.port import MetadataStore
from photostore.rebalance.bucket_verify import objects_of

Report = Callable[[str, int], None]  # (bucket, objects listed so far in it)


@dataclass
class GcReport:
    listed: int = 0
    orphans: int = 0  # not named by any live row and older than the grace period
    orphan_bytes: int = 0
    deleted: int = 0
    young: int = 0  # not named, but within the grace period: kept
    foreign: int = 0  # keys photostore never writes: kept
    by_bucket: dict[str, int] = field(default_factory=dict)  # orphans per bucket
    examples: list[str] = field(default_factory=list)  # the first orphans, as bucket/key

    def to_dict(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "orphans": self.orphans,
            "orphan_bytes": self.orphan_bytes,
            "deleted": self.deleted,
            "young": self.young,
            "foreign": self.foreign,
            "by_bucket": self.by_bucket,
            "examples": self.examples,
        }


async def _named(metadata: MetadataStore, photo_id: uuid.UUID) -> set[tuple[str, str]]:
    found: tuple[Photo, list[Variant]] | None = await metadata.photo_and_variants(photo_id)
    if found is None or found[0].deleted_at is not None:
        return set()
    return {(o.bucket, o.key) for o in objects_of(*found)}


async def collect(
    metadata: MetadataStore,
    blobs: BlobStore,
    buckets: Iterable[str],
    *,
    now: datetime,
    grace: timedelta,
    dry_run: bool,
    progress: Report | None = None,
    examples: int = 20,
) -> GcReport:
    """Delete (unless ``dry_run``) every orphan of ``buckets`` older than ``grace`` at ``now``."""
    report = GcReport()
    for bucket in buckets:
        listed_here = 0
        async for info in blobs.list(bucket):
            report.listed += 1
            listed_here += 1
            if progress is not None and listed_here % 500 == 0:
                progress(bucket, listed_here)
            await _consider(metadata, blobs, bucket, info, now - grace, dry_run, report, examples)
        if progress is not None:
            progress(bucket, listed_here)
    return report


async def _consider(
    metadata: MetadataStore,
    blobs: BlobStore,
    bucket: str,
    info: BlobInfo,
    cutoff: datetime,
    dry_run: bool,
    report: GcReport,
    examples: int,
) -> None:
    parsed = parse_object_key(info.key)
    if parsed is None:
        report.foreign += 1
        return
    if (bucket, info.key) in await _named(metadata, parsed[0]):
        return
    if info.last_modified is None or info.last_modified >= cutoff:
        report.young += 1
        return
    report.orphans += 1
    report.orphan_bytes += info.size
    report.by_bucket[bucket] = report.by_bucket.get(bucket, 0) + 1
    if len(report.examples) < examples:
        report.examples.append(f"{bucket}/{info.key}")
    if not dry_run:
        await blobs.delete(bucket, info.key)
        report.deleted += 1
