"""The Cache contract: every backend passes these (the in-process LRU, one Redis, a Redis Cluster, and
the replicated ring of independent Redis servers), then each Redis engine's outage behaviour.

A backend is opened with known limits (``LIMITS``) so the eviction and size tests can rely on them.
TTLs here are tens of milliseconds: expiry is checked with short sleeps, never long ones (Redis keeps
TTLs in milliseconds with ``SET PX``). The Redis engines are this session's own servers on free ports,
never the system Redis; keys are unique per test, so no flush is needed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable

import pytest

from photostore.cache.memory import MemoryCache
from photostore.cache.port import Cache
from photostore.cache.redis_cache import RedisCache
from photostore.cache.ring_cache import ReplicatedRingCache
from tests.support.engines import redis as engines
from tests.support.engines.redis import RedisClusterEngine, RedisServer

# The session's Redis engines (started on first use, stopped at the end of the session).
redis_single = engines.redis_single
redis_cluster = engines.redis_cluster
redis_ring = engines.redis_ring
redis_server = engines.redis_server  # a fresh server per test, to stop and restart

MAX_BYTES = 64 * 1024
MAX_ITEM_BYTES = 16 * 1024
DEFAULT_TTL_S = 30.0
PREFIX = "ps-test:"
# Generous for the contract (a slow CI machine must not turn hits into misses); the outage tests set
# their own short timeouts.
CONTRACT_TIMEOUT_S = 2.0
LIMITS = {"default_ttl_s": DEFAULT_TTL_S, "max_item_bytes": MAX_ITEM_BYTES}


def _open(kind: str, request: pytest.FixtureRequest) -> Cache:
    if kind == "memory":
        return MemoryCache(max_bytes=MAX_BYTES, default_ttl_s=DEFAULT_TTL_S, max_item_bytes=MAX_ITEM_BYTES)
    options = {"socket_timeout_s": CONTRACT_TIMEOUT_S, "key_prefix": PREFIX, **LIMITS}
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_single")
        return RedisCache.single(server.url, **options)
    if kind == "redis-cluster":
        cluster: RedisClusterEngine = request.getfixturevalue("redis_cluster")
        return RedisCache.cluster(cluster.seeds, **options)
    assert kind == "redis-ring"
    ring: list[RedisServer] = request.getfixturevalue("redis_ring")
    return ReplicatedRingCache.from_urls([s.url for s in ring], replication=2, **options)


@pytest.fixture(params=["memory", "redis", "redis-cluster", "redis-ring"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    opened = _open(request.param, request)
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


async def test_values_are_bytes_kept_exactly(cache: Cache) -> None:
    key = _key()
    value = bytes(range(256)) * 4 + b"\r\n\x00"
    await cache.set(key, value)
    assert await cache.get(key) == value
    await cache.set(key, b"")
    assert await cache.get(key) == b""


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


async def test_a_set_with_no_ttl_uses_the_default(cache: Cache) -> None:
    key = _key()
    await cache.set(key, b"v")
    await asyncio.sleep(0.12)
    assert await cache.get(key) == b"v"


@pytest.mark.parametrize("cache", ["memory"], indirect=True)
async def test_least_recently_used_entries_are_evicted_by_bytes(cache: Cache) -> None:
    """Only the in-process cache bounds its own bytes. Not part of the port: Redis evicts by its server's
    maxmemory policy (an approximate LRU over everything the server holds), and the port only says a
    cache may drop any entry at any time."""
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


async def test_concurrent_calls_all_land(cache: Cache) -> None:
    keys = [_key() for _ in range(200)]
    await asyncio.gather(*(cache.set(key, key.encode()) for key in keys))
    values = await asyncio.gather(*(cache.get(key) for key in keys))
    assert values == [key.encode() for key in keys]


# --- outages: a cache failure never fails a request, and never costs much time ----------------------

CALL_BOUND_S = 1.5  # one call during an outage, whatever the engine's state


async def _timed(call: Awaitable[object]) -> float:
    started = time.monotonic()
    await call
    return time.monotonic() - started


async def test_redis_cluster_serves_again_after_a_primary_fails_over(
    redis_cluster: RedisClusterEngine,
) -> None:
    cache = RedisCache.cluster(redis_cluster.seeds, socket_timeout_s=0.25, key_prefix=PREFIX, cooldown_s=0.5)
    key, elsewhere = _key(), _key()
    while redis_cluster.primary_for(PREFIX + elsewhere) is redis_cluster.primary_for(PREFIX + key):
        elsewhere = _key()
    await cache.set(key, b"before")
    assert await cache.get(key) == b"before"
    primary = redis_cluster.kill_primary_for(PREFIX + key)
    try:
        # Keys of the healthy primaries keep working while the dead one's breaker skips its keys.
        await cache.set(elsewhere, b"healthy")
        assert await cache.get(elsewhere) == b"healthy"
        started, recovered = time.monotonic(), None
        while time.monotonic() - started < 30:
            assert await _timed(cache.set(key, b"after")) < CALL_BOUND_S
            assert await _timed(cache.get(key)) < CALL_BOUND_S
            if await cache.get(key) == b"after":
                recovered = time.monotonic() - started
                break
            await asyncio.sleep(0.1)
        assert recovered is not None, f"no recovery within 30 s: {cache.stats()}"
        assert recovered > 3  # the replica took over: the cache did not just skip the outage
        assert cache.stats()["errors"] > 0
        assert cache.stats()["breakers_open"] == 0
    finally:
        await cache.close()
        redis_cluster.restart_node(primary)  # rejoins as a replica; the cluster is whole for later tests


async def test_the_ring_serves_a_key_while_its_primary_is_down(redis_ring: list[RedisServer]) -> None:
    by_url = {server.url: server for server in redis_ring}
    cache = ReplicatedRingCache.from_urls(
        list(by_url), replication=2, socket_timeout_s=0.25, key_prefix=PREFIX, cooldown_s=0.3
    )
    key = _key()
    primary_url, _ = cache.nodes_for(key)
    await cache.set(key, b"v1")  # on both nodes
    primary = by_url[primary_url]
    primary.kill()
    try:
        for _ in range(20):  # every call: the primary fails or is skipped, the replica answers
            assert await cache.get(key) == b"v1"
        await cache.set(key, b"v2")  # one write of two succeeds: the set succeeds
        assert await cache.get(key) == b"v2"
        assert cache.stats()["set_failures"] == 0
        assert cache.stats()["nodes_down"] == 1
        await cache.delete(key)
        assert await cache.get(key) is None
    finally:
        primary.start()
    await asyncio.sleep(0.35)  # the cooldown: the next call probes the primary
    await cache.set(key, b"v3")
    assert await cache.get(key) == b"v3"
    with primary.client() as direct:
        assert direct.get(PREFIX + key) == b"v3"  # the primary holds its keys again
    assert cache.stats()["nodes_down"] == 0
    await cache.close()


async def _hundred_calls(cache: RedisCache, key: str) -> float:
    started = time.monotonic()
    for i in range(100):
        if i % 3 == 0:
            assert await cache.get(key) is None
        elif i % 3 == 1:
            await cache.set(key, b"v")
        else:
            await cache.delete(key)
    return time.monotonic() - started


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
async def test_a_redis_outage_costs_little_and_heals_by_itself(
    redis_server: RedisServer, outage: str
) -> None:
    """Stopped: connections are refused. Frozen (SIGSTOP): connections hang until the socket timeout,
    which only the breaker keeps from being paid on every call."""
    cache = RedisCache.single(redis_server.url, socket_timeout_s=0.1, key_prefix=PREFIX, cooldown_s=0.5)
    key = _key()
    await cache.set(key, b"warm")  # a pooled connection exists, as in a running service
    if outage == "stopped":
        redis_server.kill()
    else:
        redis_server.freeze()
    try:
        assert await _hundred_calls(cache, key) < 1.0
        stats = cache.stats()
        assert stats["errors"] >= 3
        assert stats["skipped"] > 50
        assert stats["breakers_open"] == 1
    finally:
        if outage == "stopped":
            redis_server.start()
        else:
            redis_server.thaw()
    await asyncio.sleep(0.5)  # the cooldown
    await cache.set(key, b"back")
    assert await cache.get(key) == b"back"
    assert cache.stats()["breakers_open"] == 0
    await cache.close()
