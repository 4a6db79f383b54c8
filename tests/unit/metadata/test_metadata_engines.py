"""SQLite shard engines: the durability and locking settings every connection gets."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import exc, text

from photostore.metadata.engines import (
    SQLITE_BEGIN,
    build_sqlite_engine,
    postgres_url,
    sqlite_shard_path,
)
from photostore.settings import PoolSettings


def test_shard_files_follow_the_embedded_layout(tmp_path: Path) -> None:
    assert sqlite_shard_path(tmp_path, 3) == tmp_path / "shards" / "shard_3.db"


@pytest.mark.parametrize(("synchronous", "level"), [("FULL", 2), ("NORMAL", 1)])
async def test_every_connection_gets_the_pragmas(tmp_path: Path, synchronous: str, level: int) -> None:
    engine = build_sqlite_engine(
        tmp_path / "s.db",
        PoolSettings(),
        synchronous=synchronous,  # type: ignore[arg-type]
        busy_timeout_ms=1234,
    )
    try:
        async with engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        assert pragmas == {
            "journal_mode": "wal",
            "synchronous": level,
            "foreign_keys": 1,
            "busy_timeout": 1234,
        }
    finally:
        await engine.dispose()


def test_unknown_synchronous_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        build_sqlite_engine(tmp_path / "s.db", PoolSettings(), synchronous="OFF")  # type: ignore[arg-type]


async def test_writers_begin_immediate_and_single_reads_begin_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    writer, other = build_sqlite_engine(path, PoolSettings()), build_sqlite_engine(path, PoolSettings())
    try:
        async with writer.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        async with writer.connect() as conn:
            await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                await conn.execute(text("SELECT count(*) FROM t"))  # a read, yet the write lock is held
                async with other.connect() as reader:
                    # WAL: a reader outside any transaction still reads while the writer holds the lock.
                    await reader.execution_options(**{SQLITE_BEGIN: ""})
                    assert (await reader.execute(text("SELECT count(*) FROM t"))).scalar() == 0
                    await reader.exec_driver_sql("PRAGMA busy_timeout = 0")
                    with pytest.raises(exc.OperationalError, match="locked"):
                        await reader.exec_driver_sql("INSERT INTO t VALUES (1)")
    finally:
        await writer.dispose()
        await other.dispose()


def test_postgres_dsns_get_the_asyncpg_driver() -> None:
    assert postgres_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert postgres_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    with pytest.raises(ValueError, match="PostgreSQL"):
        postgres_url("sqlite:///x.db")
