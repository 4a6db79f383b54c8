"""The rate limiter the settings ask for: its store in Redis (single, cluster; a ring's first node)
or in this process."""

from __future__ import annotations

from photostore.cache.redis_cache import host_port
from photostore.ratelimit.gcra import MemoryGcra, Policy
from photostore.ratelimit.limiter import GcraStore, RateLimiter
from photostore.settings import Settings

CALL_TIMEOUT_FACTOR = 4  # a store call may take this many socket timeouts before it counts as down


def build_limiter(settings: Settings) -> RateLimiter | None:
    limits = settings.ratelimit
    if not limits.enabled:
        return None
    policy = Policy(limits.requests_per_s, limits.burst)
    use_redis = limits.store == "redis" or (limits.store == "auto" and settings.cache.backend == "redis")
    store: GcraStore = _redis_store(settings, policy) if use_redis else MemoryGcra(policy)
    return RateLimiter(store)


def _redis_store(settings: Settings, policy: Policy) -> GcraStore:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    from photostore.ratelimit.redis_store import RedisGcra

    redis = settings.cache.redis
    timeout = redis.socket_timeout_s
    client: Redis | RedisCluster
    if redis.mode == "cluster":
        nodes = [ClusterNode(*host_port(seed)) for seed in redis.cluster_nodes]
        client = RedisCluster(
            startup_nodes=nodes,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            require_full_coverage=False,
        )
    else:
        # A ring has no single authority for a counter: its first node keeps the limits.
        url = redis.url if redis.mode == "single" else redis.ring_nodes[0]
        client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    prefix = redis.key_prefix + settings.ratelimit.key_prefix
    return RedisGcra(client, policy, key_prefix=prefix, call_timeout_s=CALL_TIMEOUT_FACTOR * timeout)
