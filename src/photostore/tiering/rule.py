"""Which tier each original belongs in: idle ones cold, read ones hot; variants always hot."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from photostore.domain import Photo
from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.destinations import Destination


def last_touched(photo: Photo) -> datetime:
    """The original's last read, or its upload when never read since."""
    if photo.last_accessed_at is None:
        return photo.created_at
    return max(photo.created_at, photo.last_accessed_at)


class TierDestinations:
    """Originals last touched before ``idle_before`` go to ``cold_bucket``; a cold original touched
    since goes back to the bucket map's bucket for its photo. Hot originals stay where they are
    (placing them is a rebalance's work), and variants are never moved."""

    def __init__(self, bucket_map: BucketMap, cold_bucket: str, idle_before: datetime) -> None:
        self.bucket_map = bucket_map
        self.cold_bucket = cold_bucket
        self.idle_before = idle_before

    def destination(self, photo: Photo) -> Destination | None:
        idle = last_touched(photo) < self.idle_before
        if idle:
            return Destination(self.cold_bucket, original=True, variants=False)
        if photo.bucket == self.cold_bucket:
            return Destination(self.bucket_map.bucket_for(photo.id), original=True, variants=False)
        return None

    def buckets(self) -> Iterable[str]:
        return (*self.bucket_map.buckets, self.cold_bucket)
