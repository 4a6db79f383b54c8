"""Cluster mode for tests: one local cluster per test session, and a private corner of it (own
shard databases, own buckets, own data folder) for each server a test starts."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

from photostore.cluster.local import ClusterState, cluster_down, cluster_up
from photostore.errors import BackendUnavailable, ConfigError
from photostore.runtime import build_blobs
from photostore.settings import load_settings
from tests.support.engines.availability import unavailable

if TYPE_CHECKING:
    from tests.support.server import ServerProcess

POSTGRES_SERVER = "postgresql://postgres:postgres@127.0.0.1:5432"


@contextmanager
def local_cluster(folder: Path) -> Iterator[ClusterState]:
    """``photostore cluster up`` in ``folder`` for the duration; down afterwards."""
    try:
        state = cluster_up(folder, f"{POSTGRES_SERVER}/postgres", say=lambda _: None)
    except ConfigError as exc:
        unavailable(f"the local cluster could not start: {exc.detail}")
    try:
        yield state
    finally:
        cluster_down(folder, say=lambda _: None)


@dataclass(frozen=True)
class ClusterTenant:
    """Settings that give one server its own databases, buckets, topics and groups on the shared cluster."""

    settings_file: Path
    token: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "PHOTOSTORE_CONFIG": str(self.settings_file),
            "PHOTOSTORE_METADATA__POSTGRES__DSN_TEMPLATE": f"{POSTGRES_SERVER}/ps_{self.token}_{{shard}}",
            "PHOTOSTORE_PLACEMENT__BUCKET_PREFIX": self.bucket_prefix,
            # Topics and groups of their own: two tenants alive at once never take each other's events.
            "PHOTOSTORE_EVENTS__KAFKA__NAMESPACE": f"ps{self.token}",
        }

    @property
    def bucket_prefix(self) -> str:
        return f"ps{self.token}-"

    async def list_objects(self, extra_buckets: Sequence[str] = ()) -> set[str]:
        """Every object in the tenant's buckets and in ``extra_buckets`` (a cold tier), as bucket/key."""
        settings = load_settings(self.settings_file, placement={"bucket_prefix": self.bucket_prefix})
        names = [f"{self.bucket_prefix}{n}" for n in range(settings.placement.buckets)] + list(extra_buckets)
        store = build_blobs(settings, names)
        found: set[str] = set()
        await store.start()
        try:
            for bucket in names:
                try:
                    found.update({f"{bucket}/{info.key}" async for info in store.list(bucket)})
                except BackendUnavailable:
                    continue  # the server has not created this bucket (yet): nothing in it
        finally:
            await store.close()
        return found

    async def put_object(self, bucket: str, key: str, data: bytes) -> None:
        """Write ``data`` at ``bucket/key`` straight into the tenant's S3 (as bit rot would)."""
        settings = load_settings(self.settings_file, placement={"bucket_prefix": self.bucket_prefix})
        store = build_blobs(settings, [bucket])
        await store.start()
        try:
            await store.put(bucket, key, data)
        finally:
            await store.close()

    def drop_databases(self) -> None:
        async def drop() -> None:
            conn = await asyncpg.connect(f"{POSTGRES_SERVER}/postgres")
            try:
                names = await conn.fetch(
                    "SELECT datname FROM pg_database WHERE datname LIKE $1", f"ps_{self.token}_%"
                )
                for row in names:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())


def tenant_of(state: ClusterState) -> ClusterTenant:
    return ClusterTenant(state.settings_file, secrets.token_hex(4))


def server_in_mode(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    label: str,
    env: Callable[[ServerProcess], dict[str, str]] | dict[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """The body of a module's ``server`` fixture parametrized by mode ("embedded" or "cluster"):
    a started server (on its own corner of the local cluster in cluster mode), stopped and its
    databases dropped afterwards. ``env`` may depend on the server (its tenant's bucket prefix)."""
    from tests.support.server import ServerProcess

    proc = ServerProcess(tmp_path_factory.mktemp(f"{label}-{request.param}") / "data")
    if request.param == "cluster":
        proc.tenant = tenant_of(request.getfixturevalue("cluster_state"))
    proc.env = (env(proc) if callable(env) else env) or {}
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        if proc.tenant is not None:
            proc.tenant.drop_databases()
