"""Shard rebalancing in one process on the embedded stores: add a shard, remove one, with writes
running meanwhile; every user ends on the shard the map names, with every row it had (uploads in
progress included)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from photostore import ids
from photostore.domain import ResumableUpload, User
from photostore.errors import BackendUnavailable, ShardMoveInProgress
from photostore.ids import placement_key_of
from photostore.metadata.schema import uploads as upload_rows
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.pipeline.upload import UploadService
from photostore.pipeline.users import create_user
from photostore.placement.shard_map import ShardMap
from photostore.rebalance.preview import key_loads
from photostore.rebalance.shard_mover import ShardRebalancer, start_plan
from photostore.rebalance.verify import check_shards
from photostore.rebalance.watcher import load_routing
from photostore.runtime import Runtime, open_runtime
from photostore.settings import load_settings
from tests.support import images
from tests.support.engines.availability import unavailable
from tests.support.engines.postgres import SYSTEM, execute, fetch

USERS = 24
PHOTOS_EACH = 3


@pytest.fixture(params=["sqlite", "postgres"])
async def runtime(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Runtime]:
    options: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "placement": {"shards": 2, "partition_power": 8},
    }
    prefix = f"ps_rebalance_{secrets.token_hex(4)}"
    if request.param == "postgres":
        dsn = SYSTEM.dsn(prefix + "_{shard}").replace("+asyncpg", "")
        options["metadata"] = {"backend": "postgres", "postgres": {"dsn_template": dsn}}
    try:
        opened = await open_runtime(load_settings(**options))
    except BackendUnavailable as error:
        unavailable(f"PostgreSQL for the rebalance tests: {error.detail}")
    try:
        yield opened
    finally:
        await opened.close()
        if request.param == "postgres":
            await _drop_databases(prefix)


async def _drop_databases(prefix: str) -> None:
    names = await fetch(SYSTEM, "SELECT datname FROM pg_database WHERE datname LIKE $1", prefix + "_%")
    await execute(SYSTEM, *(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)' for row in names))


def _store(runtime: Runtime) -> SqlMetadataStore:
    assert isinstance(runtime.metadata, SqlMetadataStore)
    return runtime.metadata


async def _populate(runtime: Runtime) -> dict[uuid.UUID, set[uuid.UUID]]:
    uploads = UploadService(
        runtime.metadata, runtime.blobs, runtime.bucket_map, runtime.settings.limits, runtime.notifier
    )
    library: dict[uuid.UUID, set[uuid.UUID]] = {}
    for n in range(USERS):
        user, _ = await create_user(runtime.metadata, f"user-{n}")
        library[user.id] = set()
        for p in range(PHOTOS_EACH):
            result = await uploads.upload(user.id, images.jpeg(64, 48, seed=n * 100 + p))
            library[user.id].add(result.photo.id)
    return library


def _upload_of(owner_id: uuid.UUID, offset: int) -> ResumableUpload:
    created = datetime.now(UTC).replace(microsecond=0)
    return ResumableUpload(
        id=ids.new_photo_id(owner_id),
        owner_id=owner_id,
        length=10 * 1024 * 1024,
        offset=offset,
        metadata="filename YS5qcGc=",
        filename="a.jpg",
        created_at=created,
        expires_at=created + timedelta(hours=1),
        storage={"multipart_id": f"m-{offset}", "parts": [[1, "etag", offset]], "tail_size": 0},
    )


async def _start_uploads(runtime: Runtime, users: list[uuid.UUID]) -> dict[uuid.UUID, ResumableUpload]:
    """One tus upload in progress per user, part-way through."""
    started = {user_id: _upload_of(user_id, 1000 * (n + 1)) for n, user_id in enumerate(users)}
    for upload in started.values():
        await runtime.metadata.create_upload(upload)
    return started


async def _assert_uploads_at_home(runtime: Runtime, started: dict[uuid.UUID, ResumableUpload]) -> None:
    """Every upload reads back whole through routing, and its row is on one shard only."""
    for user_id, upload in started.items():
        assert await runtime.metadata.get_upload(user_id, upload.id) == upload
    assert await _upload_rows(runtime) == len(started), "an upload row stayed on a shard it moved off"


async def _upload_rows(runtime: Runtime) -> int:
    store = _store(runtime)
    total = 0
    for shard_id in store.shard_ids():
        async with store.primary_engine(shard_id).connect() as conn:
            total += (await conn.execute(select(func.count()).select_from(upload_rows))).scalar_one()
    return total


class UploadChurn:
    """Resumable uploads created, appended to (under a lease) and ended while their rows move."""

    def __init__(self, runtime: Runtime, users: list[uuid.UUID]) -> None:
        self.runtime = runtime
        self.users = users
        self.live: dict[uuid.UUID, tuple[uuid.UUID, int]] = {}  # upload -> (owner, acknowledged offset)
        self.ended: list[tuple[uuid.UUID, uuid.UUID]] = []

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            # A refused write is refused whole: the row stays as the last acknowledged write left it.
            with contextlib.suppress(ShardMoveInProgress):
                await self._one(self.users[n % len(self.users)], end=n % 2 == 0)
            await asyncio.sleep(0)

    async def _one(self, user_id: uuid.UUID, *, end: bool) -> None:
        store = self.runtime.metadata
        upload = _upload_of(user_id, 0)
        await store.create_upload(upload)
        self.live[upload.id] = (user_id, 0)
        t = datetime.now(UTC)
        if await store.lease_upload(user_id, upload.id, 0, "w", t, t + timedelta(seconds=30)):
            storage = {"multipart_id": "m", "parts": [[1, "e", 600]], "tail_size": 0}
            assert await store.save_upload(user_id, upload.id, "w", 600, storage, None)
            self.live[upload.id] = (user_id, 600)
        if end:
            assert await store.delete_upload(user_id, upload.id) is not None
            self.ended.append((user_id, upload.id))
            del self.live[upload.id]

    async def check(self) -> None:
        """Each upload is where its last acknowledged write left it, on one shard only."""
        assert len(self.live) + len(self.ended) > 20, "too few uploads ran during the move to tell"
        for upload_id, (user_id, offset) in self.live.items():
            found = await self.runtime.metadata.get_upload(user_id, upload_id)
            assert found is not None
            assert found.offset == offset
        for user_id, upload_id in self.ended:
            assert await self.runtime.metadata.get_upload(user_id, upload_id) is None
        assert await _upload_rows(self.runtime) == len(self.live)


async def _library_now(runtime: Runtime, users: list[uuid.UUID]) -> dict[uuid.UUID, set[uuid.UUID]]:
    return {u: {p.id for p in await runtime.metadata.list_photos(u, 1000)} for u in users}


async def _problems(runtime: Runtime) -> list[object]:
    store = _store(runtime)
    routing = load_routing(runtime.placement, runtime.control)
    loads = [(s, await key_loads(store.primary_engine(s))) for s in store.shard_ids()]
    _, problems = check_shards(routing, loads)
    return list(problems)


async def _rebalance(runtime: Runtime, change: str) -> dict[str, object]:
    def target(current: ShardMap) -> ShardMap:
        if change == "add":
            return current.with_shard_added(current.next_shard_id)
        return current.with_shard_removed(0)

    start_plan(runtime.placement, runtime.control, target, change)
    await runtime.routing_watcher().refresh()
    mover = ShardRebalancer(
        _store(runtime), runtime.placement, runtime.control, plan_grace_s=0.3, cleanup_grace_s=0.3
    )
    summary = await mover.run()
    assert summary is not None
    await runtime.routing_watcher().refresh()
    return summary


async def test_adding_then_removing_a_shard_keeps_every_row_and_places_every_user(runtime: Runtime) -> None:
    library = await _populate(runtime)
    users = list(library)
    started = await _start_uploads(runtime, users)
    before = runtime.shard_map

    added = await _rebalance(runtime, "add")
    assert runtime.shard_map.shard_ids == (0, 1, 2)
    assert runtime.shard_map.version > before.version
    moved = [u for u in users if before.shard_for_id(u) != runtime.shard_map.shard_for_id(u)]
    assert moved, "the new shard got no user: the test's users are too few"
    assert all(runtime.shard_map.shard_for_id(u) == 2 for u in moved)
    assert added["keys"] == len({placement_key_of(u) for u in moved})
    assert await _library_now(runtime, users) == library
    assert await _problems(runtime) == []
    await _assert_uploads_at_home(runtime, started)

    await _rebalance(runtime, "remove")
    assert runtime.shard_map.shard_ids == (1, 2)
    assert await _library_now(runtime, users) == library
    assert await _problems(runtime) == []
    await _assert_uploads_at_home(runtime, started)
    for user_id in users:  # the keys survived too: a user can still sign in
        assert await runtime.metadata.get_user(user_id) is not None


async def test_writes_during_a_move_land_on_the_users_final_shard(runtime: Runtime) -> None:
    library = await _populate(runtime)
    users = list(library)
    uploads = UploadService(
        runtime.metadata, runtime.blobs, runtime.bucket_map, runtime.settings.limits, runtime.notifier
    )
    stop = asyncio.Event()
    refused = written = 0

    async def keep_writing(n: int) -> None:
        nonlocal refused, written
        seed = 10_000 * (n + 1)
        while not stop.is_set():
            user_id = users[seed % len(users)]
            try:
                result = await uploads.upload(user_id, images.jpeg(32, 24, seed=seed))
                library[user_id].add(result.photo.id)
                written += 1
            except ShardMoveInProgress:
                refused += 1  # a 503 with Retry-After: not acknowledged, so not owed
            seed += 1

    churn = UploadChurn(runtime, users)

    misses: list[tuple[uuid.UUID, uuid.UUID, float]] = []

    async def keep_reading() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            for user_id in users:
                for photo_id in list(library[user_id])[:5]:
                    if await runtime.metadata.get_photo(user_id, photo_id) is None:
                        misses.append((user_id, photo_id, loop.time()))
            await asyncio.sleep(0)

    async def keep_routing() -> None:
        watcher = runtime.routing_watcher()
        while not stop.is_set():
            await watcher.refresh()
            await asyncio.sleep(0.05)

    writers = [asyncio.create_task(keep_writing(n)) for n in range(3)]
    writers.append(asyncio.create_task(churn.run(stop)))
    routing = asyncio.create_task(keep_routing())
    reader = asyncio.create_task(keep_reading())
    try:
        await _rebalance(runtime, "add")
    finally:
        stop.set()
        await asyncio.gather(*writers, routing, reader)
    assert not misses, f"reads found no photo during the move: {misses[:5]}"
    assert written > 20, "too few writes ran during the move to tell anything"
    assert refused <= written // 10, f"{refused} writes refused of {written + refused}"
    assert await _library_now(runtime, users) == library
    assert await _problems(runtime) == []
    await churn.check()


async def test_a_user_created_in_a_moving_range_ends_on_its_new_shard(runtime: Runtime) -> None:
    await _populate(runtime)
    start_plan(runtime.placement, runtime.control, lambda m: m.with_shard_added(m.next_shard_id), "add")
    await runtime.routing_watcher().refresh()
    late: list[User] = []
    for n in range(40):  # some land in the ranges that move
        user, _ = await create_user(runtime.metadata, f"late-{n}")
        late.append(user)
    mover = ShardRebalancer(
        _store(runtime), runtime.placement, runtime.control, plan_grace_s=0.3, cleanup_grace_s=0.3
    )
    assert await mover.run() is not None
    await runtime.routing_watcher().refresh()
    assert await _problems(runtime) == []
    for user in late:
        assert await runtime.metadata.get_user(user.id) == user
