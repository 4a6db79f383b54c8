"""One AsyncEngine per metadata shard: embedded SQLite files or PostgreSQL databases.

SQLite engines (``sqlite+aiosqlite``), set on every new connection:

- ``journal_mode=WAL``: readers never block the writer nor each other.
- ``synchronous`` from settings; FULL (the default) fsyncs the WAL at every commit, so an
  acknowledged write survives power loss. NORMAL may lose the last commits on power loss (never
  corrupts).
- ``busy_timeout``: a writer in another process makes us wait, not fail at once.
- ``foreign_keys=ON``.
- The driver's own implicit BEGIN is switched off and the engine emits BEGIN itself (the SQLAlchemy
  recipe for correct SQLite transactions). The execution option :data:`SQLITE_BEGIN` picks the kind:
  ``DEFERRED`` by default, ``IMMEDIATE`` for writers (take the write lock first, so a read-then-write
  transaction never fails half-way with SQLITE_BUSY), or ``""`` for no transaction (single-statement
  reads, one round trip less).

PostgreSQL engines (``postgresql+asyncpg``): pre-ping on checkout (a restarted server costs one
failed ping, not a failed request) and a bounded connect timeout.

Both map the spec's PoolConfig through :mod:`photostore.metadata.pooling`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from sqlalchemy import URL, event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

from photostore.metadata.pooling import install_idle_timeout, plan_pool
from photostore.settings import PoolSettings

SQLITE_BEGIN = "photostore_sqlite_begin"
"""Execution option naming the BEGIN a SQLite transaction starts with: DEFERRED, IMMEDIATE or ""."""

Synchronous = Literal["FULL", "NORMAL"]


def sqlite_shard_path(data_dir: Path, shard_id: int) -> Path:
    """Where shard ``shard_id`` lives in the embedded layout: ``<data_dir>/shards/shard_<id>.db``."""
    return data_dir / "shards" / f"shard_{shard_id}.db"


def build_sqlite_engine(
    path: Path,
    pool: PoolSettings,
    *,
    synchronous: Synchronous = "FULL",
    busy_timeout_ms: int = 5000,
    pool_timeout_s: float = 30.0,
) -> AsyncEngine:
    """An engine on the SQLite file ``path`` (created on first connect; its folder must exist)."""
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
    plan = plan_pool(pool)
    engine = create_async_engine(
        URL.create("sqlite+aiosqlite", database=str(path)),
        poolclass=AsyncAdaptedQueuePool,
        pool_timeout=pool_timeout_s,
        **plan.engine_kwargs(),
    )
    sync_engine = engine.sync_engine
    install_idle_timeout(sync_engine, plan.idle_timeout_s)

    def on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # No implicit BEGIN from the driver: on_begin below emits it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching a fresh file to WAL may wait for another process.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    def on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        if mode:
            connection.exec_driver_sql(f"BEGIN {mode}")

    event.listen(sync_engine, "connect", on_connect)
    event.listen(sync_engine, "begin", on_begin)
    return engine


def postgres_url(dsn: str | URL) -> URL:
    """The DSN with the asyncpg driver (``postgresql://`` and ``postgres://`` are accepted)."""
    url = make_url(dsn)
    if url.drivername in ("postgresql", "postgres", "postgresql+asyncpg"):
        return url.set(drivername="postgresql+asyncpg")
    raise ValueError(f"not a PostgreSQL DSN: {url.render_as_string(hide_password=True)}")


# A pooled connection idle longer than this is pinged before use (see metadata/pooling.py).
PING_AFTER_IDLE_S = 1.0


def build_postgres_engine(
    dsn: str | URL,
    pool: PoolSettings,
    *,
    connect_timeout_s: float = 5.0,
    pool_timeout_s: float = 30.0,
    ping_after_idle_s: float | None = PING_AFTER_IDLE_S,
    application_name: str = "photostore",
) -> AsyncEngine:
    """An engine on one PostgreSQL shard database."""
    plan = plan_pool(pool)
    engine = create_async_engine(
        postgres_url(dsn),
        poolclass=AsyncAdaptedQueuePool,
        pool_timeout=pool_timeout_s,
        pool_pre_ping=False,  # see ping_after_idle_s
        connect_args={
            "timeout": connect_timeout_s,
            "server_settings": {"application_name": application_name},
        },
        **plan.engine_kwargs(),
    )
    install_idle_timeout(engine.sync_engine, plan.idle_timeout_s, ping_after_idle_s)
    return engine


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def write_options(engine: AsyncEngine) -> dict[str, Any]:
    """Execution options for a read-write transaction (SQLite: take the write lock at BEGIN)."""
    return {SQLITE_BEGIN: "IMMEDIATE"} if is_sqlite(engine) else {}


def single_read_options(engine: AsyncEngine) -> dict[str, Any]:
    """Execution options for one standalone SELECT: no BEGIN/ROLLBACK round trips around it."""
    return {SQLITE_BEGIN: ""} if is_sqlite(engine) else {"isolation_level": "AUTOCOMMIT"}
