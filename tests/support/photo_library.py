"""A photo library for the bucket move tests, on real stores, seeded straight through the ports.

- :func:`open_stores` opens a MetadataStore and a BlobStore from a JSON-able spec, so a child process
  (``tests/engines/bucket_mover_child.py``) opens exactly what the test opened.
- :func:`library_fixtures` makes the fixtures of a module that runs its tests in both modes.
- :func:`seed_library` makes users and ready photos with two variants each; every object is random
  bytes in the bucket the map gives its photo (no image decoding: fast), and ids come from a seeded
  generator, so how a map splits the library is the same at every run.
- :func:`stored_objects` lists what the buckets hold; :func:`named_objects` what the live rows name.
  A library with no orphan has the two equal.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import random
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from photostore.blobs.local import LocalBlobStore
from photostore.blobs.paths import original_key, variant_key
from photostore.blobs.port import BlobStore
from photostore.blobs.s3 import S3BlobStore
from photostore.cache.memory import MemoryCache
from photostore.cache.tiered import TieredCache
from photostore.domain import Photo, PhotoChanges, PhotoStatus, User, Variant
from photostore.ids import make_id, placement_key_of
from photostore.metadata.engines import build_postgres_engine, build_sqlite_engine
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.pipeline.handlers import PipelineHandlers
from photostore.pipeline.notify import Notifier
from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.buckets import BucketMoveJournal
from photostore.settings import PoolSettings, S3EndpointSettings, S3Settings, load_settings
from tests.support.engines.availability import unavailable
from tests.support.engines.postgres import SYSTEM, execute, fetch, run_async, throwaway_databases
from tests.support.engines.seaweedfs import REGION, SeaweedFS, SeaweedFSUnavailable, start_seaweedfs
from tests.support.photo_rows import jpeg_row

VARIANTS = ("thumb", "preview")
BASE_MS = 1_780_000_000_000  # 2026-05-28: ids (and so keys) on known days
POOL = PoolSettings(max_open_conns=8, max_idle_conns=2)


# --- stores from a spec --------------------------------------------------------------------------


def shard_for_key(shards: int) -> Callable[[int], int]:
    return lambda key: key % shards


async def open_stores(spec: dict[str, Any]) -> tuple[SqlMetadataStore, BlobStore]:
    """``spec``: {"shards": [SQLite path or PostgreSQL DSN, ...], "buckets": [...], "blobs":
    {"kind": "local", "root": path} or {"kind": "s3", "url", "region", "access_key", "secret_key"}}."""
    engines = {}
    for shard_id, where in enumerate(spec["shards"]):
        if where.startswith("postgresql"):
            engines[shard_id] = build_postgres_engine(where, POOL)
        else:  # fsync off: these tests kill processes, not machines (the page cache survives)
            engines[shard_id] = build_sqlite_engine(Path(where), POOL, synchronous="NORMAL")
    metadata = SqlMetadataStore(engines, shard_for_key(len(engines)))
    blob_spec = spec["blobs"]
    blobs: BlobStore
    if blob_spec["kind"] == "local":
        blobs = LocalBlobStore(Path(blob_spec["root"]), spec["buckets"], fsync=False)
    else:
        endpoint = S3EndpointSettings(
            name="seaweedfs",
            url=blob_spec["url"],
            region=blob_spec["region"],
            access_key_id=blob_spec["access_key"],
            secret_access_key=SecretStr(blob_spec["secret_key"]),
            allow_http=True,
        )
        blobs = S3BlobStore.from_settings(S3Settings(endpoints=(endpoint,)), spec["buckets"])
    await metadata.start()
    await blobs.start()
    return metadata, blobs


@dataclass
class Library:
    """The stores a test runs on, the spec that reopens them, and the bucket map they start with."""

    spec: dict[str, Any]
    metadata: SqlMetadataStore
    blobs: BlobStore
    bucket_map: BucketMap

    def handlers(self) -> PipelineHandlers:
        """The pipeline's real handlers, for their photo.deleted cleanup (``remove_objects``)."""
        cache = TieredCache(MemoryCache(1 << 20, 10.0, 1 << 16))
        return PipelineHandlers(load_settings(), self.metadata, self.blobs, cache, Notifier())

    async def delete(self, photo: Photo) -> None:
        """Delete as the service does: the row, then the photo.deleted handler's object removal."""
        await self.metadata.delete_photo(photo.owner_id, photo.id, [])
        await self.handlers().remove_objects(photo.id)

    async def stored_objects(self) -> set[tuple[str, str]]:
        return await stored_objects(self.blobs, self.blobs.buckets())

    async def named_objects(self) -> set[tuple[str, str]]:
        return await named_objects(self.metadata)


