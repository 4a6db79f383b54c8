"""PoolConfig -> SQLAlchemy pool: the mapping, and that real engines behave as it promises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from photostore.metadata.engines import build_postgres_engine, build_sqlite_engine
from photostore.metadata.pooling import PoolPlan, plan_pool
from photostore.settings import PoolSettings


def test_defaults_follow_the_spec_pool_config() -> None:
    plan = plan_pool(PoolSettings())  # 20 open, 5 idle, 1 h lifetime, 10 min idle
    assert plan == PoolPlan(pool_size=5, max_overflow=15, pool_recycle=3600.0, idle_timeout_s=600.0)
    assert plan.max_open == 20
    assert plan.engine_kwargs() == {"pool_size": 5, "max_overflow": 15, "pool_recycle": 3600.0}


def test_idle_above_open_is_capped_like_database_sql() -> None:
    plan = plan_pool(PoolSettings(max_open_conns=3, max_idle_conns=10))
    assert (plan.pool_size, plan.max_overflow, plan.max_open) == (3, 0, 3)


def test_zero_idle_keeps_one_because_sqlalchemy_reads_zero_as_unlimited() -> None:
    plan = plan_pool(PoolSettings(max_open_conns=4, max_idle_conns=0))
    assert (plan.pool_size, plan.max_overflow, plan.max_open) == (1, 3, 4)


def test_postgres_engine_gets_the_same_mapping() -> None:
    # Building an engine opens no connection, so this needs no server.
    engine = build_postgres_engine(
        "postgresql://u:p@127.0.0.1:1/db", PoolSettings(max_open_conns=7, max_idle_conns=2)
    )
    try:
        assert engine.url.drivername == "postgresql+asyncpg"
        assert engine.pool.size() == 2  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == 5  # type: ignore[attr-defined]
        assert engine.pool._recycle == 3600.0
    finally:
        engine.sync_engine.dispose()


@pytest.fixture
async def make_engine(tmp_path: Path) -> AsyncIterator[Any]:
    engines: list[AsyncEngine] = []

    def make(pool: PoolSettings, **kwargs: Any) -> AsyncEngine:
        engine = build_sqlite_engine(tmp_path / f"pool{len(engines)}.db", pool, **kwargs)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.dispose()


async def _driver_connection(conn: AsyncConnection) -> Any:
    return (await conn.get_raw_connection()).driver_connection


async def test_max_open_is_a_hard_cap(make_engine: Any) -> None:
    engine = make_engine(PoolSettings(max_open_conns=2, max_idle_conns=1), pool_timeout_s=0.2)
    async with engine.connect(), engine.connect():
        with pytest.raises(exc.TimeoutError):
            async with engine.connect():
                pass


async def test_only_max_idle_connections_stay_open(make_engine: Any) -> None:
    engine = make_engine(PoolSettings(max_open_conns=4, max_idle_conns=2))
    async with AsyncExitStack() as stack:
        for _ in range(4):
            conn = await stack.enter_async_context(engine.connect())
            await conn.exec_driver_sql("SELECT 1")
        assert engine.pool.checkedout() == 4
    assert engine.pool.checkedin() == 2


async def test_lifetime_recycles_old_connections(make_engine: Any) -> None:
    engine = make_engine(PoolSettings(conn_max_lifetime_s=0.05, conn_max_idle_time_s=3600))
    async with engine.connect() as conn:
        first = await _driver_connection(conn)
    await asyncio.sleep(0.1)
    async with engine.connect() as conn:
        assert await _driver_connection(conn) is not first


async def test_idle_time_replaces_connections_idle_too_long(make_engine: Any) -> None:
    engine = make_engine(PoolSettings(conn_max_lifetime_s=3600, conn_max_idle_time_s=0.2))
    async with engine.connect() as conn:
        first = await _driver_connection(conn)
    async with engine.connect() as conn:  # back at once: still the same connection
        assert await _driver_connection(conn) is first
    await asyncio.sleep(0.3)
    async with engine.connect() as conn:
        fresh = await _driver_connection(conn)
        assert fresh is not first
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
