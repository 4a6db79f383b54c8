"""The Cache contract: every backend must pass these (in-process LRU now; Redis next).

A backend is opened with known limits (``LIMITS``) so the eviction and size tests can rely on them.
TTLs here are tens of milliseconds: expiry is checked with short sleeps, never long ones.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from photostore.cache.memory import MemoryCache
from photostore.cache.port import Cache

MAX_BYTES = 64 * 1024
MAX_ITEM_BYTES = 16 * 1024
DEFAULT_TTL_S = 30.0


@pytest.fixture(params=["memory"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    assert request.param == "memory"
    opened = MemoryCache(max_bytes=MAX_BYTES, default_ttl_s=DEFAULT_TTL_S, max_item_bytes=MAX_ITEM_BYTES)
    yield opened
    await opened.close()


def _key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_get_set_delete(cache: Cache) -> None:
    key = _key()
    assert await cache.get(key) is None
    await cache.set(key, b"value")
    assert await cache.get(key) == b"value"
    await cache.set(key, b"other")
    assert await cache.get(key) == b"other"
    await cache.delete(key)
    assert await cache.get(key) is None
    await cache.delete(key)  # deleting a missing key is fine


async def test_an_entry_expires_after_its_ttl(cache: Cache) -> None:
    short, long = _key(), _key()
    await cache.set(short, b"short", ttl_s=0.05)
    await cache.set(long, b"long", ttl_s=5)
    assert await cache.get(short) == b"short"
    await asyncio.sleep(0.12)
    assert await cache.get(short) is None
    assert await cache.get(long) == b"long"


async def test_a_new_set_restarts_the_ttl(cache: Cache) -> None:
    key = _key()
    await cache.set(key, b"v1", ttl_s=0.05)
    await cache.set(key, b"v2", ttl_s=5)
    await asyncio.sleep(0.12)
    assert await cache.get(key) == b"v2"


async def test_least_recently_used_entries_are_evicted_by_bytes(cache: Cache) -> None:
    value = b"x" * (MAX_ITEM_BYTES // 2)
    keys = [_key() for _ in range(20)]
    fit = MAX_BYTES // (len(value) + len(keys[0]))  # an entry's size is its value plus its key
    for key in keys[:fit]:
        await cache.set(key, value)
    assert await cache.get(keys[0]) == value  # keys[0] is now the most recently used
    await cache.set(keys[fit], value)  # no room: one entry must go
    held = [key for key in keys[: fit + 1] if await cache.get(key) is not None]
    assert held == [keys[0], *keys[2 : fit + 1]]  # keys[1], the least recently used, went
    for key in keys[fit + 1 :]:
        await cache.set(key, value)
    assert sum([await cache.get(key) is not None for key in keys]) == fit


async def test_a_value_over_the_item_limit_is_not_stored(cache: Cache) -> None:
    key = _key()
    await cache.set(key, b"small")
    await cache.set(key, b"x" * (MAX_ITEM_BYTES + 1))
    assert await cache.get(key) is None  # not the big value, and not the stale small one either


async def test_stats_count_hits_and_misses(cache: Cache) -> None:
    before = cache.stats()
    key = _key()
    await cache.get(key)
    await cache.set(key, b"v")
    await cache.get(key)
    await cache.get(key)
    after = cache.stats()
    assert after["hits"] - before["hits"] == 2
    assert after["misses"] - before["misses"] == 1