@asynccontextmanager
async def open_library(spec: dict[str, Any], bucket_map: BucketMap) -> AsyncIterator[Library]:
    metadata, blobs = await open_stores(spec)
    try:
        yield Library(spec, metadata, blobs, bucket_map)
    finally:
        await blobs.close()
        await metadata.close()


def embedded_spec(folder: Path, buckets: Sequence[str], shards: int = 2) -> dict[str, Any]:
    """SQLite shard files and bucket folders under ``folder``."""
    (folder / "shards").mkdir(parents=True, exist_ok=True)
    return {
        "shards": [str(folder / "shards" / f"shard_{n}.db") for n in range(shards)],
        "buckets": list(buckets),
        "blobs": {"kind": "local", "root": str(folder / "buckets")},
    }


_server: SeaweedFS | None = None


def bucket_moves_seaweedfs() -> SeaweedFS:
    """A SeaweedFS of the bucket move tests' own: started on first use, killed at exit. They write
    to more buckets than the shared server's 16 volumes (one per bucket written) leave room for."""
    global _server
    if _server is None or not _server.running:
        folder = Path(tempfile.mkdtemp(prefix="photostore-bucket-moves-"))
        try:
            _server = start_seaweedfs(folder)
        except SeaweedFSUnavailable as exc:
            shutil.rmtree(folder, ignore_errors=True)
            unavailable(f"SeaweedFS: {exc}")
        atexit.register(_stop, _server)
    return _server


def _stop(server: SeaweedFS) -> None:
    server.stop()
    shutil.rmtree(server.data_dir, ignore_errors=True)


@contextmanager
def fresh_shard_databases(shards: int = 2) -> Iterator[list[str]]:
    """Fresh PostgreSQL shard databases, dropped at the end. Skips when PostgreSQL is missing, fails
    under CI=true."""
    with throwaway_databases(SYSTEM, count=shards, prefix="ps_bucket_moves") as names:
        yield names


def emptied(databases: Sequence[str]) -> list[str]:
    """``databases`` with every table emptied (a module's tests reuse them: creating is slow)."""

    async def truncate(database: str) -> None:
        tables = await fetch(
            SYSTEM,
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'",
            database=database,
        )
        if tables:
            names = ", ".join(f'"{row[0]}"' for row in tables)
            await execute(SYSTEM, f"TRUNCATE {names} RESTART IDENTITY CASCADE", database=database)

    for database in databases:
        run_async(lambda database=database: truncate(database))
    return list(databases)


def cluster_spec(databases: Sequence[str], buckets: Sequence[str]) -> dict[str, Any]:
    """The shard ``databases`` and buckets on the bucket move tests' SeaweedFS."""
    server = bucket_moves_seaweedfs()
    return {
        "shards": [SYSTEM.dsn(name) for name in databases],
        "buckets": list(buckets),
        "blobs": {
            "kind": "s3",
            "url": server.endpoint_url,
            "region": REGION,
            "access_key": server.admin.access_key,
            "secret_key": server.admin.secret_key,
        },
    }


def library_spec(
    request: pytest.FixtureRequest, mode: str, folder: Path, buckets: Sequence[str]
) -> dict[str, Any]:
    """The spec of an empty library in ``mode`` ("embedded" or "cluster"); the cluster one on the
    module's ``shard_databases`` fixture, emptied."""
    if mode == "embedded":
        return embedded_spec(folder, buckets)
    return cluster_spec(emptied(request.getfixturevalue("shard_databases")), buckets)


async def empty_buckets(blobs: BlobStore, buckets: Iterable[str]) -> None:
    """Delete every object of ``buckets`` (opened if need be): the cluster tests of a module reuse
    their bucket names (a volume per bucket is what a SeaweedFS runs out of)."""
    for bucket in buckets:
        await blobs.add_bucket(bucket)
        async for info in blobs.list(bucket):
            await blobs.delete(bucket, info.key)


def library_fixtures(start: BucketMap, buckets: Sequence[str]) -> tuple[Any, Any, Any]:
    """The ``shard_databases``, ``spec`` and ``library`` fixtures of a module testing both modes: a
    library on ``start`` (once embedded, once cluster); after each test every object of ``buckets``
    is deleted. Bind them in the module under those names::

        shard_databases, spec, library = library_fixtures(OLD, ADDED.buckets)
    """

    @pytest.fixture(scope="module")
    def shard_databases() -> Iterator[list[str]]:
        with fresh_shard_databases() as names:
            yield names

    @pytest.fixture(params=["embedded", "cluster"])
    def spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
        return library_spec(request, request.param, tmp_path, start.buckets)

    @pytest.fixture
    async def library(spec: dict[str, Any]) -> AsyncIterator[Library]:
        async with open_library(spec, start) as opened:
            try:
                yield opened
            finally:
                await empty_buckets(opened.blobs, buckets)

    return shard_databases, spec, library


