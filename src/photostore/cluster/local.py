"""``photostore cluster up|status|down``: everything cluster mode needs, on loopback, for one person.

``up`` checks the local PostgreSQL (the shard databases are created by the service at its first
start), starts SeaweedFS, the Kafka-protocol broker and a Redis Cluster, and writes
``<folder>/photostore.toml``; ``photostore serve --config <folder>/photostore.toml`` then runs the
service on them. ``down`` stops exactly the processes ``up`` recorded in ``<folder>/state.json``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from photostore.cluster.engines import (
    Launched,
    S3Access,
    port_open,
    start_broker,
    start_redis_cluster,
    start_seaweedfs,
)
from photostore.errors import ConfigError

STATE_FILE = "state.json"
SETTINGS_FILE = "photostore.toml"
DEFAULT_POSTGRES = "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
# Kafka partitions for one machine: an eighth of the spec's 128/256/64 (16/32/8).
LOCAL_PARTITIONS_SCALE = 0.125


@dataclass(frozen=True)
class ClusterState:
    folder: Path
    processes: list[Launched]
    settings_file: Path

    def save(self) -> None:
        data = {
            "settings_file": str(self.settings_file),
            "processes": [p.to_json() for p in self.processes],
        }
        (self.folder / STATE_FILE).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, folder: Path) -> ClusterState | None:
        path = folder / STATE_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        processes = [Launched(**entry) for entry in data["processes"]]
        return cls(folder, processes, Path(data["settings_file"]))


def _check_postgres(dsn: str) -> None:
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(
            f"cannot reach PostgreSQL at {dsn.rsplit('@', 1)[-1]} ({exc}); start it, or pass --postgres DSN"
        ) from None


def _settings(
    folder: Path, postgres: str, s3: S3Access, broker: Launched, redis: list[Launched]
) -> dict[str, object]:
    server_dsn = postgres.rsplit("/", 1)[0]
    return {
        "data_dir": str(folder / "data"),
        "metadata": {
            "backend": "postgres",
            "postgres": {"dsn_template": f"{server_dsn}/photo_shard_{{shard}}"},
        },
        "blobs": {
            "backend": "s3",
            "s3": {
                "endpoints": [
                    {
                        "name": "local",
                        "url": s3.url,
                        "access_key_id": s3.access_key_id,
                        "secret_access_key": s3.secret_access_key,
                        "allow_http": True,
                    }
                ]
            },
        },
        "events": {
            "backend": "kafka",
            "kafka": {
                "bootstrap_servers": f"127.0.0.1:{broker.port}",
                "partitions_scale": LOCAL_PARTITIONS_SCALE,
            },
        },
        "cache": {
            "backend": "redis",
            "redis": {"mode": "cluster", "cluster_nodes": [f"127.0.0.1:{node.port}" for node in redis]},
        },
    }


def cluster_up(
    folder: Path, postgres: str = DEFAULT_POSTGRES, say: Callable[[str], None] = print
) -> ClusterState:
    """Start the engines and write the settings file; on any failure stop what was started."""
    folder = folder.resolve()
    existing = ClusterState.load(folder)
    if existing is not None and any(p.alive() for p in existing.processes):
        raise ConfigError(f"a cluster is already up in {folder}: `photostore cluster down` first")
    folder.mkdir(parents=True, exist_ok=True)
    started: list[Launched] = []
    try:
        say("checking PostgreSQL")
        _check_postgres(postgres)
        say("starting SeaweedFS (S3)")
        seaweed, s3 = start_seaweedfs(folder / "seaweedfs")
        started.append(seaweed)
        say("starting the Kafka-protocol broker")
        broker = start_broker(folder)
        started.append(broker)
        say("starting Redis Cluster (3 primaries + 3 replicas)")
        redis = start_redis_cluster(folder / "redis")
        started.extend(redis)
    except BaseException:
        for process in reversed(started):
            process.stop()
        raise
    settings_file = folder / SETTINGS_FILE
    settings_file.write_text(tomli_w.dumps(_settings(folder, postgres, s3, broker, redis)))
    settings_file.chmod(0o600)  # it holds the S3 secret
    state = ClusterState(folder, started, settings_file)
    state.save()
    return state


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    pid: int
    port: int
    alive: bool
    answering: bool


def cluster_status(folder: Path) -> tuple[ClusterState, list[ProcessStatus]]:
    state = ClusterState.load(folder.resolve())
    if state is None:
        raise ConfigError(f"no cluster in {folder.resolve()}: `photostore cluster up` starts one")
    rows = [ProcessStatus(p.name, p.pid, p.port, p.alive(), port_open(p.port)) for p in state.processes]
    return state, rows


def cluster_down(folder: Path, say: Callable[[str], None] = print) -> int:
    """Stop the processes ``up`` started; returns how many were still running."""
    state = ClusterState.load(folder.resolve())
    if state is None:
        raise ConfigError(f"no cluster in {folder.resolve()}")
    running = [p for p in state.processes if p.alive()]
    for process in running:
        say(f"stopping {process.name} (pid {process.pid})")
    # Side by side: each may take seconds to shut down, and they do not depend on each other.
    with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
        list(pool.map(Launched.stop, running))
    (state.folder / STATE_FILE).unlink()
    return len(running)
