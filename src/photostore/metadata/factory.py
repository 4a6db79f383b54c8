"""Build a SqlMetadataStore from settings: the composition root's one call for metadata."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine

from photostore.errors import ConfigError
from photostore.metadata.engines import (
    build_postgres_engine,
    build_sqlite_engine,
    postgres_url,
    sqlite_shard_path,
)
from photostore.metadata.pool_stats import describe_target
from photostore.metadata.replicas import ReadRouter, ReplicaSet
from photostore.metadata.selectors import make_selector
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.settings import PoolSettings, PostgresSettings, PostgresShardSettings, Settings

REPLICA_CONNECT_TIMEOUT_S = 2.0  # shorter than a primary's: a replica that does not answer is skipped


def open_embedded_store(
    settings: Settings, shard_ids: Iterable[int], shard_for_key: Callable[[int], int]
) -> SqlMetadataStore:
    """A store over one SQLite file per shard in ``<data_dir>/shards/`` (the folder is created).

    Nothing is opened yet: call ``await store.start()`` to connect and migrate every shard.
    """
    folder = sqlite_shard_path(Path(settings.data_dir), 0).parent
    folder.mkdir(parents=True, exist_ok=True)
    meta = settings.metadata

    def open_shard(shard_id: int) -> tuple[AsyncEngine, ReplicaSet | None]:
        path = sqlite_shard_path(Path(settings.data_dir), shard_id)
        return build_sqlite_engine(path, meta.pool, synchronous=meta.sqlite_synchronous), None

    engines = {shard_id: open_shard(shard_id)[0] for shard_id in shard_ids}
    return SqlMetadataStore(engines, shard_for_key, open_shard=open_shard)


def open_postgres_store(
    dsns: Mapping[int, str | URL], pool: PoolSettings, shard_for_key: Callable[[int], int]
) -> SqlMetadataStore:
    """A store over one PostgreSQL database per shard (shard id -> DSN); call ``start()`` next."""
    engines = {shard_id: build_postgres_engine(dsn, pool) for shard_id, dsn in dsns.items()}
    return SqlMetadataStore(engines, shard_for_key)


@dataclass(frozen=True, slots=True)
class ShardTargets:
    """Where one shard lives: its primary and its read replicas (asyncpg URLs)."""

    primary: URL
    replicas: tuple[URL, ...] = ()


def shard_targets(
    pg: PostgresSettings, shard_ids: Iterable[int], region_replicas: tuple[str, ...] = ()
) -> dict[int, ShardTargets]:
    """Each shard's primary and replicas: its entry in ``pg.shards``, else ``dsn_template`` with
    ``{shard}`` replaced by the shard id (and no replicas). ``region_replicas`` (templates with
    ``{shard}``: the read replicas in this process's region) replace the replicas of every shard.

    ConfigError when an entry names an unknown shard or repeats one, a DSN is not PostgreSQL, or two
    shards would share one database (their rows and outboxes would mix).
    """
    wanted = sorted(set(shard_ids))
    entries: dict[int, PostgresShardSettings] = {}
    for entry in pg.shards:
        if entry.id in entries:
            raise ConfigError(f"metadata.postgres.shards lists shard {entry.id} twice")
        if entry.id not in wanted:
            raise ConfigError(f"metadata.postgres.shards names shard {entry.id}; the shards are {wanted}")
        entries[entry.id] = entry
    template = pg.dsn_template.get_secret_value()
    targets: dict[int, ShardTargets] = {}
    for shard_id in wanted:
        own = entries.get(shard_id)
        if own is None:
            targets[shard_id] = ShardTargets(_url(template.replace("{shard}", str(shard_id))))
        else:
            replicas = tuple(_url(dsn.get_secret_value()) for dsn in own.replicas)
            targets[shard_id] = ShardTargets(_url(own.dsn.get_secret_value()), replicas)
    if region_replicas:
        targets = {
            shard_id: ShardTargets(
                target.primary,
                tuple(_url(template.replace("{shard}", str(shard_id))) for template in region_replicas),
            )
            for shard_id, target in targets.items()
        }
    _refuse_shared_databases(targets)
    return targets


def region_replica_templates(settings: Settings) -> tuple[str, ...]:
    """The replica DSN templates of the region this process serves (none outside a region)."""
    local = settings.regions.local
    if local is None:
        return ()
    return tuple(dsn.get_secret_value() for dsn in settings.regions.named(local).replica_dsn_templates)


def _url(dsn: str) -> URL:
    try:
        return postgres_url(dsn)
    except (ValueError, ArgumentError) as error:
        raise ConfigError(f"metadata.postgres: {error}") from None


def _refuse_shared_databases(targets: Mapping[int, ShardTargets]) -> None:
    seen: dict[str, int] = {}
    for shard_id, target in targets.items():
        where = describe_target(target.primary)
        if where in seen:
            raise ConfigError(
                f"shards {seen[where]} and {shard_id} would share the database {where}: "
                "put {shard} in metadata.postgres.dsn_template or give each shard its own dsn"
            )
        seen[where] = shard_id
    replicas: dict[str, int] = {}
    for shard_id, target in targets.items():
        for url in target.replicas:
            where = describe_target(url)
            if replicas.setdefault(where, shard_id) != shard_id:
                raise ConfigError(
                    f"shards {replicas[where]} and {shard_id} would read from the same replica database "
                    f"{where}: put {{shard}} in the region's replica_dsn_templates"
                )


def open_postgres_from_settings(
    settings: Settings, shard_ids: Iterable[int], shard_for_key: Callable[[int], int]
) -> SqlMetadataStore:
    """A store over one PostgreSQL database per shard, with the read replicas the settings list.

    Pools per server follow ``metadata.pool``; reads are routed as :mod:`.replicas` describes. Nothing
    is opened yet: ``await store.start()`` creates missing databases (``create_databases``), migrates
    every shard and starts the replica health checks.
    """
    meta = settings.metadata
    pg = meta.postgres
    local_replicas = region_replica_templates(settings)
    targets = shard_targets(pg, shard_ids, local_replicas)
    primaries = {
        shard_id: build_postgres_engine(target.primary, meta.pool) for shard_id, target in targets.items()
    }
    replica_sets = [
        _replica_set(settings, shard_id, primaries[shard_id], target) for shard_id, target in targets.items()
    ]
    reads = ReadRouter(replica_sets, read_your_writes_s=pg.read_your_writes_s)

    def open_shard(shard_id: int) -> tuple[AsyncEngine, ReplicaSet | None]:
        # A shard a rebalance adds: its entry in settings, else the DSN template.
        target = shard_targets(pg, [*targets, shard_id], local_replicas)[shard_id]
        primary = build_postgres_engine(target.primary, meta.pool)
        return primary, _replica_set(settings, shard_id, primary, target)

    return SqlMetadataStore(
        primaries, shard_for_key, reads=reads, create_databases=pg.create_databases, open_shard=open_shard
    )


def _replica_set(settings: Settings, shard_id: int, primary: AsyncEngine, target: ShardTargets) -> ReplicaSet:
    meta = settings.metadata
    pg = meta.postgres
    return ReplicaSet(
        shard_id,
        primary,
        [
            build_postgres_engine(
                url,
                meta.pool,
                connect_timeout_s=REPLICA_CONNECT_TIMEOUT_S,
                application_name="photostore-replica",
            )
            for url in target.replicas
        ],
        make_selector(pg.replica_selector, pg.latency_alpha),
        check_interval_s=pg.replica_check_interval_s,
    )