# --- seeding -------------------------------------------------------------------------------------------


async def add_photo(
    library: Library, owner_id: uuid.UUID, rng: random.Random, *, ready: bool = True
) -> tuple[Photo, list[Variant]]:
    """One photo of ``owner_id`` with its original (and, when ``ready``, its variants) stored."""
    photo_id = make_id(placement_key_of(owner_id), BASE_MS + rng.randrange(86_400_000), rng.getrandbits(42))
    bucket = library.bucket_map.bucket_for(photo_id)
    now = datetime.now(UTC)
    data = rng.randbytes(rng.randrange(200, 3000))
    photo = jpeg_row(
        photo_id,
        owner_id,
        now,
        filename="photo.jpg",
        bucket=bucket,
        storage_path=original_key(photo_id),
        sha256=_sha256(data),
        bytes=len(data),
        width=64,
        height=48,
    )
    await library.blobs.put(bucket, photo.storage_path, data, photo.content_type)
    await library.metadata.insert_photo(photo, [])
    if ready:
        await make_ready(library, photo, rng)
    found = await library.metadata.photo_and_variants(photo_id)
    assert found is not None
    return found


async def make_ready(library: Library, photo: Photo, rng: random.Random) -> None:
    """Store the photo's variants in the bucket its row names and mark it ready, as the thumbnails
    handler does."""

    async def store(name: str, data: bytes) -> Variant:
        key = variant_key(photo.id, name, "WEBP")
        await library.blobs.put(photo.bucket, key, data, "image/webp")
        return Variant(
            photo_id=photo.id,
            name=name,
            bucket=photo.bucket,
            storage_path=key,
            format="WEBP",
            content_type="image/webp",
            width=32,
            height=24,
            bytes=len(data),
            sha256=_sha256(data),
            created_at=datetime.now(UTC),
        )

    contents = [(name, rng.randbytes(rng.randrange(100, 800))) for name in VARIANTS]
    variants = await asyncio.gather(*(store(name, data) for name, data in contents))
    changes = PhotoChanges(status=PhotoStatus.READY)
    await library.metadata.apply_photo_update("thumbnails", uuid.uuid4(), photo.id, changes, variants, [])


async def seed_library(
    library: Library, *, users: int = 4, photos_per_user: int = 10, seed: int = 0
) -> list[tuple[Photo, list[Variant]]]:
    """``users`` new users with ``photos_per_user`` ready photos each, users seeded side by side
    (each from its own generator, so the ids do not depend on the interleaving)."""

    async def seed_user(n: int) -> list[tuple[Photo, list[Variant]]]:
        rng = random.Random(seed * 1_000_003 + n)
        user = User(
            id=make_id(rng.getrandbits(32), BASE_MS, rng.getrandbits(42)),
            name=f"user-{n}",
            created_at=datetime.now(UTC),
        )
        await library.metadata.create_user(user)
        return [await add_photo(library, user.id, rng) for _ in range(photos_per_user)]

    per_user = await asyncio.gather(*(seed_user(n) for n in range(users)))
    return [photo for photos in per_user for photo in photos]


# --- what is where ----------------------------------------------------------------------------------


async def stored_objects(blobs: BlobStore, buckets: Iterable[str]) -> set[tuple[str, str]]:
    """(bucket, key) of every object in ``buckets``."""
    return {(bucket, info.key) for bucket in buckets async for info in blobs.list(bucket)}


async def named_objects(metadata: SqlMetadataStore) -> set[tuple[str, str]]:
    """(bucket, key) of every object a live photo's rows name."""
    named: set[tuple[str, str]] = set()
    for shard_id in metadata.shard_ids():
        after = None
        while page := await metadata.live_photos_after(shard_id, after, 100):
            after = page[-1][0].id
            for photo, variants in page:
                named.add((photo.bucket, photo.storage_path))
                named.update((v.bucket, v.storage_path) for v in variants)
    return named


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def assert_settled(library: Library, journal: Path) -> None:
    """After a mover's last run: every bucket holds exactly what the live rows name, nothing more,
    and the move journal is empty."""
    assert await library.stored_objects() == await library.named_objects()
    leftover = BucketMoveJournal(journal)
    leftover.open()
    try:
        assert await leftover.entries() == []
    finally:
        leftover.close()
