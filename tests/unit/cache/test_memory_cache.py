"""What only the in-process cache promises: exact byte accounting, stats, and a clock it can be driven by."""

from __future__ import annotations

import pytest

from photostore.cache.memory import MemoryCache


class Clock:
    """A clock the test moves by hand: TTLs are checked without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cache(max_bytes: int = 100, ttl: float = 10.0, max_item: int = 50) -> tuple[MemoryCache, Clock]:
    clock = Clock()
    return MemoryCache(max_bytes=max_bytes, default_ttl_s=ttl, max_item_bytes=max_item, clock=clock), clock


def test_entries_expire_exactly_at_their_ttl() -> None:
    cache, clock = _cache(ttl=10)
    cache.set_now("a", b"1")
    cache.set_now("b", b"2", ttl_s=2)
    clock.now += 1.999
    assert cache.get_now("b") == b"2"
    clock.now += 0.001
    assert cache.get_now("b") is None
    clock.now += 7.999
    assert cache.get_now("a") == b"1"
    clock.now += 0.001
    assert cache.get_now("a") is None
    stats = cache.stats()
    assert (stats["expirations"], stats["entries"], stats["bytes"]) == (2, 0, 0)


def test_size_counts_value_and_key() -> None:
    cache, _ = _cache()
    cache.set_now("key", b"12345")
    assert cache.stats()["bytes"] == 8
    cache.set_now("key", b"1")  # replacing frees the old size
    assert cache.stats()["bytes"] == 4
    cache.delete_now("key")
    assert cache.stats()["bytes"] == 0


def test_eviction_keeps_the_total_under_max_bytes_and_counts() -> None:
    cache, _ = _cache(max_bytes=100, max_item=50)
    for i in range(10):
        cache.set_now(f"k{i}", b"x" * 38)  # 40 bytes each: two fit
        assert cache.stats()["bytes"] <= 100
    assert cache.get_now("k9") is not None
    assert cache.get_now("k8") is not None
    assert cache.get_now("k7") is None
    assert cache.stats()["evictions"] == 8


def test_a_read_protects_an_entry_from_eviction() -> None:
    cache, _ = _cache(max_bytes=100, max_item=50)
    cache.set_now("a", b"x" * 39)
    cache.set_now("b", b"x" * 39)
    cache.get_now("a")
    cache.set_now("c", b"x" * 39)
    assert cache.get_now("a") is not None
    assert cache.get_now("b") is None


def test_oversized_and_zero_ttl_values_are_skipped() -> None:
    cache, _ = _cache(max_bytes=100, max_item=50)
    cache.set_now("k", b"x" * 49)  # 50 bytes with the key: at the limit, stored
    assert cache.get_now("k") is not None
    cache.set_now("k", b"x" * 50)  # 51 bytes: skipped, and the old value is dropped
    assert cache.get_now("k") is None
    cache.set_now("t", b"v", ttl_s=0)
    assert cache.get_now("t") is None
    assert cache.stats()["skipped"] == 2


def test_a_zero_byte_cache_stores_nothing() -> None:
    cache, _ = _cache(max_bytes=0, max_item=50)
    cache.set_now("k", b"v")
    assert cache.get_now("k") is None
    assert cache.stats()["entries"] == 0


async def test_the_async_methods_match_the_sync_ones() -> None:
    cache, _ = _cache()
    await cache.set("k", b"v")
    assert cache.get_now("k") == b"v"
    cache.set_now("j", b"w")
    assert await cache.get("j") == b"w"
    await cache.delete("j")
    assert await cache.get("j") is None
    await cache.close()
    assert cache.stats()["entries"] == 0


@pytest.mark.parametrize(("max_bytes", "ttl", "max_item"), [(-1, 1.0, 1), (1, 0.0, 1), (1, 1.0, -1)])
def test_bad_limits_are_refused(max_bytes: int, ttl: float, max_item: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        MemoryCache(max_bytes=max_bytes, default_ttl_s=ttl, max_item_bytes=max_item)
