"""The records of bucket moves: the mover's counters, each photo's outcome, a run's result, the dry
run's plan, and the progress tracking they are counted with."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Progress = Callable[[int, int], None]
"""Called with (done, total) as work advances; for a progress bar."""


@dataclass(slots=True)
class MoveCounters:
    """Totals since the mover was made; monotonic, so they export as Prometheus counters."""

    objects_moved: int = 0
    bytes_moved: int = 0
    sources_deleted: int = 0
    copies_discarded: int = 0  # copies (made or begun) deleted: their switch did not happen
    checksum_failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "objects_moved": self.objects_moved,
            "bytes_moved": self.bytes_moved,
            "sources_deleted": self.sources_deleted,
            "copies_discarded": self.copies_discarded,
            "checksum_failures": self.checksum_failures,
        }


class MoveOutcome(enum.StrEnum):
    MOVED = "moved"
    IN_PLACE = "in_place"  # every object already where the target map says
    PROCESSING = "processing"  # skipped: its variants are still being made
    BUSY = "busy"  # skipped: the source delete of its last move is still owed
    GONE = "gone"  # deleted meanwhile: copies removed, nothing to move
    CHANGED = "changed"  # its rows changed meanwhile: copies removed, to try again
    FAILED = "failed"  # a source missing or a checksum mismatch: see the failures


RETRYABLE = frozenset({MoveOutcome.PROCESSING, MoveOutcome.BUSY, MoveOutcome.CHANGED})


@dataclass(frozen=True, slots=True)
class MoveFailure:
    photo_id: uuid.UUID
    object: str  # "original" or a variant name
    bucket: str
    key: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {
            "photo_id": str(self.photo_id),
            "object": self.object,
            "bucket": self.bucket,
            "key": self.key,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class MoveResult:
    objects_moved: int
    bytes_moved: int
    left_behind: dict[uuid.UUID, MoveOutcome]  # photos still not moved after the last pass, and why
    failures: tuple[MoveFailure, ...]

    @property
    def complete(self) -> bool:
        """Every object of every live photo is where the target map says (as far as this run saw)."""
        return not self.left_behind and not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "objects_moved": self.objects_moved,
            "bytes_moved": self.bytes_moved,
            "left_behind": {str(pid): why.value for pid, why in self.left_behind.items()},
            "failures": [failure.to_dict() for failure in self.failures],
        }


@dataclass(frozen=True, slots=True)
class BucketPair:
    source: str
    target: str
    objects: int
    bytes: int


@dataclass(frozen=True, slots=True)
class MovePlan:
    """What a run would move, from the rows now: the dry run."""

    target_version: int
    photos: int  # live photos
    objects: int  # their originals and variants
    bytes: int
    pairs: tuple[BucketPair, ...]  # source -> target, by source then target
    ideal_share: float | None  # the hash-space share whose bucket changes (1/(N+1) for an added bucket)

    @property
    def objects_to_move(self) -> int:
        return sum(pair.objects for pair in self.pairs)

    @property
    def bytes_to_move(self) -> int:
        return sum(pair.bytes for pair in self.pairs)

    @property
    def moved_share(self) -> float:
        """The share of objects that move; compare with ``ideal_share``."""
        return self.objects_to_move / self.objects if self.objects else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_version": self.target_version,
            "photos": self.photos,
            "objects": self.objects,
            "bytes": self.bytes,
            "objects_to_move": self.objects_to_move,
            "bytes_to_move": self.bytes_to_move,
            "moved_share": self.moved_share,
            "ideal_share": self.ideal_share,
            "pairs": [
                {"source": p.source, "target": p.target, "objects": p.objects, "bytes": p.bytes}
                for p in self.pairs
            ],
        }


class Tracker:
    def __init__(self, progress: Progress | None, total: int) -> None:
        self._progress = progress
        self.total = total
        self.done = 0

    def advance(self, objects: int) -> None:
        self.done += objects
        if self._progress is not None:
            self._progress(self.done, max(self.total, self.done))
