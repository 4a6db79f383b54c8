"""The GCRA stores give the same verdicts: in this process, on one Redis, on a Redis Cluster; and
the limiter on a Redis that is down still limits, from its own process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from photostore.ratelimit.factory import build_limiter
from photostore.ratelimit.gcra import MemoryGcra, Policy, Verdict
from photostore.ratelimit.limiter import GcraStore, RateLimited
from photostore.settings import Settings, load_settings
from tests.support.engines import redis as engines
from tests.support.engines.availability import free_port
from tests.support.engines.redis import RedisClusterEngine, RedisServer

redis_single = engines.redis_single
redis_cluster = engines.redis_cluster

POLICY = Policy(rate=10, burst=3)


def _settings(**redis: object) -> Settings:
    return load_settings(
        cache={"backend": "redis", "redis": redis},
        ratelimit={"requests_per_s": POLICY.rate, "burst": POLICY.burst},
    )


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[GcraStore]:
    if request.param == "memory":
        yield MemoryGcra(POLICY)
        return
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_single")
        settings = _settings(mode="single", url=server.url, socket_timeout_s=1.0)
    else:
        cluster: RedisClusterEngine = request.getfixturevalue("redis_cluster")
        settings = _settings(mode="cluster", cluster_nodes=cluster.seeds, socket_timeout_s=1.0)
    limiter = build_limiter(settings)
    assert limiter is not None
    yield limiter.store
    await limiter.close()


async def test_a_burst_then_refusals_then_one_per_interval(store: GcraStore) -> None:
    key = uuid.uuid4().hex
    t = 1_800_000_000_000.0
    verdicts = [await store.take(key, 1, t) for _ in range(4)]
    assert verdicts == [Verdict(True, 0)] * 3 + [Verdict(False, 100)]
    assert await store.take(key, 1, t + 50) == Verdict(False, 50)
    assert await store.take(key, 1, t + 100) == Verdict(True, 0)
    assert await store.take(key, 2, t + 300) == Verdict(True, 0)  # two intervals earned, two spent
    assert await store.take(uuid.uuid4().hex, 3, t) == Verdict(True, 0)  # keys are independent
    assert await store.take(uuid.uuid4().hex, 4, t) == Verdict(False, 100)  # beyond a burst


async def test_with_redis_down_the_limiter_still_limits_in_this_process() -> None:
    settings = _settings(mode="single", url=f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.2)
    limiter = build_limiter(settings)
    assert limiter is not None
    try:
        for _ in range(POLICY.burst):
            await limiter.acquire("k")
        with pytest.raises(RateLimited):
            await limiter.acquire("k")
        assert limiter.stats.store_errors >= 2
    finally:
        await limiter.close()
