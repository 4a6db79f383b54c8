"""The versioned map from users to metadata shards.

A user's placement key (32 uniform random bits, carried in every id of the user, see ``photostore.ids``)
is looked up on a :class:`~photostore.placement.ring.Ring` of shard numbers. The key is not hashed
again: it is already uniform, and keeping it raw means a partition is a contiguous range of keys, which
is what a rebalancer copies (:meth:`ShardMap.moved_key_ranges`).

A ``ShardMap`` is immutable. Every change returns a map whose version is one higher, so a stored map
can refuse to be overwritten by an older one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from photostore.ids import placement_key_of
from photostore.placement.ring import Ring

KIND = "shard_map"


class KeyRangeMove(NamedTuple):
    """Users whose placement key is in ``[lo, hi)`` move from shard ``source`` to shard ``target``."""

    lo: int
    hi: int
    source: int
    target: int


def _check_shard_id(shard_id: int) -> int:
    if isinstance(shard_id, bool) or not isinstance(shard_id, int) or shard_id < 0:
        raise ValueError(f"shard ids are integers >= 0, got {shard_id!r}")
    return shard_id


class ShardMap:
    """Shards (ints) on a ring, with a version that grows by one at every change."""

    __slots__ = ("_ring", "_version")

    def __init__(self, ring: Ring[int], version: int = 1) -> None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"a shard map version is an integer >= 1, got {version!r}")
        for shard_id in ring.nodes():
            _check_shard_id(shard_id)
        self._ring = ring
        self._version = version

    @classmethod
    def create(cls, shards: int, *, partition_power: int = 16, seed: int = 0) -> ShardMap:
        """Version 1: shards ``0 .. shards-1`` of equal weight."""
        if shards < 1:
            raise ValueError(f"at least one shard is required, got {shards}")
        return cls(Ring.build(range(shards), partition_power=partition_power, seed=seed))

    @property
    def version(self) -> int:
        return self._version

    @property
    def ring(self) -> Ring[int]:
        return self._ring

    @property
    def shard_ids(self) -> tuple[int, ...]:
        """Every shard, ascending (a shard of weight 0 is listed but owns no users)."""
        return self._ring.nodes()

    @property
    def next_shard_id(self) -> int:
        """The id the spec's ``AddShard`` would give the next shard: one past the highest."""
        return self._ring.nodes()[-1] + 1

    def shard_for_key(self, placement_key: int) -> int:
        """The shard of a 32-bit placement key: O(1), no hashing."""
        return self._ring.node_for_key(placement_key)

    def shard_for_id(self, any_id: uuid.UUID) -> int:
        """The shard of a user id or of any id it made (photo ids carry the owner's placement key)."""
        return self._ring.node_for_key(placement_key_of(any_id))

    def share(self, shard_id: int) -> float:
        """The fraction of the key space, so the expected fraction of users, on ``shard_id``."""
        return self._ring.share(shard_id)

    def with_shard_added(self, shard_id: int, weight: float = 1.0) -> ShardMap:
        """Version + 1 with a new shard; only users that move to the new shard move (~1/(N+1))."""
        return ShardMap(self._ring.add_node(_check_shard_id(shard_id), weight), self._version + 1)

    def with_shard_removed(self, shard_id: int) -> ShardMap:
        """Version + 1 without ``shard_id``; only its users move, spread over the others."""
        return ShardMap(self._ring.remove_node(shard_id), self._version + 1)

    def with_shard_weight(self, shard_id: int, weight: float) -> ShardMap:
        """Version + 1 with ``shard_id`` reweighted (0 drains it)."""
        return ShardMap(self._ring.set_weight(shard_id, weight), self._version + 1)

    def blended(self, target: ShardMap, key_ranges: Iterable[tuple[int, int]]) -> ShardMap:
        """Version + 1 with the keys of each [lo, hi) already routed as ``target`` routes them."""
        shift = 32 - self._ring.partition_power
        partitions = [p for lo, hi in key_ranges for p in range(lo >> shift, hi >> shift)]
        return ShardMap(self._ring.blend(target._ring, partitions), self._version + 1)

    def routes_like(self, other: ShardMap) -> bool:
        """True when every key goes to the same shard on both maps."""
        return not self._ring.moved_partitions(other._ring)

    def moved_keys_fraction(self, other: ShardMap) -> float:
        """The fraction of the placement-key space whose shard differs between the two maps."""
        return len(self._ring.moved_partitions(other._ring)) / self._ring.partition_count

    def moved_key_ranges(self, other: ShardMap) -> list[KeyRangeMove]:
        """What changes from this map to ``other``: ascending key ranges, adjacent ones merged."""
        moves: list[KeyRangeMove] = []
        for p in self._ring.moved_partitions(other._ring):
            lo, hi = self._ring.key_range(p)
            source, target = self._ring.node_for_partition(p), other._ring.node_for_partition(p)
            last = moves[-1] if moves else None
            if last is not None and last.hi == lo and (last.source, last.target) == (source, target):
                moves[-1] = last._replace(hi=hi)
            else:
                moves.append(KeyRangeMove(lo, hi, source, target))
        return moves

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ShardMap):
            return NotImplemented
        return (self._version, self._ring) == (other._version, other._ring)

    def __hash__(self) -> int:
        return hash((self._version, self._ring))

    def __repr__(self) -> str:
        return f"ShardMap(version={self._version}, shards={list(self.shard_ids)})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; ``ShardMap.from_dict(m.to_dict()) == m``."""
        return {"kind": KIND, "version": self._version, "ring": self._ring.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardMap:
        """Rebuild from :meth:`to_dict` output; ValueError if it is not a shard map."""
        if data.get("kind") != KIND:
            raise ValueError(f"not a shard map: kind {data.get('kind')!r}")
        ring = Ring.from_dict(data.get("ring", {}))
        if any(not isinstance(n, int) for n in ring.nodes()):
            raise ValueError("a shard map's nodes must be integers")
        return cls(ring, data.get("version", 0))
