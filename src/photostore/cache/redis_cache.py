"""Redis as the Cache port: one server (``RedisCache.single``) or a Redis Cluster (``RedisCache.cluster``).

Guarantees
    Never fails a request
        Every backend error (refused or dropped connections, timeouts, CLUSTERDOWN, MOVED storms that
        exhaust redis-py's redirections, redis-py's cluster "connection limit exceeded") is counted in
        ``errors`` and turned into a miss (``get`` returns None) or a no-op (``set``/``delete``). Only
        cancellation propagates.
    Fails fast
        Connect and read timeouts are ``socket_timeout_s``; each call, redis-py's retries included, is
        cut at ``call_timeout_s`` (4 socket timeouts by default). A circuit breaker per backend node (the
        server, or the primary that owns the key's slot) skips calls for ``cooldown_s`` after
        ``failure_threshold`` consecutive failures, so an outage costs a few timeouts per cooldown
        instead of one per request, and a dead cluster primary does not slow the keys of healthy ones
        (until the cluster marks it failed: then every node answers CLUSTERDOWN until a replica is
        promoted, and those breakers open too).
    TTL
        ``SET ... PX`` in milliseconds (at least 1 ms); Redis checks expiry on access, so an expired
        entry is never returned. ``ttl_s`` None means ``default_ttl_s``; ``ttl_s <= 0`` deletes the key.
    Size
        A value over ``max_item_bytes`` is not stored and the key's previous value is deleted, as the
        embedded cache does, so a reader does not see a value older than the last successful ``set``.
    Staleness
        A ``set`` or ``delete`` that fails leaves the previous value in Redis until its TTL ends.

``stats()``: hits, misses (every ``get`` that returned None, errors and skips included), errors,
skipped (calls refused by an open breaker), too_large, breakers_open.

Not thread-safe: use one instance from one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterError, ConnectionError, MaxConnectionsError, ResponseError

from photostore.cache.breaker import CircuitBreaker

if TYPE_CHECKING:
    from photostore.cache.port import Cache
    from photostore.settings import RedisSettings

DEFAULT_TTL_S = 300.0  # CacheSettings.ttl_s's default
MAX_CONNECTIONS = 64  # per node; calls beyond it wait their turn (within call_timeout_s) instead of failing


class RedisCacheOptions(TypedDict, total=False):
    """What :meth:`RedisCache.single` and :meth:`RedisCache.cluster` accept beyond the connection."""

    default_ttl_s: float  # for a set without a TTL; default DEFAULT_TTL_S
    max_item_bytes: int | None  # larger values are not stored; default None (no limit)
    failure_threshold: int  # consecutive failures that open a node's breaker; default 3
    cooldown_s: float  # how long an open breaker skips calls; default 1 s
    call_timeout_s: float  # the most one call may take, retries included; default 4 socket timeouts
    max_concurrency: int  # calls in flight (others wait); default MAX_CONNECTIONS


class BackendUnavailable(Exception):
    """A call did not reach a verdict: the backend failed, timed out or was skipped by its breaker."""


def _trips_breaker(error: BaseException) -> bool:
    """Whether an error says the backend is unhealthy (not merely that this one call went wrong)."""
    if isinstance(error, MaxConnectionsError):
        return False  # our own pool is exhausted; the server is fine
    if isinstance(error, ClusterError):
        return True  # CLUSTERDOWN, redirection storms
    # Any other error reply (WRONGTYPE, OOM) means the server is up and answering.
    return not isinstance(error, ResponseError)


def _ttl_ms(ttl_s: float) -> int:
    return max(1, math.ceil(ttl_s * 1000))


class RedisCache:
    """The Cache port over a redis-py asyncio client (single server or cluster); see the module doc."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        name: str,
        key_prefix: str,
        call_timeout_s: float = 1.0,
        default_ttl_s: float = DEFAULT_TTL_S,
        max_item_bytes: int | None = None,
        max_concurrency: int = MAX_CONNECTIONS,
        failure_threshold: int = 3,
        cooldown_s: float = 1.0,
    ) -> None:
        """Wrap ``client``; prefer :meth:`single` and :meth:`cluster`, which set fast-failing options."""
        if default_ttl_s <= 0 or call_timeout_s <= 0:
            raise ValueError("default_ttl_s and call_timeout_s must be > 0")
        self.name = name
        self._client = client
        self._prefix = key_prefix
        self._call_timeout_s = call_timeout_s
        self._default_ttl_s = default_ttl_s
        self._max_item_bytes = max_item_bytes
        # Bounds calls in flight so redis-py's per-node connection limit is never hit (it raises).
        self._slots = asyncio.Semaphore(max_concurrency)
        self._failure_threshold = failure_threshold
        self._cooldown_s = cooldown_s
        self._breakers: dict[str, CircuitBreaker] = {}
        self._hits = 0
        self._misses = 0
        self._errors = 0
        self._too_large = 0

    # --- construction -------------------------------------------------------------------------------

    @classmethod
    def single(
        cls, url: str, *, socket_timeout_s: float, key_prefix: str, **options: Unpack[RedisCacheOptions]
    ) -> RedisCache:
        """A cache on one Redis server at ``url`` (``redis://host:port/db``); see RedisCacheOptions."""
        client = Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            # One immediate retry on a dropped connection (a pooled socket to a restarted server);
            # never on a timeout, which would double the wait on a hung server.
            retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
            max_connections=options.get("max_concurrency", MAX_CONNECTIONS),
        )
        options.setdefault("call_timeout_s", 4 * socket_timeout_s)
        return cls(client, name=url, key_prefix=key_prefix, **options)

    @classmethod
    def cluster(
        cls,
        seed_nodes: Sequence[str],
        *,
        socket_timeout_s: float,
        key_prefix: str,
        **options: Unpack[RedisCacheOptions],
    ) -> RedisCache:
        """A cache on the Redis Cluster reachable from ``seed_nodes`` (``host:port`` each).

        The client learns the topology on first use and again after errors, so a replica promoted by a
        failover is used with no manual step. See RedisCacheOptions.
        """
        if not seed_nodes:
            raise ValueError("a Redis Cluster needs at least one seed node")
        startup = [ClusterNode(*host_port(seed)) for seed in seed_nodes]
        client = RedisCluster(
            startup_nodes=startup,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            # One retry after re-reading the topology: enough to follow a failover, short enough to
            # fail fast while the cluster is down (redis-py sleeps 0.25 s before retrying a CLUSTERDOWN).
            retry=Retry(NoBackoff(), 1),
            # Serve the slots that are covered rather than refusing the whole cluster.
            require_full_coverage=False,
            max_connections=options.get("max_concurrency", MAX_CONNECTIONS),
        )
        options.setdefault("call_timeout_s", 4 * socket_timeout_s)
        return cls(client, name="cluster:" + ",".join(seed_nodes), key_prefix=key_prefix, **options)

    # --- lookups that report failure (the ring needs to tell an error from a miss) ------------------

    async def lookup(self, key: str) -> bytes | None:
        """The value of ``key`` or None on a clean miss; BackendUnavailable when there is no verdict.

        Counts hits, misses, errors and skips as ``get`` does.
        """
        full = self._prefix + key
        try:
            value: bytes | None = await self._call(full, lambda: self._client.get(full))  # bytes: no decoding
        except BackendUnavailable:
            self._misses += 1
            raise
        if value is None:
            self._misses += 1
        else:
            self._hits += 1
        return value

    async def store(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        """``set``; True when the backend acknowledged it (for an oversized value: the key's deletion)."""
        ttl = self._default_ttl_s if ttl_s is None else ttl_s
        if self._max_item_bytes is not None and len(value) > self._max_item_bytes:
            self._too_large += 1
            return await self.remove(key)  # no stale smaller value may outlive this set
        if ttl <= 0:
            return await self.remove(key)
        full = self._prefix + key
        try:
            await self._call(full, lambda: self._client.set(full, value, px=_ttl_ms(ttl)))
        except BackendUnavailable:
            return False
        return True

    async def remove(self, key: str) -> bool:
        """``delete``; True when the backend acknowledged."""
        full = self._prefix + key
        try:
            await self._call(full, lambda: self._client.delete(full))
        except BackendUnavailable:
            return False
        return True

    # --- the Cache port -----------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        try:
            return await self.lookup(key)
        except BackendUnavailable:
            return None

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        await self.store(key, value, ttl_s)

    async def delete(self, key: str) -> None:
        await self.remove(key)

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # closing sockets to a dead server must not fail shutdown
            await self._client.aclose()

    def stats(self) -> dict[str, float]:
        return {
            "hits": self._hits,
            "misses": self._misses,
            "errors": self._errors,
            "skipped": sum(b.skipped for b in self._breakers.values()),
            "too_large": self._too_large,
            "breakers_open": sum(b.is_open for b in self._breakers.values()),
        }

    @property
    def available(self) -> bool:
        """False while every breaker this cache has used is open (the whole backend looks down)."""
        return not self._breakers or not all(b.is_open for b in self._breakers.values())

    # --- internals ----------------------------------------------------------------------------------

    def _breaker_for(self, full_key: str) -> CircuitBreaker:
        """The breaker of the node serving ``full_key``: the server, or the slot's cluster primary."""
        node_name = self.name
        if isinstance(self._client, RedisCluster):
            try:
                node = self._client.get_node_from_key(full_key)
            except Exception:  # topology not learnt yet (or lost): one breaker for the seeds
                node = None
            node_name = node.name if node is not None else self.name
        breaker = self._breakers.get(node_name)
        if breaker is None:
            breaker = self._breakers[node_name] = CircuitBreaker(
                f"redis {node_name}", failure_threshold=self._failure_threshold, cooldown_s=self._cooldown_s
            )
        return breaker

    async def _call(self, full_key: str, command: Callable[[], Awaitable[Any]]) -> Any:
        breaker = self._breaker_for(full_key)
        if not breaker.allow():
            raise BackendUnavailable(breaker.name)
        try:
            async with asyncio.timeout(self._call_timeout_s), self._slots:
                if isinstance(self._client, RedisCluster):
                    # Learn the topology (again, after an error) before commands run: redis-py 8 left to
                    # itself lets concurrent first commands race the discovery, which closes their sockets.
                    await self._client.initialize()
                result = await command()
        except Exception as exc:  # a cache error must never reach the request: count it, report a miss
            self._errors += 1
            if _trips_breaker(exc):
                breaker.record_failure(exc)
            elif isinstance(exc, ResponseError):
                breaker.record_success()  # an error reply: the server is up and answering
            raise BackendUnavailable(breaker.name) from exc
        breaker.record_success()
        return result


def host_port(seed: str) -> tuple[str, int]:
    """``host:port`` (a ``redis://`` prefix is tolerated) as a pair."""
    address = seed.removeprefix("redis://").rstrip("/")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"a cluster seed must be host:port, got {seed!r}")
    return host, int(port)


