"""The versioned map from photos to object buckets (the spec's ObjectStorageRouter).

A photo's bucket is chosen by hashing all 16 bytes of its id with xxh3. The placement-key bits alone
would not do: every photo of one user carries the same placement key, so a user's whole library would
land in one bucket. Hashing the whole id spreads each user's photos over every bucket.

The bucket is chosen once, at upload, and recorded with the photo; changing the map affects where new
photos go, and tells a rebalancer which existing objects a new map would place elsewhere.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from photostore.placement.ring import Ring

KIND = "bucket_map"
# S3's rules for bucket names: 3-63 characters of a-z 0-9 . -, starting and ending with a letter or digit.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _BUCKET_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid bucket name (3-63 of a-z 0-9 . -, alphanumeric ends)")
    return name


class BucketMap:
    """Buckets (names) on a ring, with a version that grows by one at every change."""

    __slots__ = ("_ring", "_version")

    def __init__(self, ring: Ring[str], version: int = 1) -> None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"a bucket map version is an integer >= 1, got {version!r}")
        for name in ring.nodes():
            _check_name(name)
        self._ring = ring
        self._version = version

    @classmethod
    def create(
        cls, buckets: int, *, prefix: str = "photos-", partition_power: int = 16, seed: int = 0
    ) -> BucketMap:
        """Version 1: buckets ``<prefix>0 .. <prefix><buckets-1>`` of equal weight."""
        if buckets < 1:
            raise ValueError(f"at least one bucket is required, got {buckets}")
        names = [f"{prefix}{i}" for i in range(buckets)]
        return cls(Ring.build(names, partition_power=partition_power, seed=seed))

    @property
    def version(self) -> int:
        return self._version

    @property
    def ring(self) -> Ring[str]:
        return self._ring

    @property
    def buckets(self) -> tuple[str, ...]:
        """Every bucket name, sorted as strings (so ``photos-10`` precedes ``photos-2``)."""
        return self._ring.nodes()

    def bucket_for(self, photo_id: uuid.UUID) -> str:
        """The bucket of a photo: xxh3 of the id's 16 bytes on the ring, O(1)."""
        return self._ring.node_for(photo_id.bytes)

    def share(self, bucket: str) -> float:
        """The fraction of the hash space, so the expected fraction of photos, in ``bucket``."""
        return self._ring.share(bucket)

    def with_bucket_added(self, bucket: str, weight: float = 1.0) -> BucketMap:
        """Version + 1 with a new bucket; only photos that would go to it move (~1/(N+1))."""
        return BucketMap(self._ring.add_node(_check_name(bucket), weight), self._version + 1)

    def with_bucket_removed(self, bucket: str) -> BucketMap:
        """Version + 1 without ``bucket``; only its photos would move."""
        return BucketMap(self._ring.remove_node(bucket), self._version + 1)

    def with_bucket_weight(self, bucket: str, weight: float) -> BucketMap:
        """Version + 1 with ``bucket`` reweighted (0 stops new photos going there)."""
        return BucketMap(self._ring.set_weight(bucket, weight), self._version + 1)

    def moved_keys_fraction(self, other: BucketMap) -> float:
        """The fraction of the hash space whose bucket differs between the two maps."""
        return len(self._ring.moved_partitions(other._ring)) / self._ring.partition_count

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BucketMap):
            return NotImplemented
        return (self._version, self._ring) == (other._version, other._ring)

    def __hash__(self) -> int:
        return hash((self._version, self._ring))

    def __repr__(self) -> str:
        return f"BucketMap(version={self._version}, buckets={list(self.buckets)})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; ``BucketMap.from_dict(m.to_dict()) == m``."""
        return {"kind": KIND, "version": self._version, "ring": self._ring.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BucketMap:
        """Rebuild from :meth:`to_dict` output; ValueError if it is not a bucket map."""
        if data.get("kind") != KIND:
            raise ValueError(f"not a bucket map: kind {data.get('kind')!r}")
        ring = Ring.from_dict(data.get("ring", {}))
        if any(not isinstance(n, str) for n in ring.nodes()):
            raise ValueError("a bucket map's nodes must be strings")
        return cls(ring, data.get("version", 0))
