"""The two-tier cache: local LRU in front of a shared tier (here a second real MemoryCache)."""

from __future__ import annotations

from photostore.cache.memory import MemoryCache
from photostore.cache.tiered import TieredCache


def memory() -> MemoryCache:
    return MemoryCache(max_bytes=1 << 20, default_ttl_s=60, max_item_bytes=1 << 16)


async def test_without_a_shared_tier_it_is_the_local_lru() -> None:
    cache = TieredCache(memory())
    await cache.set("k", b"v", 30)
    assert cache.get_now("k") == b"v"
    assert await cache.get("k") == b"v"
    await cache.delete("k")
    assert await cache.get("k") is None


async def test_a_local_miss_is_filled_from_the_shared_tier() -> None:
    shared = memory()
    writer, reader = TieredCache(memory(), shared), TieredCache(memory(), shared)
    await writer.set("k", b"v", 30)
    assert reader.get_now("k") is None  # the hot path never waits on the shared tier
    assert await reader.get("k") == b"v"
    assert reader.get_now("k") == b"v"  # now kept locally


async def test_a_delete_reaches_the_shared_tier_and_other_processes_see_it_on_their_next_miss() -> None:
    shared = memory()
    one, two = TieredCache(memory(), shared), TieredCache(memory(), shared)
    await one.set("k", b"v", 30)
    assert await two.get("k") == b"v"
    await one.delete("k")
    assert await shared.get("k") is None
    two.delete_now("k")  # what the local TTL does at the latest
    assert await two.get("k") is None


async def test_local_copies_of_shared_entries_live_at_most_the_local_ttl() -> None:
    now = [0.0]
    local = MemoryCache(max_bytes=1 << 20, default_ttl_s=60, max_item_bytes=1 << 16, clock=lambda: now[0])
    cache = TieredCache(local, memory(), local_ttl_s=5)
    await cache.set("k", b"v", 300)
    now[0] = 6
    assert cache.get_now("k") is None
    assert await cache.get("k") == b"v"  # still shared


async def test_stats_name_both_tiers() -> None:
    cache = TieredCache(memory(), memory())
    await cache.get("missing")
    stats = cache.stats()
    assert stats["misses"] == 1
    assert stats["shared_misses"] == 1
