"""Two cache tiers: this process's LRU in front of a shared cache (Redis, Redis Cluster, a ring).

The ``*_now`` methods touch only the local tier: they are the hot read path, with no await and no
network. The async methods go through both: a local miss asks the shared tier and keeps what it
finds locally; a set or delete reaches both. Entries kept locally from the shared tier live at most
``local_ttl_s``, which bounds how long another process's delete takes to be seen here. Without a
shared tier (embedded mode) this is the local LRU alone.

A shared tier's failures never fail a call: its adapters count them and behave as a miss.
"""

from __future__ import annotations

from photostore.cache.memory import MemoryCache
from photostore.cache.port import Cache


class TieredCache:
    def __init__(self, local: MemoryCache, shared: Cache | None = None, local_ttl_s: float = 10.0) -> None:
        self.local = local
        self.shared = shared
        self._local_ttl_s = local_ttl_s

    # --- local tier only: the hot path ---------------------------------------------------------

    def get_now(self, key: str) -> bytes | None:
        return self.local.get_now(key)

    def set_now(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self.local.set_now(key, value, ttl_s)

    def delete_now(self, key: str) -> None:
        self.local.delete_now(key)

    # --- both tiers -----------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        value = self.local.get_now(key)
        if value is not None or self.shared is None:
            return value
        value = await self.shared.get(key)
        if value is not None:
            self.local.set_now(key, value, self._local_ttl_s)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        local_ttl = self._local_ttl_s if ttl_s is None else min(ttl_s, self._local_ttl_s)
        self.local.set_now(key, value, local_ttl if self.shared is not None else ttl_s)
        if self.shared is not None:
            await self.shared.set(key, value, ttl_s)

    async def delete(self, key: str) -> None:
        self.local.delete_now(key)
        if self.shared is not None:
            await self.shared.delete(key)

    async def close(self) -> None:
        await self.local.close()
        if self.shared is not None:
            await self.shared.close()

    def stats(self) -> dict[str, float]:
        stats = dict(self.local.stats())
        if self.shared is not None:
            stats.update({f"shared_{name}": value for name, value in self.shared.stats().items()})
        return stats
