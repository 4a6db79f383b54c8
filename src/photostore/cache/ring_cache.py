"""The spec's CacheCluster: independent Redis servers on photostore's ring, each key on several of them.

Placement
    Nodes are placed on a :class:`~photostore.placement.ring.Ring`; a key's nodes are
    ``ring.nodes_for(key, replication)``: its primary first, then its replicas.
``set``
    Writes to all of the key's nodes concurrently; it succeeds when at least one write succeeds (the
    spec's rule). When none does it is a counted no-op (``set_failures``), as the Cache port requires.
``get``
    Reads the key's nodes in order and returns the first verdict: a node that errors, times out or is
    marked down is passed over for the next one; a clean miss returns None at once. Why not fall
    through on a miss too: every write and delete goes to all of a key's nodes, so a healthy node's miss
    is authoritative, and reading on would (1) add a round trip per replica to every genuine miss, the
    common case of a cache-aside read, and (2) resurrect values: a replica that was down during a
    ``delete`` still holds the deleted value. The cost: after a node restarts empty, the keys it is
    primary for miss until they are written again, although their replicas still hold copies.
``delete``
    Deletes on all of the key's nodes concurrently.
Health
    Each node is a :class:`RedisCache` with its own circuit breaker: after consecutive failures the node
    is marked down and skipped, without a network call, until a cooldown has passed; then one probe
    decides whether it is back. A cache failure never fails a call (see the Cache port).
Staleness
    A node that misses a ``set`` or ``delete`` (down, or the write failed) keeps its previous value until
    its TTL ends; it is read again once it is healthy and first in a key's order.

``stats()``: ring-level hits, misses, errors (calls with no node reachable), set_failures, nodes_down,
then each node's own stats as ``node[<name>].<stat>``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Unpack

from photostore.cache.redis_cache import BackendUnavailable, RedisCache, RedisCacheOptions
from photostore.placement.ring import Ring


class ReplicatedRingCache:
    """The Cache port over independent Redis nodes on a ring, each key on ``replication`` nodes."""

    def __init__(self, nodes: Mapping[str, RedisCache], *, replication: int = 2) -> None:
        """``nodes`` maps a stable node id (its URL) to its cache; the ring is built from the ids."""
        if not nodes:
            raise ValueError("a ring cache needs at least one node")
        if replication < 1:
            raise ValueError("replication must be >= 1")
        self._nodes = dict(nodes)
        self._ring: Ring[str] = Ring.build(list(self._nodes))
        self._replication = min(replication, len(self._nodes))
        self._hits = 0
        self._misses = 0
        self._errors = 0
        self._set_failures = 0

    @classmethod
    def from_urls(
        cls,
        urls: Sequence[str],
        *,
        replication: int,
        socket_timeout_s: float,
        key_prefix: str,
        **options: Unpack[RedisCacheOptions],
    ) -> ReplicatedRingCache:
        """One :meth:`RedisCache.single` per URL, each with ``options``."""
        if len(set(urls)) != len(urls):
            raise ValueError("ring node URLs must be unique")
        nodes = {
            url: RedisCache.single(url, socket_timeout_s=socket_timeout_s, key_prefix=key_prefix, **options)
            for url in urls
        }
        return cls(nodes, replication=replication)

    def nodes_for(self, key: str) -> list[str]:
        """The ids of the nodes holding ``key``: primary first, then its replicas."""
        return self._ring.nodes_for(key, self._replication)

    # --- the Cache port -----------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        for node_id in self.nodes_for(key):
            try:
                value = await self._nodes[node_id].lookup(key)
            except BackendUnavailable:
                continue  # down or failing: the next copy answers
            if value is None:
                self._misses += 1
            else:
                self._hits += 1
            return value
        self._errors += 1
        self._misses += 1
        return None

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        nodes = [self._nodes[node_id] for node_id in self.nodes_for(key)]
        written = await asyncio.gather(*(node.store(key, value, ttl_s) for node in nodes))
        if not any(written):
            self._set_failures += 1

    async def delete(self, key: str) -> None:
        nodes = [self._nodes[node_id] for node_id in self.nodes_for(key)]
        await asyncio.gather(*(node.remove(key) for node in nodes))

    async def close(self) -> None:
        await asyncio.gather(*(node.close() for node in self._nodes.values()))

    def stats(self) -> dict[str, float]:
        stats: dict[str, float] = {
            "hits": self._hits,
            "misses": self._misses,
            "errors": self._errors,
            "set_failures": self._set_failures,
            "nodes_down": sum(not node.available for node in self._nodes.values()),
        }
        for node_id, node in self._nodes.items():
            stats.update({f"node[{node_id}].{name}": value for name, value in node.stats().items()})
        return stats
