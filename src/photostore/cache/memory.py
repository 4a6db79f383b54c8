"""The embedded cache: an in-process LRU with a TTL per entry, bounded by bytes.

Guarantees:
- An entry past its TTL is never returned (it is dropped when found).
- The total size of the stored entries (value bytes + key length) never exceeds ``max_bytes``; to make
  room the least recently used entries are evicted first.
- A value larger than ``max_item_bytes`` (or than ``max_bytes``) is not stored, and a ``set`` of such a
  value drops the key's previous value, so a reader never sees a value older than the last ``set``.
- ``get_now``/``set_now``/``delete_now`` are plain synchronous calls for the API's hot read path; the
  async methods of the port wrap them and never yield to the event loop.

Not thread-safe: use one instance from one event loop thread (the API's case).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple


class _Entry(NamedTuple):
    value: bytes
    expires_at: float  # on the cache's clock (monotonic seconds)
    size: int


class MemoryCache:
    """In-process LRU cache of bytes with a TTL per entry."""

    def __init__(
        self,
        max_bytes: int,
        default_ttl_s: float,
        max_item_bytes: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes < 0 or max_item_bytes < 0:
            raise ValueError("max_bytes and max_item_bytes must be >= 0")
        if default_ttl_s <= 0:
            raise ValueError("default_ttl_s must be > 0")
        self._max_bytes = max_bytes
        self._max_item_bytes = min(max_item_bytes, max_bytes)
        self._default_ttl_s = default_ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expirations = 0
        self._skipped = 0

    # --- synchronous hot path -------------------------------------------------------------------

    def get_now(self, key: str) -> bytes | None:
        """The value of ``key``, or ``None`` when it is missing or expired."""
        entry = self._entries.get(key)
        if entry is None:
            self._misses += 1
            return None
        if entry.expires_at <= self._clock():
            self._remove(key, entry)
            self._expirations += 1
            self._misses += 1
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return entry.value

    def set_now(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store ``value`` for ``ttl_s`` seconds (the default TTL when ``None``)."""
        ttl = self._default_ttl_s if ttl_s is None else ttl_s
        size = len(value) + len(key)
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        if size > self._max_item_bytes or ttl <= 0:
            # Dropping the old value keeps "a reader never sees a value older than the last set".
            self._skipped += 1
            return
        self._entries[key] = _Entry(bytes(value), self._clock() + ttl, size)
        self._bytes += size
        while self._bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size
            self._evictions += 1

    def delete_now(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            self._remove(key, entry)

    def _remove(self, key: str, entry: _Entry) -> None:
        del self._entries[key]
        self._bytes -= entry.size

    # --- the Cache port -------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self.set_now(key, value, ttl_s)

    async def delete(self, key: str) -> None:
        self.delete_now(key)

    async def close(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        self._entries.clear()
        self._bytes = 0

    def stats(self) -> dict[str, float]:
        """hits, misses, entries, bytes, evictions (for room), expirations, skipped (too large)."""
        return {
            "hits": self._hits,
            "misses": self._misses,
            "entries": len(self._entries),
            "bytes": self._bytes,
            "max_bytes": self._max_bytes,
            "evictions": self._evictions,
            "expirations": self._expirations,
            "skipped": self._skipped,
        }
