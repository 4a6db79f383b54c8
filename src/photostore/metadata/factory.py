"""Build a SqlMetadataStore from settings: the composition root's one call for metadata."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from sqlalchemy import URL

from photostore.metadata.engines import build_postgres_engine, build_sqlite_engine, sqlite_shard_path
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.settings import PoolSettings, Settings


def open_embedded_store(
    settings: Settings, shard_ids: Iterable[int], shard_for_key: Callable[[int], int]
) -> SqlMetadataStore:
    """A store over one SQLite file per shard in ``<data_dir>/shards/`` (the folder is created).

    Nothing is opened yet: call ``await store.start()`` to connect and migrate every shard.
    """
    folder = sqlite_shard_path(Path(settings.data_dir), 0).parent
    folder.mkdir(parents=True, exist_ok=True)
    meta = settings.metadata
    engines = {
        shard_id: build_sqlite_engine(
            sqlite_shard_path(Path(settings.data_dir), shard_id),
            meta.pool,
            synchronous=meta.sqlite_synchronous,
        )
        for shard_id in shard_ids
    }
    return SqlMetadataStore(engines, shard_for_key)


def open_postgres_store(
    dsns: Mapping[int, str | URL], pool: PoolSettings, shard_for_key: Callable[[int], int]
) -> SqlMetadataStore:
    """A store over one PostgreSQL database per shard (shard id -> DSN); call ``start()`` next."""
    engines = {shard_id: build_postgres_engine(dsn, pool) for shard_id, dsn in dsns.items()}
    return SqlMetadataStore(engines, shard_for_key)
