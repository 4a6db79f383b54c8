"""The Cache port.

Guarantees: get/set/delete with a TTL per entry; an expired entry is never returned; a cache may
drop any entry at any time (it holds only copies), and its failures never fail a request: adapters
swallow backend errors after counting them and behave as a miss.
"""

from __future__ import annotations

from typing import Protocol


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...

    def stats(self) -> dict[str, float]:
        """hits, misses, entries, bytes (as available)."""
