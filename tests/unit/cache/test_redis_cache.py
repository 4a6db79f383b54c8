"""What the Redis adapter adds to the contract: key prefix, TTL in milliseconds, error accounting, the
factory. Against this session's own redis-server (never the system one on 6379)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

from photostore.cache.redis_cache import RedisCache, open_cache_backend
from photostore.cache.ring_cache import ReplicatedRingCache
from photostore.settings import RedisSettings
from tests.support.engines import redis as engines
from tests.support.engines.availability import free_port
from tests.support.engines.redis import RedisClusterEngine, RedisServer

redis_single = engines.redis_single
redis_cluster = engines.redis_cluster
redis_ring = engines.redis_ring

PREFIX = "ps-unit:"


def _key() -> str:
    return f"unit:{uuid.uuid4().hex}"


def _cache(server: RedisServer, **options: float) -> RedisCache:
    return RedisCache.single(server.url, socket_timeout_s=2.0, key_prefix=PREFIX, **options)


async def test_keys_carry_the_prefix_and_a_millisecond_ttl(redis_single: RedisServer) -> None:
    cache = _cache(redis_single)
    key = _key()
    await cache.set(key, b"v", ttl_s=1.5)
    with redis_single.client() as direct:
        assert direct.get(PREFIX + key) == b"v"
        assert direct.get(key) is None
        assert 1000 < direct.pttl(PREFIX + key) <= 1500
    await cache.close()


async def test_a_ttl_of_zero_or_less_deletes(redis_single: RedisServer) -> None:
    cache = _cache(redis_single)
    key = _key()
    await cache.set(key, b"v")
    await cache.set(key, b"w", ttl_s=0)
    assert await cache.get(key) is None
    await cache.close()


async def test_an_oversized_value_is_counted_and_drops_the_old_one(redis_single: RedisServer) -> None:
    cache = _cache(redis_single, max_item_bytes=10)
    key = _key()
    await cache.set(key, b"0123456789")  # at the limit: stored
    assert await cache.get(key) == b"0123456789"
    await cache.set(key, b"0123456789A")
    assert await cache.get(key) is None
    assert cache.stats()["too_large"] == 1
    await cache.close()


async def test_an_error_reply_is_a_counted_miss_but_not_an_outage(redis_single: RedisServer) -> None:
    """WRONGTYPE means the server is up and answering: no breaker trips, other keys keep working."""
    cache = _cache(redis_single)
    key, other = _key(), _key()
    with redis_single.client() as direct:
        direct.rpush(PREFIX + key, b"not a string")
    for _ in range(5):
        assert await cache.get(key) is None
    await cache.set(other, b"fine")
    assert await cache.get(other) == b"fine"
    stats = cache.stats()
    assert (stats["errors"], stats["breakers_open"], stats["skipped"]) == (5, 0, 0)
    await cache.close()


async def test_an_unreachable_server_is_a_miss_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    cache = RedisCache.single(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.2, key_prefix=PREFIX)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            assert await cache.get("k") is None
            await cache.set("k", b"v")
            await cache.delete("k")
    assert time.monotonic() - started < 1.0
    assert cache.stats()["errors"] == 3  # then the breaker skips the rest of the cooldown
    assert len([r for r in caplog.records if r.name == "photostore.cache.breaker"]) == 1
    await cache.close()
    await cache.close()  # closing twice (or a dead server) is fine


async def test_the_factory_opens_each_mode(
    redis_single: RedisServer, redis_cluster: RedisClusterEngine, redis_ring: list[RedisServer]
) -> None:
    modes = {
        "single": RedisSettings(mode="single", url=redis_single.url, key_prefix=PREFIX),
        "cluster": RedisSettings(mode="cluster", cluster_nodes=tuple(redis_cluster.seeds), key_prefix=PREFIX),
        "ring": RedisSettings(
            mode="ring", ring_nodes=tuple(s.url for s in redis_ring), ring_replication=3, key_prefix=PREFIX
        ),
    }
    for mode, settings in modes.items():
        cache = open_cache_backend(settings, default_ttl_s=60, max_item_bytes=100)
        assert isinstance(cache, ReplicatedRingCache if mode == "ring" else RedisCache)
        key = _key()
        await cache.set(key, b"v")
        assert await cache.get(key) == b"v", mode
        await cache.set(key, b"x" * 101)  # the item limit reached the adapter
        assert await cache.get(key) is None, mode
        await cache.close()
    with redis_ring[0].client() as direct:
        ring_key = _key()
        ring = open_cache_backend(modes["ring"])
        await ring.set(ring_key, b"everywhere")
        assert direct.get(PREFIX + ring_key) == b"everywhere"  # replication 3 on 3 nodes: on each
        await ring.close()


async def test_opening_never_connects() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    for settings in (
        RedisSettings(mode="single", url=dead),
        RedisSettings(mode="cluster", cluster_nodes=(dead.removeprefix("redis://").removesuffix("/0"),)),
        RedisSettings(mode="ring", ring_nodes=(dead,)),
    ):
        cache = open_cache_backend(settings)
        assert await cache.get("k") is None
        await cache.close()
    assert time.monotonic() - started < 2.0


def test_bad_cluster_seeds_are_refused() -> None:
    with pytest.raises(ValueError, match="host:port"):
        RedisCache.cluster(["nohost"], socket_timeout_s=0.1, key_prefix="")
    with pytest.raises(ValueError, match="at least one"):
        RedisCache.cluster([], socket_timeout_s=0.1, key_prefix="")


async def test_concurrency_beyond_the_pool_waits_instead_of_failing(
    redis_cluster: RedisClusterEngine,
) -> None:
    """redis-py's cluster client raises when a node's connection limit is exceeded; the adapter queues."""
    cache = RedisCache.cluster(
        redis_cluster.seeds, socket_timeout_s=2.0, key_prefix=PREFIX, max_concurrency=4
    )
    keys = [_key() for _ in range(100)]
    await asyncio.gather(*(cache.set(key, b"v") for key in keys))
    assert await asyncio.gather(*(cache.get(key) for key in keys)) == [b"v"] * 100
    assert cache.stats()["errors"] == 0
    await cache.close()