def open_cache_backend(
    settings: RedisSettings, *, default_ttl_s: float = DEFAULT_TTL_S, max_item_bytes: int | None = None
) -> Cache:
    """The shared cache the settings name: ``single``, ``cluster`` or ``ring`` (see ``RedisSettings``).

    Opening never connects (clients connect on first use), so a Redis that is down at start-up only
    makes the first calls miss. ``default_ttl_s`` and ``max_item_bytes`` usually come from
    ``CacheSettings`` (``ttl_s``, ``max_item_bytes``).
    """
    timeout, prefix = settings.socket_timeout_s, settings.key_prefix
    limits = RedisCacheOptions(default_ttl_s=default_ttl_s, max_item_bytes=max_item_bytes)
    if settings.mode == "single":
        return RedisCache.single(settings.url, socket_timeout_s=timeout, key_prefix=prefix, **limits)
    if settings.mode == "cluster":
        return RedisCache.cluster(
            settings.cluster_nodes, socket_timeout_s=timeout, key_prefix=prefix, **limits
        )
    from photostore.cache.ring_cache import ReplicatedRingCache  # imports this module: import it late

    return ReplicatedRingCache.from_urls(
        settings.ring_nodes,
        replication=settings.ring_replication,
        socket_timeout_s=timeout,
        key_prefix=prefix,
        **limits,
    )
