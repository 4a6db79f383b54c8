"""A region's reads from its own replica of the buckets, on two real SeaweedFS clusters.

``home`` holds the buckets; ``weed filer.sync`` (SeaweedFS's own cross-cluster replication,
active-passive) copies everything to ``replica``, the region's copy, asynchronously. The store
under test writes home and reads the replica first, going home for what is not there yet or when
the replica is down. Where a read was served is proven by stopping the other server, and counted.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from photostore.blobs.regional import RegionalReads
from photostore.blobs.s3 import S3BlobStore
from photostore.errors import BackendUnavailable, BlobNotFound
from photostore.settings import S3Settings
from tests.support.engines.seaweedfs import SeaweedFS, seaweedfs_server, weed_binary

REPLICATION_TIMEOUT_S = 30.0


@dataclass
class Clusters:
    home: SeaweedFS
    replica: SeaweedFS


def _filer_sync(home: SeaweedFS, replica: SeaweedFS) -> subprocess.Popen[bytes]:
    with (home.data_dir / "filer-sync.log").open("ab") as log:
        return subprocess.Popen(
            [
                str(weed_binary()),
                "filer.sync",
                f"-a=127.0.0.1:{home.filer_port}",
                f"-b=127.0.0.1:{replica.filer_port}",
                "-isActivePassive",  # home -> replica only
                "-a.filerProxy",
                "-b.filerProxy",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.fixture(scope="module")
def clusters() -> Iterator[Clusters]:
    with seaweedfs_server() as home, seaweedfs_server() as replica:
        sync = _filer_sync(home, replica)
        try:
            yield Clusters(home, replica)
        finally:
            sync.kill()
            sync.wait(timeout=10)


def _replica_store(replica: SeaweedFS, bucket: str) -> S3BlobStore:
    return S3BlobStore.from_settings(
        S3Settings(endpoints=(replica.endpoint_settings("region"),), create_buckets=False), [bucket]
    )


@pytest.fixture
async def store(clusters: Clusters) -> AsyncIterator[RegionalReads]:
    bucket = f"photos-{secrets.token_hex(4)}"
    home = S3BlobStore.from_settings(clusters.home.s3_settings(), [bucket])
    await home.start()
    await home.put(bucket, "probe", b"x")  # the bucket and a first object, so the replica has it
    await _replicated(_replica_store(clusters.replica, bucket), bucket, "probe")
    regional = RegionalReads(home, _replica_store(clusters.replica, bucket), "region")
    await regional.start()
    try:
        yield regional
    finally:
        await regional.close()


async def _replicated(replica: S3BlobStore, bucket: str, key: str) -> None:
    """Wait until filer.sync has copied ``key`` to the replica."""
    deadline = time.monotonic() + REPLICATION_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            await replica.start()
            await replica.head(bucket, key)
            return
        except (BlobNotFound, BackendUnavailable):
            await asyncio.sleep(0.1)
    raise AssertionError(f"{key} not replicated within {REPLICATION_TIMEOUT_S} s")


async def test_replicated_objects_are_read_in_the_region_even_with_home_down(
    clusters: Clusters, store: RegionalReads
) -> None:
    bucket = store.buckets()[0]
    data = secrets.token_bytes(300_000)
    await store.put(bucket, "photos/2026/11/29/a", data, "image/jpeg")
    await _replicated(_replica_store(clusters.replica, bucket), bucket, "photos/2026/11/29/a")
    before = store.stats.from_region
    assert await store.get(bucket, "photos/2026/11/29/a") == data
    assert await store.get_range(bucket, "photos/2026/11/29/a", 1000, 2000) == data[1000:2000]
    assert store.stats.from_region == before + 2
    clusters.home.stop()
    try:
        assert await store.get(bucket, "photos/2026/11/29/a") == data  # only the replica can answer
        with pytest.raises(BackendUnavailable):
            await store.put(bucket, "photos/2026/11/29/b", b"y")  # writes never go to the replica
    finally:
        clusters.home.start()


async def test_an_object_not_replicated_yet_is_read_from_home(
    clusters: Clusters, store: RegionalReads
) -> None:
    bucket = store.buckets()[0]
    # Stop the replica's feed for a moment by writing while the replica server is down.
    clusters.replica.stop()
    try:
        data = secrets.token_bytes(50_000)
        await store.put(bucket, "photos/2026/11/29/fresh", data, "image/png")
        before = store.stats.from_home
        assert await store.get(bucket, "photos/2026/11/29/fresh") == data
        assert (await store.head(bucket, "photos/2026/11/29/fresh")).size == len(data)
        assert store.stats.from_home == before + 2  # the get and the head
    finally:
        clusters.replica.start()
    with pytest.raises(BlobNotFound):
        await store.get(bucket, "photos/2026/11/29/never-written")


async def test_a_replica_down_at_start_only_sends_reads_home(clusters: Clusters) -> None:
    bucket = f"photos-{secrets.token_hex(4)}"
    home = S3BlobStore.from_settings(clusters.home.s3_settings(), [bucket])
    clusters.replica.stop()
    try:
        regional = RegionalReads(home, _replica_store(clusters.replica, bucket), "region")
        await regional.start()  # does not fail: the replica is an optimisation, home is the truth
        await regional.put(bucket, "k", b"data")
        assert await regional.get(bucket, "k") == b"data"
        assert regional.stats.from_home == 1
        assert regional.stats.from_region == 0
        await regional.close()
    finally:
        clusters.replica.start()
