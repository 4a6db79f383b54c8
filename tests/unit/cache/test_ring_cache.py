"""The replicated ring's own rules: placement on photostore's ring, reads in order (an error moves on, a
clean miss is final), writes to every copy, per-node stats. Three redis-servers of this module's own,
so that stopping them disturbs no other test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from photostore.cache.ring_cache import ReplicatedRingCache
from photostore.placement.ring import Ring
from tests.support.engines.availability import unavailable
from tests.support.engines.redis import EngineStartError, RedisServer, start_servers

PREFIX = "ps-ring:"
COOLDOWN_S = 0.2


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RedisServer]]:
    try:
        started = start_servers(tmp_path_factory.mktemp("ring"), 3)
    except EngineStartError as exc:
        unavailable(f"Redis unavailable: {exc}")
    yield {server.url: server for server in started}
    for server in started:
        server.kill()


@pytest.fixture
async def ring(servers: dict[str, RedisServer]) -> AsyncIterator[ReplicatedRingCache]:
    for server in servers.values():
        server.start()  # a test may have stopped one
    cache = ReplicatedRingCache.from_urls(
        list(servers), replication=2, socket_timeout_s=0.25, key_prefix=PREFIX, cooldown_s=COOLDOWN_S
    )
    yield cache
    await cache.close()


def _key() -> str:
    return f"ring:{uuid.uuid4().hex}"


def _raw(server: RedisServer, key: str) -> bytes | None:
    with server.client() as direct:
        value = direct.get(PREFIX + key)
        assert value is None or isinstance(value, bytes)
        return value


async def test_keys_are_placed_by_photostores_ring(
    ring: ReplicatedRingCache, servers: dict[str, RedisServer]
) -> None:
    placement = Ring.build(list(servers))
    for _ in range(20):
        key = _key()
        nodes = ring.nodes_for(key)
        assert nodes == placement.nodes_for(key, 2)
        await ring.set(key, b"v")
        held = [url for url, server in servers.items() if _raw(server, key) == b"v"]
        assert sorted(held) == sorted(nodes)  # on its two nodes and nowhere else


async def test_a_clean_miss_on_the_primary_is_final(
    ring: ReplicatedRingCache, servers: dict[str, RedisServer]
) -> None:
    """A replica holding what the primary lacks (a delete it missed) must not be read back."""
    key = _key()
    _, replica = ring.nodes_for(key)
    with servers[replica].client() as direct:
        direct.set(PREFIX + key, b"deleted long ago")
    assert await ring.get(key) is None
    assert ring.stats()["misses"] == 1


async def test_a_failing_primary_is_passed_over_then_skipped(
    ring: ReplicatedRingCache, servers: dict[str, RedisServer]
) -> None:
    key = _key()
    primary, replica = ring.nodes_for(key)
    await ring.set(key, b"v")
    servers[primary].freeze()  # hangs: reads time out rather than being refused
    try:
        for _ in range(10):
            assert await ring.get(key) == b"v"
        stats = ring.stats()
        assert stats["nodes_down"] == 1
        assert stats[f"node[{primary}].errors"] == 3  # then skipped, without a network call
        assert stats[f"node[{primary}].skipped"] == 7
        assert stats[f"node[{replica}].hits"] == 10
    finally:
        servers[primary].thaw()


async def test_with_every_copy_down_calls_are_counted_no_ops(
    ring: ReplicatedRingCache, servers: dict[str, RedisServer]
) -> None:
    key = _key()
    for url in ring.nodes_for(key):
        servers[url].kill()
    await ring.set(key, b"v")
    assert await ring.get(key) is None
    await ring.delete(key)
    stats = ring.stats()
    assert (stats["set_failures"], stats["errors"], stats["misses"]) == (1, 1, 1)


async def test_delete_reaches_every_copy(ring: ReplicatedRingCache, servers: dict[str, RedisServer]) -> None:
    key = _key()
    await ring.set(key, b"v")
    await ring.delete(key)
    assert all(_raw(server, key) is None for server in servers.values())


def test_replication_is_capped_by_the_node_count() -> None:
    urls = [f"redis://127.0.0.1:{port}/0" for port in (1, 2)]
    ring = ReplicatedRingCache.from_urls(urls, replication=5, socket_timeout_s=0.1, key_prefix="")
    assert sorted(ring.nodes_for("k")) == sorted(urls)
    with pytest.raises(ValueError, match="unique"):
        ReplicatedRingCache.from_urls([urls[0], urls[0]], replication=1, socket_timeout_s=0.1, key_prefix="")
    with pytest.raises(ValueError, match="at least one"):
        ReplicatedRingCache({}, replication=1)
