"""``photostore audit``: read every live object, check its size and SHA-256 against its row, and
quarantine what fails; report what is corrupt (now or before), missing or misplaced."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from photostore.blobs.checksum import sha256_hex
from photostore.blobs.port import BlobStore
from photostore.errors import BlobNotFound
from photostore.integrity.quarantine import Quarantine, QuarantineRecord
from photostore.metadata.port import MetadataStore
from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.bucket_results import Progress
from photostore.rebalance.bucket_verify import ObjectProblem, ProblemKind, objects_of, verify_objects

_DAMAGED = (ProblemKind.SHA256, ProblemKind.SIZE)


@dataclass(frozen=True, slots=True)
class AuditReport:
    photos: int
    objects: int
    bytes_read: int
    quarantined_now: tuple[QuarantineRecord, ...]  # corrupt objects this audit found and isolated
    quarantined_before: tuple[ObjectProblem, ...]  # rows naming an object the quarantine took earlier
    missing: tuple[ObjectProblem, ...]  # rows naming an object that is nowhere
    misplaced: tuple[ObjectProblem, ...]  # in another bucket than the map's (a rebalance's work)

    @property
    def whole(self) -> bool:
        """Every live object is there with its bytes (misplaced ones are whole, just elsewhere)."""
        return not (self.quarantined_now or self.quarantined_before or self.missing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "whole": self.whole,
            "photos": self.photos,
            "objects": self.objects,
            "bytes_read": self.bytes_read,
            "quarantined_now": [asdict(record) for record in self.quarantined_now],
            "quarantined_before": [problem.to_dict() for problem in self.quarantined_before],
            "missing": [problem.to_dict() for problem in self.missing],
            "misplaced": [problem.to_dict() for problem in self.misplaced],
        }


async def audit(
    metadata: MetadataStore,
    blobs: BlobStore,
    quarantine: Quarantine,
    bucket_map: BucketMap,
    *,
    pinned: Collection[str] = (),
    progress: Progress | None = None,
) -> AuditReport:
    """Scrub every live photo's objects (reads every byte); see the module."""
    scan = await verify_objects(metadata, blobs, bucket_map, checksums=True, progress=progress, pinned=pinned)
    isolated: list[QuarantineRecord] = []
    before: list[ObjectProblem] = []
    missing: list[ObjectProblem] = []
    for problem in scan.problems:
        if problem.kind in _DAMAGED:
            record = await _isolate_if_still_damaged(metadata, blobs, quarantine, problem)
            if record is not None:
                isolated.append(record)
        elif problem.kind is ProblemKind.MISSING:
            (before if await quarantine.holds(problem.bucket, problem.key) else missing).append(problem)
        elif problem.kind is ProblemKind.UNKNOWN_BUCKET:
            missing.append(problem)
    misplaced = tuple(p for p in scan.problems if p.kind is ProblemKind.MISPLACED)
    return AuditReport(
        scan.photos, scan.objects, scan.bytes_read, tuple(isolated), tuple(before), tuple(missing), misplaced
    )


async def _isolate_if_still_damaged(
    metadata: MetadataStore, blobs: BlobStore, quarantine: Quarantine, problem: ObjectProblem
) -> QuarantineRecord | None:
    """Read the row and the bytes again (a move or a delete may have changed them since the scan)
    and quarantine the object only if the row still names it and its bytes still differ."""
    found = await metadata.photo_and_variants(problem.photo_id)
    if found is None or found[0].deleted_at is not None:
        return None
    named = {o.name: o for o in objects_of(*found)}.get(problem.object)
    if named is None or (named.bucket, named.key) != (problem.bucket, problem.key):
        return None
    try:
        data = await blobs.get(named.bucket, named.key)
    except BlobNotFound:
        return None
    digest = await sha256_hex(data)
    if digest == named.sha256 and len(data) == named.size:
        return None
    return await quarantine.isolate(
        problem.photo_id,
        named.name,
        named.bucket,
        named.key,
        data,
        named.sha256,
        digest,
        "audit",
    )
