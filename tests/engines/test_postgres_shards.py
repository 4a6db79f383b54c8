"""PostgreSQL shards built from settings: databases created at start (also by concurrent starts), and a
shard whose server restarts: it fails fast while down, the others keep working, and it comes back
with no manual step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from photostore import ids
from photostore.domain import User
from photostore.errors import BackendUnavailable
from photostore.metadata.engines import PING_AFTER_IDLE_S
from photostore.metadata.factory import open_postgres_from_settings
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.settings import (
    MetadataSettings,
    PoolSettings,
    PostgresSettings,
    PostgresShardSettings,
    Settings,
)
from tests.support.engines.availability import unavailable
from tests.support.engines.postgres import (
    SYSTEM,
    drop_databases,
    fetchval,
    private_postmaster,
    throwaway_databases,
    unique_names,
)

SHARDS = 2
POOL = PoolSettings(max_open_conns=4, max_idle_conns=1)  # the system server is shared with others


def shard_for_key(key: int) -> int:
    return key % SHARDS


def user_on(shard: int) -> User:
    while True:
        user_id = ids.new_user_id()
        if shard_for_key(ids.placement_key_of(user_id)) == shard:
            return User(id=user_id, name=f"on {shard}", created_at=datetime.now(UTC))


def settings_with(tmp_path: Path, postgres: PostgresSettings) -> Settings:
    return Settings(
        data_dir=tmp_path, metadata=MetadataSettings(backend="postgres", pool=POOL, postgres=postgres)
    )


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[SqlMetadataStore]:
    store = open_postgres_from_settings(settings, list(range(SHARDS)), shard_for_key)
    try:
        await store.start()
        yield store
    finally:
        await store.close()


async def _exists(database: str) -> bool:
    return bool(await fetchval(SYSTEM, "SELECT count(*) FROM pg_database WHERE datname = $1", database))


async def test_concurrent_starts_create_the_missing_shard_databases(tmp_path: Path) -> None:
    names = unique_names("ps_create", SHARDS)
    template = SYSTEM.dsn(names[0].removesuffix("_0") + "_{shard}")
    settings = settings_with(
        tmp_path, PostgresSettings(dsn_template=SecretStr(template), create_databases=True)
    )
    await _require_system_server()
    stores = [open_postgres_from_settings(settings, list(range(SHARDS)), shard_for_key) for _ in range(3)]
    try:
        await asyncio.gather(*(store.start() for store in stores))  # all race to CREATE DATABASE
        assert [await _exists(name) for name in names] == [True] * SHARDS
        user = user_on(1)
        await stores[0].create_user(user)
        assert await stores[2].get_user(user.id) == user
    finally:
        await asyncio.gather(*(store.close() for store in stores))
        drop_databases(SYSTEM, names)


async def _require_system_server() -> None:
    try:
        await fetchval(SYSTEM, "SELECT 1")
    except (OSError, asyncpg.PostgresError) as error:
        unavailable(f"PostgreSQL on {SYSTEM.host}:{SYSTEM.port} is unreachable: {error!r}")


async def test_a_missing_database_is_not_created_unless_asked(tmp_path: Path) -> None:
    (name,) = unique_names("ps_missing", 1)
    template = SYSTEM.dsn(name.removesuffix("_0") + "_{shard}")
    settings = settings_with(
        tmp_path, PostgresSettings(dsn_template=SecretStr(template), create_databases=False)
    )
    await _require_system_server()
    store = open_postgres_from_settings(settings, list(range(SHARDS)), shard_for_key)
    try:
        with pytest.raises(BackendUnavailable, match="does not exist"):
            await store.start()
    finally:
        await store.close()
    assert not await _exists(name)


async def test_a_restarted_shard_server_fails_fast_then_recovers_alone(tmp_path: Path) -> None:
    with throwaway_databases(SYSTEM, 1, "ps_restart") as (steady,), private_postmaster() as private:
        shards = (
            PostgresShardSettings(id=0, dsn=SecretStr(SYSTEM.dsn(steady))),
            PostgresShardSettings(id=1, dsn=SecretStr(private.server.dsn("photo_shard_1"))),
        )
        settings = settings_with(tmp_path, PostgresSettings(shards=shards, create_databases=True))
        async with started(settings) as store:
            stays, restarts = user_on(0), user_on(1)
            await store.create_user(stays)
            await store.create_user(restarts)

            await asyncio.to_thread(private.stop, "fast")
            for attempt in range(3):  # every call, not only the first, fails at once
                began = time.monotonic()
                with pytest.raises(BackendUnavailable):
                    await store.get_user(restarts.id)
                assert time.monotonic() - began < 2.0, f"attempt {attempt} was slow"
            with pytest.raises(BackendUnavailable):
                await store.create_user(user_on(1))
            assert await store.get_user(stays.id) == stays  # the other shard does not notice
            another = user_on(0)
            await store.create_user(another)
            assert await store.get_user(another.id) == another

            await asyncio.to_thread(private.start)
            assert await store.get_user(restarts.id) == restarts  # the first call after restart works
            late = user_on(1)
            await store.create_user(late)
            assert await store.get_user(late.id) == late


async def _terminate_pooled_backends(database: str) -> int:
    """Kill, server side, every session of ``database`` (as a server restart or a proxy would)."""
    return int(
        await fetchval(
            SYSTEM,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    )


async def test_pooled_connections_killed_by_the_server_are_replaced_without_failing_reads(
    tmp_path: Path,
) -> None:
    await _require_system_server()
    with throwaway_databases(SYSTEM, SHARDS, "ps_broken") as names:
        shards = [
            PostgresShardSettings(id=n, dsn=SecretStr(SYSTEM.dsn(name))) for n, name in enumerate(names)
        ]
        async with started(settings_with(tmp_path, PostgresSettings(shards=shards))) as store:
            user = user_on(0)
            await store.create_user(user)
            assert await store.list_photos(user.id, 10) == []  # the pool holds a connection now

            # Busy use: killed a moment ago, used at once (no idle ping): the read retries once.
            assert await _terminate_pooled_backends(names[0]) > 0
            assert await store.list_photos(user.id, 10) == []  # on the asyncpg driver directly
            assert await _terminate_pooled_backends(names[0]) > 0
            assert await store.get_user(user.id) == user  # through SQLAlchemy

            # Idle use: killed while idle past the ping threshold: the checkout ping replaces it.
            assert await _terminate_pooled_backends(names[0]) > 0
            await asyncio.sleep(PING_AFTER_IDLE_S + 0.2)
            assert await store.list_photos(user.id, 10) == []
            assert await store.get_user(user.id) == user
