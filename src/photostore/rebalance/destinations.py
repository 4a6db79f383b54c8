"""Where a photo's objects belong: the rule a bucket move follows.

A bucket rebalance puts every object where the bucket map says, except originals in a pinned (cold
tier) bucket: those stay where tiering put them while their variants move. The tiering job
(photostore.tiering) has its own rule and moves originals only. The mover asks a rule for each
photo's ``Destination`` and moves the objects it names that are elsewhere.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from photostore.domain import Photo, Variant
from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.bucket_verify import PhotoObject, objects_of


@dataclass(frozen=True, slots=True)
class Destination:
    bucket: str
    original: bool  # the original belongs in ``bucket``
    variants: bool  # the variants belong in ``bucket``


class DestinationRule(Protocol):
    def destination(self, photo: Photo) -> Destination | None:
        """Where the photo's objects belong; None: wherever they are."""

    def buckets(self) -> Iterable[str]:
        """Every bucket a destination may name (opened before a run)."""


def objects_to_move(
    photo: Photo, variants: Sequence[Variant], destination: Destination | None
) -> list[PhotoObject]:
    """The objects ``destination`` names that are not in its bucket yet."""
    if destination is None:
        return []
    named = objects_of(photo, variants if destination.variants else ())
    if not destination.original:
        named = named[1:]
    return [o for o in named if o.bucket != destination.bucket]


class MapDestinations:
    """The bucket map's bucket for every object, originals in ``pinned`` buckets left where they are."""

    def __init__(self, bucket_map: BucketMap, pinned: Collection[str] = ()) -> None:
        self.bucket_map = bucket_map
        self.pinned = frozenset(pinned)

    def destination(self, photo: Photo) -> Destination:
        return Destination(self.bucket_map.bucket_for(photo.id), photo.bucket not in self.pinned, True)

    def buckets(self) -> Iterable[str]:
        return self.bucket_map.buckets
