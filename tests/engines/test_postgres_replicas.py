"""Read replicas on real streaming replicas of a private PostgreSQL: routing, read-your-writes,
failover to the primary, and the pool limits, all through the store that open_postgres_from_settings
builds. Which server answered is proven by the server itself (``inet_server_port()``), by a replica
whose WAL replay is paused (it cannot know a newer row), or by the store's per-server read counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from photostore import ids
from photostore.domain import Photo, User
from photostore.metadata.factory import open_postgres_from_settings
from photostore.metadata.pool_stats import PoolStat
from photostore.metadata.replicas import ReplicaStat, primary_reads
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.settings import (
    MetadataSettings,
    PoolSettings,
    PostgresSettings,
    PostgresShardSettings,
    Settings,
)
from tests.engines.delay_proxy import delay_proxy
from tests.engines.postgres_fixtures import pg_primary, pg_replicas
from tests.support.engines.postgres import (
    PgServer,
    Postmaster,
    fetch,
    fetchval,
    pause_replay,
    resume_replay,
    streaming_replica,
    throwaway_databases,
    wait_for_replay,
)
from tests.support.photo_rows import jpeg_row

__all__ = ["pg_primary", "pg_replicas"]  # fixtures, used by name

CHECK_INTERVAL_S = 0.2
SMALL_POOL = PoolSettings(max_open_conns=4, max_idle_conns=2)


def one_shard(key: int) -> int:
    return 0


@pytest.fixture
def database(pg_primary: Postmaster, pg_replicas: list[Postmaster]) -> Iterator[str]:
    """A fresh database on the private primary (so on its replicas too)."""
    with throwaway_databases(pg_primary.server, 1, "ps_replica") as (name,):
        yield name


def settings_for(
    tmp_path: Path,
    database: str,
    primary: PgServer,
    replicas: Sequence[PgServer],
    *,
    pool: PoolSettings = SMALL_POOL,
    **postgres: Any,
) -> Settings:
    shard = PostgresShardSettings(
        id=0,
        dsn=SecretStr(primary.dsn(database)),
        replicas=tuple(SecretStr(replica.dsn(database)) for replica in replicas),
    )
    options: dict[str, Any] = {"replica_check_interval_s": CHECK_INTERVAL_S, **postgres}
    metadata = MetadataSettings(
        backend="postgres", pool=pool, postgres=PostgresSettings(shards=(shard,), **options)
    )
    return Settings(data_dir=tmp_path, metadata=metadata)


@asynccontextmanager
async def started(
    settings: Settings, replayed_by: Sequence[Postmaster] = ()
) -> AsyncIterator[SqlMetadataStore]:
    """The store on shard 0, migrated; with ``replayed_by``, once those replicas replayed the
    migration and every replica passed a health check (the first round may predate the database).

    A passed check leaves a latency sample, and the database cannot vanish after one, so no check
    still in flight can mark a replica down later.
    """
    store = open_postgres_from_settings(settings, [0], one_shard)
    try:
        await store.start()
        primary = _primary_of(settings)
        for replica in replayed_by:
            await asyncio.to_thread(wait_for_replay, primary, replica.server)
        deadline = time.monotonic() + 5
        while replayed_by and not all(
            stat.healthy and stat.latency_ms is not None for stat in store.replica_stats()[1:]
        ):
            assert time.monotonic() < deadline, f"replicas not healthy: {store.replica_stats()}"
            await asyncio.sleep(0.02)
        yield store
    finally:
        await store.close()


def _primary_of(settings: Settings) -> PgServer:
    from sqlalchemy import make_url

    url = make_url(settings.metadata.postgres.shards[0].dsn.get_secret_value())
    return PgServer(url.host or "127.0.0.1", url.port or 5432)


def new_user(name: str = "ada") -> User:
    return User(id=ids.new_user_id(), name=name, created_at=datetime.now(UTC))


def photo_of(owner: User) -> Photo:
    photo_id = ids.new_photo_id(owner.id)
    stamp = datetime.now(UTC)
    return jpeg_row(photo_id, owner.id, stamp, sha256="ab" * 32, bytes=10, width=1, height=1)


async def served_by(store: SqlMetadataStore) -> int:
    """The port of the server that a read of shard 0 lands on (the store's own read path)."""

    async def run(engine: AsyncEngine) -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT inet_server_port()"))).scalar_one())

    return await store.run_read(0, run, "which server")


def reads_by_port(store: SqlMetadataStore) -> dict[int, int]:
    return {_port(stat): stat.reads for stat in store.replica_stats()}


def stat_of(store: SqlMetadataStore, port: int) -> ReplicaStat:
    (stat,) = [stat for stat in store.replica_stats() if _port(stat) == port]
    return stat


def _port(stat: ReplicaStat | PoolStat) -> int:
    return int(stat.target.split("/")[0].rsplit(":", 1)[1])


# --- routing ----------------------------------------------------------------------------------


async def test_rows_written_on_the_primary_are_read_through_the_replicas(
    tmp_path: Path, database: str, pg_primary: Postmaster, pg_replicas: list[Postmaster]
) -> None:
    servers = [replica.server for replica in pg_replicas]
    settings = settings_for(tmp_path, database, pg_primary.server, servers, read_your_writes_s=0)
    async with started(settings, pg_replicas) as store:
        user = new_user()
        await store.create_user(user)
        for replica in pg_replicas:
            await asyncio.to_thread(wait_for_replay, pg_primary.server, replica.server)
        assert [await store.get_user(user.id) for _ in range(4)] == [user] * 4
        reads = reads_by_port(store)
        assert reads[pg_primary.port] == 0
        assert [reads[replica.port] for replica in pg_replicas] == [2, 2]


async def test_round_robin_takes_the_replicas_in_turn(
    tmp_path: Path, database: str, pg_primary: Postmaster, pg_replicas: list[Postmaster]
) -> None:
    servers = [replica.server for replica in pg_replicas]
    settings = settings_for(tmp_path, database, pg_primary.server, servers, replica_selector="round_robin")
    async with started(settings, pg_replicas) as store:
        ports = [await served_by(store) for _ in range(6)]
    assert ports == [pg_replicas[0].port, pg_replicas[1].port] * 3


async def test_latency_selector_sends_reads_to_the_faster_replica(
    tmp_path: Path, database: str, pg_primary: Postmaster, pg_replicas: list[Postmaster]
) -> None:
    fast = pg_replicas[0]
    # The slow one is listed first: round robin would give it half the reads, a latency pick none.
    async with delay_proxy(pg_replicas[1].port, delay_s=0.02) as slow_port:
        slow = PgServer("127.0.0.1", slow_port)
        settings = settings_for(
            tmp_path, database, pg_primary.server, [slow, fast.server], replica_selector="latency"
        )
        async with started(settings, pg_replicas) as store:
            ports = [await served_by(store) for _ in range(20)]
            slow_ms, fast_ms = (stat_of(store, port).latency_ms for port in (slow_port, fast.port))
    assert ports == [fast.port] * 20
    assert slow_ms is not None
    assert fast_ms is not None
    assert slow_ms > fast_ms + 10


async def test_read_your_writes_reads_a_fresh_write_from_the_primary(
    tmp_path: Path, database: str, pg_primary: Postmaster, pg_replicas: list[Postmaster]
) -> None:
    window_s = 1.5
    servers = [replica.server for replica in pg_replicas]
    settings = settings_for(tmp_path, database, pg_primary.server, servers, read_your_writes_s=window_s)
    async with started(settings, pg_replicas) as store:
        settled = new_user("settled")
        await store.create_user(settled)
        for replica in pg_replicas:
            await asyncio.to_thread(wait_for_replay, pg_primary.server, replica.server)
        await asyncio.sleep(window_s)  # settled's own window is over
        for replica in pg_replicas:
            await asyncio.to_thread(pause_replay, replica.server)  # the replicas now freeze
        try:
            fresh = new_user("fresh")
            await store.create_user(fresh)
            photo = photo_of(fresh)
            await store.insert_photo(photo, [])
            before = reads_by_port(store)
            # Only the primary has these rows: the replicas stopped replaying before they were written.
            assert await store.get_user(fresh.id) == fresh
            assert await store.get_photo_any_state(photo.id) == photo  # a photo id finds its owner
            assert await store.get_user(settled.id) == settled  # no recent write: a replica
            after = reads_by_port(store)
            assert after[pg_primary.port] - before[pg_primary.port] == 2
            assert sum(after.values()) - sum(before.values()) == 3

            await asyncio.sleep(window_s)
            assert await store.get_user(fresh.id) is None  # window over: a frozen replica answers
            with primary_reads():
                assert await store.get_user(fresh.id) == fresh
        finally:
            for replica in pg_replicas:
                await asyncio.to_thread(resume_replay, replica.server)
        for replica in pg_replicas:
            await asyncio.to_thread(wait_for_replay, pg_primary.server, replica.server)
        assert await store.get_user(fresh.id) == fresh


# --- failover ---------------------------------------------------------------------------------


async def test_a_stopped_replica_costs_no_read_and_comes_back(
    tmp_path: Path, database: str, pg_primary: Postmaster
) -> None:
    with streaming_replica(pg_primary.server) as replica:  # our own: this test stops it
        settings = settings_for(tmp_path, database, pg_primary.server, [replica.server], read_your_writes_s=0)
        async with started(settings, [replica]) as store:
            users = [new_user(f"u{n}") for n in range(4)]
            for user in users:
                await store.create_user(user)
            await asyncio.to_thread(wait_for_replay, pg_primary.server, replica.server)

            failures: list[BaseException] = []
            done = asyncio.Event()

            async def reader(user: User) -> int:
                count = 0
                while not done.is_set():
                    try:
                        assert await store.get_user(user.id) == user
                    except Exception as error:
                        failures.append(error)
                    count += 1
                    await asyncio.sleep(0.005)
                return count

            readers = [asyncio.create_task(reader(user)) for user in users]
            try:
                await asyncio.sleep(0.3)
                assert stat_of(store, replica.port).reads > 0

                await asyncio.to_thread(replica.stop, "immediate")
                await asyncio.sleep(3 * CHECK_INTERVAL_S)
                assert not stat_of(store, replica.port).healthy
                on_primary = stat_of(store, pg_primary.port).reads
                frozen = stat_of(store, replica.port).reads
                await asyncio.sleep(0.3)
                assert stat_of(store, pg_primary.port).reads > on_primary
                assert stat_of(store, replica.port).reads == frozen

                await asyncio.to_thread(replica.start)
                restarted = time.monotonic()
                while not (
                    stat_of(store, replica.port).healthy and stat_of(store, replica.port).reads > frozen
                ):
                    assert time.monotonic() - restarted < 5, "the replica did not come back within 5 s"
                    await asyncio.sleep(0.02)
                back_after = time.monotonic() - restarted
            finally:
                done.set()
                counts = await asyncio.gather(*readers)
        assert failures == []
        assert sum(counts) > 100
        assert back_after < CHECK_INTERVAL_S + 1.0 + 1.0  # one interval + one check timeout + slack


async def test_without_healthy_replicas_reads_go_to_the_primary(
    tmp_path: Path, database: str, pg_primary: Postmaster
) -> None:
    with streaming_replica(pg_primary.server) as replica:
        gone = replica.server
    # ``gone`` no longer answers: every read must still work, on the primary.
    settings = settings_for(tmp_path, database, pg_primary.server, [gone], read_your_writes_s=0)
    async with started(settings) as store:
        user = new_user()
        await store.create_user(user)
        assert [await store.get_user(user.id) for _ in range(5)] == [user] * 5
        assert [await served_by(store) for _ in range(3)] == [pg_primary.port] * 3
        assert not stat_of(store, gone.port).healthy
        assert stat_of(store, gone.port).reads == 0


# --- pools ------------------------------------------------------------------------------------


async def test_pool_never_opens_more_than_max_open_conns(
    tmp_path: Path, database: str, pg_primary: Postmaster
) -> None:
    pool = PoolSettings(max_open_conns=3, max_idle_conns=1)
    settings = settings_for(tmp_path, database, pg_primary.server, [], pool=pool)
    async with started(settings) as store:

        async def slow_read(engine: AsyncEngine) -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(0.05)"))

        seen: list[PoolStat] = []
        on_server: list[int] = []
        load = asyncio.gather(*(store.run_read(0, slow_read, "load") for _ in range(24)))
        while not load.done():
            seen.append(store.pool_stats()[0])
            count = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
            on_server.append(int(await fetchval(pg_primary.server, count, database)))
            await asyncio.sleep(0.01)
        await load

        assert {(stat.role, stat.size, stat.max_open) for stat in seen} == {("primary", 1, 3)}
        assert max(stat.checked_out for stat in seen) == 3
        assert max(stat.overflow for stat in seen) == 2
        assert max(on_server) <= 3
        idle = store.pool_stats()[0]
        assert (idle.checked_out, idle.overflow, idle.idle) == (0, 0, 1)  # overflow closed on return


async def test_an_idle_connection_is_replaced_after_max_idle_time(
    tmp_path: Path, database: str, pg_primary: Postmaster
) -> None:
    pool = PoolSettings(max_open_conns=2, max_idle_conns=1, conn_max_idle_time_s=0.3)
    settings = settings_for(tmp_path, database, pg_primary.server, [], pool=pool)

    async def backend_pid(engine: AsyncEngine) -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())

    async with started(settings) as store:
        first = await store.run_read(0, backend_pid, "pid")
        assert await store.run_read(0, backend_pid, "pid") == first  # reused while fresh
        await asyncio.sleep(0.5)
        replaced = await store.run_read(0, backend_pid, "pid")
        assert replaced != first
        deadline = time.monotonic() + 2
        while first in await _backend_pids(pg_primary.server, database):
            assert time.monotonic() < deadline, "the idle connection was not closed"
            await asyncio.sleep(0.02)


async def _backend_pids(server: PgServer, database: str) -> set[int]:
    rows = await fetch(server, "SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    return {int(row[0]) for row in rows}


async def test_pool_stats_list_every_server(
    tmp_path: Path, database: str, pg_primary: Postmaster, pg_replicas: list[Postmaster]
) -> None:
    servers = [replica.server for replica in pg_replicas]
    settings = settings_for(tmp_path, database, pg_primary.server, servers)
    async with started(settings, pg_replicas) as store:
        stats = store.pool_stats()
    assert [(stat.role, _port(stat)) for stat in stats] == [
        ("primary", pg_primary.port),
        *(("replica", replica.port) for replica in pg_replicas),
    ]
    assert all(stat.target.endswith(f"/{database}") and stat.max_open == 4 for stat in stats)
