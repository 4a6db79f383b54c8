"""Replica selection and read routing without a PostgreSQL server.

The servers here are real engines: SQLite files that say who they are (a ``whoami`` table), and
PostgreSQL engines on a port nobody listens on (a replica that is down).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from photostore import ids
from photostore.domain import User
from photostore.errors import ConfigError
from photostore.metadata.engines import build_postgres_engine, build_sqlite_engine
from photostore.metadata.factory import open_postgres_from_settings, shard_targets
from photostore.metadata.recent_writes import RecentWrites
from photostore.metadata.replicas import (
    LatencyBasedSelector,
    ReadRouter,
    ReplicaSet,
    RoundRobinSelector,
    primary_reads,
)
from photostore.metadata.selectors import make_selector
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.settings import (
    MetadataSettings,
    PoolSettings,
    PostgresSettings,
    PostgresShardSettings,
    Settings,
)
from tests.support.engines.availability import free_port

POOL = PoolSettings(max_open_conns=2, max_idle_conns=1)

# --- selectors --------------------------------------------------------------------------------


def test_round_robin_takes_each_candidate_in_turn() -> None:
    selector = RoundRobinSelector()
    assert [selector.select("abc") for _ in range(7)] == list("abcabca")
    assert selector.select([]) is None


def test_round_robin_keeps_going_when_the_candidates_change() -> None:
    selector = RoundRobinSelector()
    assert [selector.select(["a", "b", "c"]) for _ in range(2)] == ["a", "b"]
    assert [selector.select(["a", "c"]) for _ in range(3)] == ["a", "c", "a"]  # b left: no one twice


def test_latency_tries_unseen_candidates_first_in_order() -> None:
    selector = LatencyBasedSelector(alpha=0.5)
    assert selector.select(["a", "b", "c"]) == "a"
    selector.observe("a", 0.010)
    assert selector.select(["a", "b", "c"]) == "b"
    selector.observe("b", 0.001)
    assert selector.select(["a", "b", "c"]) == "c"
    selector.observe("c", 0.005)
    assert selector.select(["a", "b", "c"]) == "b"  # all seen: the fastest


def test_latency_is_an_exponential_moving_average() -> None:
    selector = LatencyBasedSelector(alpha=0.25)
    selector.observe("a", 0.100)
    assert selector.latency_s("a") == pytest.approx(0.100)
    selector.observe("a", 0.020)
    assert selector.latency_s("a") == pytest.approx(0.25 * 0.020 + 0.75 * 0.100)
    selector.observe("b", 0.050)
    assert selector.select(["a", "b"]) == "b"
    for _ in range(5):  # a got fast: the average follows, and a wins again
        selector.observe("a", 0.010)
    assert selector.select(["a", "b"]) == "a"
    assert selector.latency_s("missing") is None


def test_latency_ties_go_to_the_first_and_nothing_to_choose_is_none() -> None:
    selector = LatencyBasedSelector()
    selector.observe("a", 0.01)
    selector.observe("b", 0.01)
    assert selector.select(["b", "a"]) == "b"
    assert selector.select([]) is None


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_latency_alpha_must_be_a_weight(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        LatencyBasedSelector(alpha)


def test_selectors_by_settings_name() -> None:
    assert isinstance(make_selector("round_robin"), RoundRobinSelector)
    latency = make_selector("latency", alpha=0.5)
    assert isinstance(latency, LatencyBasedSelector)
    with pytest.raises(ValueError, match="unknown"):
        make_selector("random")  # type: ignore[arg-type]


# --- read-your-writes bookkeeping ----------------------------------------------------------------


def test_recent_writes_cover_the_user_and_their_photos_for_the_window() -> None:
    recent = RecentWrites(window_s=0.2)
    writer, other = ids.new_user_id(), ids.new_user_id()
    recent.wrote([writer])
    assert recent.is_recent(writer)
    assert recent.is_recent(ids.new_photo_id(writer))  # a photo id carries its owner's placement key
    assert not recent.is_recent(other)
    time.sleep(0.25)
    assert not recent.is_recent(writer)
    assert len(recent) == 0  # expired entries are dropped, so memory follows the window


def test_a_zero_window_remembers_nothing() -> None:
    recent = RecentWrites(window_s=0)
    user = ids.new_user_id()
    recent.wrote([user])
    assert not recent.is_recent(user)
    assert len(recent) == 0
    with pytest.raises(ValueError, match="window"):
        RecentWrites(window_s=-1)


# --- replica sets on real engines ----------------------------------------------------------------


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Callable[[str], AsyncEngine]]:
    """``make(name)``: a SQLite engine whose ``whoami`` table answers ``name``; ``make("down")``: a
    PostgreSQL engine on a closed port. All disposed at the end."""
    engines: list[AsyncEngine] = []

    def make(name: str) -> AsyncEngine:
        if name.startswith("down"):
            engine = build_postgres_engine(
                f"postgresql://u:p@127.0.0.1:{free_port()}/db", POOL, connect_timeout_s=1
            )
        else:
            engine = build_sqlite_engine(tmp_path / f"{name}.db", POOL)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.dispose()


async def named(engine: AsyncEngine, name: str) -> AsyncEngine:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS whoami (name TEXT)"))
        await conn.execute(text("DELETE FROM whoami"))
        await conn.execute(text("INSERT INTO whoami VALUES (:n)"), {"n": name})
    return engine


async def whoami(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(text("SELECT name FROM whoami"))).scalar_one())


async def test_reads_skip_an_unhealthy_replica(servers: Callable[[str], AsyncEngine]) -> None:
    primary = await named(servers("primary"), "primary")
    up = await named(servers("up"), "up")
    replicas = ReplicaSet(0, primary, [servers("down"), up], RoundRobinSelector())
    await replicas.check_now()
    assert [replica.healthy for replica in replicas.replicas] == [False, True]
    assert [await replicas.read(whoami) for _ in range(3)] == ["up"] * 3
    await replicas.close()


async def test_with_no_healthy_replica_reads_go_to_the_primary(servers: Callable[[str], AsyncEngine]) -> None:
    primary = await named(servers("primary"), "primary")
    replicas = ReplicaSet(0, primary, [servers("down1"), servers("down2")], LatencyBasedSelector())
    await replicas.check_now()
    assert replicas.healthy() == []
    assert [await replicas.read(whoami) for _ in range(2)] == ["primary"] * 2
    stats = replicas.replica_stats()
    assert [(stat.role, stat.reads, stat.healthy) for stat in stats] == [
        ("primary", 2, True),
        ("replica", 0, False),
        ("replica", 0, False),
    ]
    assert all(stat.last_error for stat in stats[1:])
    await replicas.close()


async def test_a_read_that_fails_on_a_replica_runs_on_the_primary(
    servers: Callable[[str], AsyncEngine],
) -> None:
    primary = await named(servers("primary"), "primary")
    replicas = ReplicaSet(0, primary, [servers("down")])
    assert replicas.replicas[0].healthy  # not checked yet: assumed up
    assert await replicas.read(whoami) == "primary"
    assert not replicas.replicas[0].healthy
    assert replicas.replicas[0].failures == 1
    await replicas.close()


async def test_an_error_of_the_read_itself_is_not_retried(servers: Callable[[str], AsyncEngine]) -> None:
    primary = await named(servers("primary"), "primary")
    up = await named(servers("up"), "up")
    replicas = ReplicaSet(0, primary, [up])
    calls: list[str] = []

    async def broken(engine: AsyncEngine) -> None:
        calls.append(await whoami(engine))
        raise KeyError("a bug in the caller")

    with pytest.raises(KeyError):
        await replicas.read(broken)
    assert calls == ["up"]
    assert replicas.replicas[0].healthy
    await replicas.close()


async def test_a_replica_that_recovers_is_used_again(
    tmp_path: Path, servers: Callable[[str], AsyncEngine]
) -> None:
    primary = await named(servers("primary"), "primary")
    later = build_sqlite_engine(tmp_path / "not yet" / "replica.db", POOL)  # the folder does not exist
    replicas = ReplicaSet(0, primary, [later], check_interval_s=0.05)
    replicas.start()
    try:
        await _until(lambda: not replicas.replicas[0].healthy)
        assert await replicas.read(whoami) == "primary"
        (tmp_path / "not yet").mkdir()
        await named(later, "later")
        await _until(lambda: replicas.replicas[0].healthy)
        assert await replicas.read(whoami) == "later"
    finally:
        await replicas.close()


async def _until(condition: Callable[[], bool], timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_router_keeps_a_writers_reads_on_the_primary(servers: Callable[[str], AsyncEngine]) -> None:
    primary = await named(servers("primary"), "primary")
    replica = await named(servers("replica"), "replica")
    router = ReadRouter([ReplicaSet(0, primary, [replica])], read_your_writes_s=0.2)
    writer, reader = ids.new_user_id(), ids.new_user_id()
    router.wrote([writer])
    assert await router.read(0, whoami, concerning=writer) == "primary"
    assert await router.read(0, whoami, concerning=ids.new_photo_id(writer)) == "primary"
    assert await router.read(0, whoami, concerning=reader) == "replica"
    assert await router.read(0, whoami) == "replica"
    assert await router.read(0, whoami, primary_only=True) == "primary"
    with primary_reads():
        assert await router.read(0, whoami, concerning=reader) == "primary"
    time.sleep(0.25)
    assert await router.read(0, whoami, concerning=writer) == "replica"
    await router.close()


async def test_store_refuses_a_router_on_other_engines(servers: Callable[[str], AsyncEngine]) -> None:
    primary, stranger = servers("primary"), servers("stranger")
    with pytest.raises(ValueError, match="covers shards"):
        SqlMetadataStore({0: primary, 1: stranger}, lambda key: 0, reads=ReadRouter([ReplicaSet(0, primary)]))
    with pytest.raises(ValueError, match="primary engine"):
        SqlMetadataStore({0: primary}, lambda key: 0, reads=ReadRouter([ReplicaSet(0, stranger)]))


async def test_store_records_writes_for_read_your_writes(servers: Callable[[str], AsyncEngine]) -> None:
    # A SQLite primary and a SQLite "replica" that never receives the rows: only the primary has them.
    primary, replica = servers("primary"), servers("replica")
    store = SqlMetadataStore(
        {0: primary},
        lambda key: 0,
        reads=ReadRouter([ReplicaSet(0, primary, [replica])], read_your_writes_s=0.3),
    )
    lagging = SqlMetadataStore({0: replica}, lambda key: 0)
    try:
        await store.start()
        await lagging.start()
        user = User(id=ids.new_user_id(), name="ada", created_at=datetime.now(UTC))
        await store.create_user(user)
        assert await store.get_user(user.id) == user
        time.sleep(0.35)
        assert await store.get_user(user.id) is None  # the window is over: the replica answers
        with primary_reads():
            assert await store.get_user(user.id) == user
        assert await store.pending_outbox(0, 10) == []  # the outbox is read on the primary
        reads = {stat.role: stat.reads for stat in store.replica_stats()}
        assert reads == {"primary": 3, "replica": 1}
    finally:
        await lagging.close()
        await store.close()


# --- settings -> shards ---------------------------------------------------------------------------


def test_shards_follow_the_template_unless_listed() -> None:
    pg = PostgresSettings(
        dsn_template=SecretStr("postgresql://u:p@db:5432/photo_shard_{shard}"),
        shards=(
            PostgresShardSettings(
                id=2,
                dsn=SecretStr("postgres://u:p@big:6432/s2"),
                replicas=(SecretStr("postgresql://u:p@r1/s2"),),
            ),
        ),
    )
    targets = shard_targets(pg, [0, 1, 2])
    assert [targets[n].primary.render_as_string(hide_password=False) for n in range(3)] == [
        "postgresql+asyncpg://u:p@db:5432/photo_shard_0",
        "postgresql+asyncpg://u:p@db:5432/photo_shard_1",
        "postgresql+asyncpg://u:p@big:6432/s2",
    ]
    assert [url.drivername for url in targets[2].replicas] == ["postgresql+asyncpg"]
    assert targets[0].replicas == ()


@pytest.mark.parametrize(
    ("pg", "message"),
    [
        (PostgresSettings(dsn_template=SecretStr("postgresql://u@h/one_db")), "would share the database"),
        (PostgresSettings(dsn_template=SecretStr("mysql://u@h/s_{shard}")), "not a PostgreSQL DSN"),
        (
            PostgresSettings(shards=(PostgresShardSettings(id=9, dsn=SecretStr("postgresql://h/x")),)),
            "names shard 9",
        ),
        (
            PostgresSettings(
                shards=(
                    PostgresShardSettings(id=0, dsn=SecretStr("postgresql://h/x")),
                    PostgresShardSettings(id=0, dsn=SecretStr("postgresql://h/y")),
                )
            ),
            "twice",
        ),
    ],
)
def test_bad_shard_settings_are_config_errors(pg: PostgresSettings, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        shard_targets(pg, [0, 1])


async def test_store_from_settings_has_a_pool_per_server(tmp_path: Path) -> None:
    # Building opens no connection, so this needs no server.
    shard = PostgresShardSettings(
        id=1,
        dsn=SecretStr("postgresql://u:secret@p1:5432/one"),
        replicas=(
            SecretStr("postgresql://u:secret@r1:5432/one"),
            SecretStr("postgresql://u:secret@r2:5432/one"),
        ),
    )
    metadata = MetadataSettings(
        backend="postgres",
        pool=PoolSettings(max_open_conns=7, max_idle_conns=3),
        postgres=PostgresSettings(shards=(shard,), replica_selector="latency"),
    )
    store = open_postgres_from_settings(
        Settings(data_dir=tmp_path, metadata=metadata), [0, 1], lambda key: key % 2
    )
    try:
        stats = store.pool_stats()
        assert [(s.shard_id, s.role, s.target, s.size, s.max_open) for s in stats] == [
            (0, "primary", "127.0.0.1:5432/photo_shard_0", 3, 7),
            (1, "primary", "p1:5432/one", 3, 7),
            (1, "replica", "r1:5432/one", 3, 7),
            (1, "replica", "r2:5432/one", 3, 7),
        ]
        assert all(s.checked_out == s.overflow == s.idle == 0 for s in stats)
        assert [(s.shard_id, s.role, s.target, s.healthy, s.reads) for s in store.replica_stats()] == [
            (1, "primary", "p1:5432/one", True, 0),
            (1, "replica", "r1:5432/one", True, 0),
            (1, "replica", "r2:5432/one", True, 0),
        ]
        assert "secret" not in repr(stats) + repr(store.replica_stats())
    finally:
        await store.close()
