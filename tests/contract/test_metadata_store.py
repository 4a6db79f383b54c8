"""The MetadataStore contract: every guarantee in photostore.metadata.port, on every backend.

Backends: ``sqlite`` (a temp folder, 4 shard files) and ``postgres`` (the server on 127.0.0.1:5432,
4 throwaway databases per test module). When PostgreSQL is unreachable its tests are skipped, or,
under ``CI=true``, they fail: CI must never pass without having run them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from photostore import ids
from photostore.domain import (
    AccessBand,
    ApiKey,
    ApplyResult,
    NewEvent,
    Photo,
    PhotoChanges,
    PhotoStatus,
    ResumableUpload,
    Scope,
    User,
    Variant,
)
from photostore.errors import BackendUnavailable, ConfigError, Conflict, IdempotencyKeyReused, UnknownShard
from photostore.metadata.engines import build_postgres_engine, build_sqlite_engine, sqlite_shard_path
from photostore.metadata.migrate import current_revision, head_revision, migrate
from photostore.metadata.schema import metadata, outbox, photos, processed_events, users
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.settings import PoolSettings
from tests.support.photo_rows import jpeg_row

SHARDS = 4
# PS_TEST_PG_HOST / PS_TEST_PG_PORT point the suite elsewhere (not PHOTOSTORE_*: settings owns those).
PG = {
    "host": os.environ.get("PS_TEST_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("PS_TEST_PG_PORT", "5432")),
    "user": "postgres",
    "password": "postgres",
}
POOL = PoolSettings(max_open_conns=12, max_idle_conns=2)  # small: the server is shared with others
TABLES = "users, api_keys, photos, variants, outbox, processed_events, uploads"


def shard_for_key(key: int) -> int:
    return key % SHARDS


# --- PostgreSQL databases ---------------------------------------------------------------------


def _in_fresh_loop(make: Callable[[], Awaitable[Any]]) -> Any:
    """Run admin coroutines on their own loop and thread, apart from pytest-asyncio's loops."""

    async def run() -> Any:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


async def _admin(*statements: str) -> None:
    conn = await asyncpg.connect(database="postgres", timeout=3, **PG)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _dsn(database: str) -> str:
    return f"postgresql+asyncpg://{PG['user']}:{PG['password']}@{PG['host']}:{PG['port']}/{database}"


@pytest.fixture(scope="module")
def pg_databases() -> Iterator[list[str]]:
    """Four fresh shard databases for this module, dropped afterwards."""
    names = [f"ps_contract_{secrets.token_hex(4)}_{n}" for n in range(SHARDS)]
    try:
        _in_fresh_loop(lambda: _admin(*(f'CREATE DATABASE "{name}"' for name in names)))
    except (OSError, asyncpg.PostgresError) as error:
        message = f"PostgreSQL on {PG['host']}:{PG['port']} is unreachable: {error!r}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: the postgres contract tests must run)")
        pytest.skip(message)
    yield names
    _in_fresh_loop(lambda: _admin(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names)))


# --- the backend under test -------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    engine_for: Callable[[int], AsyncEngine]  # a new engine on shard n
    fresh_database: Callable[[], Awaitable[tuple[Callable[[], AsyncEngine], Callable[[], Awaitable[None]]]]]
    unreachable_engine: Callable[[], AsyncEngine]


def _sqlite_backend(folder: Path) -> Backend:
    (folder / "shards").mkdir()

    async def fresh() -> tuple[Callable[[], AsyncEngine], Callable[[], Awaitable[None]]]:
        path = folder / f"fresh_{secrets.token_hex(4)}.db"

        async def drop() -> None:
            return None

        return (lambda: build_sqlite_engine(path, POOL)), drop

    return Backend(
        name="sqlite",
        engine_for=lambda n: build_sqlite_engine(sqlite_shard_path(folder, n), POOL),
        fresh_database=fresh,
        unreachable_engine=lambda: build_sqlite_engine(folder / "missing" / "shard.db", POOL),
    )


def _postgres_backend(names: list[str]) -> Backend:
    async def fresh() -> tuple[Callable[[], AsyncEngine], Callable[[], Awaitable[None]]]:
        name = f"ps_contract_{secrets.token_hex(4)}_fresh"
        await _admin(f'CREATE DATABASE "{name}"')

        async def drop() -> None:
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        return (lambda: build_postgres_engine(_dsn(name), POOL)), drop

    def unreachable() -> AsyncEngine:
        return build_postgres_engine(
            f"postgresql+asyncpg://postgres@127.0.0.1:{_free_port()}/x", POOL, connect_timeout_s=2
        )

    return Backend(
        name="postgres",
        engine_for=lambda n: build_postgres_engine(_dsn(names[n]), POOL),
        fresh_database=fresh,
        unreachable_engine=unreachable,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return _sqlite_backend(tmp_path)
    return _postgres_backend(request.getfixturevalue("pg_databases"))


@dataclass
class Env:
    store: SqlMetadataStore
    engines: dict[int, AsyncEngine]  # the very engines the store runs on, to look under it
    backend: Backend


@pytest.fixture
async def env(backend: Backend) -> AsyncIterator[Env]:
    engines = {n: backend.engine_for(n) for n in range(SHARDS)}
    store = SqlMetadataStore(engines, shard_for_key)
    try:
        await store.start()
        if backend.name == "postgres":  # the databases live for the module: empty them per test
            for engine in engines.values():
                async with engine.begin() as conn:
                    await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY"))
        yield Env(store, engines, backend)
    finally:
        await store.close()


# --- records ----------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def user_on(shard: int | None = None, name: str = "ada") -> User:
    """A new user, on ``shard`` when given."""
    while True:
        user_id = ids.new_user_id()
        if shard is None or shard_for_key(ids.placement_key_of(user_id)) == shard:
            return User(id=user_id, name=name, created_at=now())


def neighbour_of(user: User) -> User:
    """Another user with the same placement key: same shard, different owner."""
    return User(id=ids.make_id(ids.placement_key_of(user.id)), name="bob", created_at=now())


def photo_of(owner: User, *, sha: str | None = None, unix_ms: int | None = None, size: int = 1000) -> Photo:
    photo_id = ids.make_id(ids.placement_key_of(owner.id), unix_ms=unix_ms)
    stamp = now()
    path = f"photos/2025/01/01/{photo_id}"
    return jpeg_row(
        photo_id, owner.id, stamp, filename="IMG_0001.jpg", storage_path=path, sha256=sha, bytes=size
    )


def uploaded(photo: Photo) -> list[NewEvent]:
    return [NewEvent(topic="photo-upload", key=str(photo.id), payload={"photo_id": str(photo.id)})]


def variant_of(photo: Photo, name: str, width: int) -> Variant:
    return Variant(
        photo_id=photo.id,
        name=name,
        bucket=photo.bucket,
        storage_path=f"variants/{photo.id}/{name}",
        format="WEBP",
        content_type="image/webp",
        width=width,
        height=width * 3 // 4,
        bytes=width * 10,
        sha256=secrets.token_hex(32),
        created_at=now(),
    )


async def count(engine: AsyncEngine, table: Any, *where: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def outbox_size(env: Env) -> int:
    return sum([await count(engine, outbox) for engine in env.engines.values()])


async def new_user(env: Env, shard: int | None = None) -> User:
    user = user_on(shard)
    await env.store.create_user(user)
    return user


# --- users and keys ---------------------------------------------------------------------------


async def test_user_round_trip(env: Env) -> None:
    user = await new_user(env)
    assert await env.store.get_user(user.id) == user
    assert await env.store.get_user(ids.new_user_id()) is None
    with pytest.raises(Conflict):
        await env.store.create_user(user)


async def test_api_key_round_trip_and_revocation(env: Env) -> None:
    user = await new_user(env)
    key = ApiKey(
        key_id="k_" + secrets.token_hex(8),
        user_id=user.id,
        secret_sha256=secrets.token_bytes(32),
        scopes=frozenset({Scope.READ, Scope.WRITE}),
        created_at=now(),
    )
    await env.store.add_api_key(key)
    assert await env.store.get_api_key(user.id, key.key_id) == key
    assert await env.store.get_api_key(neighbour_of(user).id, key.key_id) is None
    assert await env.store.get_api_key(user.id, "k_unknown") is None

    assert await env.store.revoke_api_key(user.id, key.key_id) is True
    revoked = await env.store.get_api_key(user.id, key.key_id)
    assert revoked is not None
    assert revoked.revoked_at is not None
    assert revoked.revoked_at.tzinfo is UTC
    assert await env.store.revoke_api_key(user.id, key.key_id) is False  # already revoked
    assert await env.store.revoke_api_key(user.id, "k_unknown") is False


async def test_a_users_keys_are_listed_oldest_first_revoked_included(env: Env) -> None:
    user, other = await new_user(env), await new_user(env)
    t0 = now()

    def key_of(owner: User, minutes: int) -> ApiKey:
        return ApiKey(
            key_id="k_" + secrets.token_hex(8),
            user_id=owner.id,
            secret_sha256=secrets.token_bytes(32),
            scopes=frozenset({Scope.READ}),
            created_at=t0 + timedelta(minutes=minutes),
        )

    newer, older, theirs = key_of(user, 5), key_of(user, 1), key_of(other, 0)
    for key in (newer, older, theirs):
        await env.store.add_api_key(key)
    await env.store.revoke_api_key(user.id, older.key_id)
    listed = await env.store.list_api_keys(user.id)
    assert [k.key_id for k in listed] == [older.key_id, newer.key_id]
    assert listed[0].revoked_at is not None
    assert listed[1] == newer
    assert await env.store.list_api_keys(neighbour_of(user).id) == []


async def test_rows_land_on_the_shard_the_resolver_gives(env: Env) -> None:
    for shard in range(SHARDS):
        user = await new_user(env, shard)
        photo = photo_of(user)
        await env.store.insert_photo(photo, uploaded(photo))
        for n, engine in env.engines.items():
            expected = 1 if n == shard else 0
            assert await count(engine, users, users.c.id == user.id) == expected
            assert await count(engine, photos, photos.c.id == photo.id) == expected
        assert [record.event.key for record in await env.store.pending_outbox(shard, 10)] == [str(photo.id)]


async def test_unknown_shard_is_an_error() -> None:
    store = SqlMetadataStore({}, shard_for_key)
    with pytest.raises(UnknownShard):
        await store.get_user(ids.new_user_id())
    await store.close()


# --- photos -----------------------------------------------------------------------------------


async def test_insert_photo_writes_row_and_outbox_together(env: Env) -> None:
    user = await new_user(env)
    photo = replace(photo_of(user), exif={"Make": "Canon", "GPS": {"lat": 1.5}}, placeholder="LKO2?U%2")
    events = [*uploaded(photo), NewEvent(topic="photo-processing", key=str(photo.id), payload={"n": 2})]
    stored, created = await env.store.insert_photo(photo, events)
    assert created
    assert stored == photo
    assert await env.store.get_photo(user.id, photo.id) == photo
    assert await env.store.get_photo_by_sha256(user.id, photo.sha256) == photo
    pending = await env.store.pending_outbox(env.store.shard_of(user.id), 10)
    assert [record.event for record in pending] == events


async def test_insert_photo_is_atomic(env: Env) -> None:
    user = await new_user(env)
    photo = photo_of(user)
    broken = NewEvent(topic=cast(str, None), key="k", payload={})  # NOT NULL breaks after the row
    with pytest.raises(Conflict):
        await env.store.insert_photo(photo, [*uploaded(photo), broken])
    assert await env.store.get_photo_any_state(photo.id) is None
    assert await outbox_size(env) == 0


async def test_photo_id_must_carry_its_owners_placement_key(env: Env) -> None:
    user = await new_user(env)
    stranger = replace(photo_of(user), id=ids.new_photo_id(ids.new_user_id()))
    with pytest.raises(ValueError, match="placement key"):
        await env.store.insert_photo(stranger, [])


async def test_same_bytes_return_the_existing_photo_and_write_nothing(env: Env) -> None:
    user = await new_user(env)
    first = photo_of(user)
    await env.store.insert_photo(first, uploaded(first))
    again = photo_of(user, sha=first.sha256)
    stored, created = await env.store.insert_photo(again, uploaded(again))
    assert not created
    assert stored == first
    assert await env.store.get_photo_any_state(again.id) is None
    assert await outbox_size(env) == 1
    # Dedup is per owner: someone else may upload the same bytes.
    other = await new_user(env)
    _, created = await env.store.insert_photo(photo_of(other, sha=first.sha256), [])
    assert created


async def test_idempotency_key_finds_the_first_upload_and_refuses_other_bytes(env: Env) -> None:
    user = await new_user(env)
    first = replace(photo_of(user), idempotency_key="retry-1")
    await env.store.insert_photo(first, uploaded(first))
    assert await env.store.get_photo_by_idempotency_key(user.id, "retry-1") == first
    assert await env.store.get_photo_by_idempotency_key(user.id, "other") is None
    clash = replace(photo_of(user), idempotency_key="retry-1")  # other bytes, same key
    with pytest.raises(IdempotencyKeyReused):
        await env.store.insert_photo(clash, uploaded(clash))
    assert await env.store.get_photo_any_state(clash.id) is None
    assert await outbox_size(env) == 1
    # The key is free again once its photo is deleted, and keys are per owner.
    await env.store.delete_photo(user.id, first.id, [])
    reuse = replace(photo_of(user), idempotency_key="retry-1")
    assert (await env.store.insert_photo(reuse, []))[1]
    other = await new_user(env)
    assert (await env.store.insert_photo(replace(photo_of(other), idempotency_key="retry-1"), []))[1]


async def test_concurrent_inserts_of_the_same_bytes_store_one_photo(env: Env) -> None:
    user = await new_user(env)
    sha = secrets.token_hex(32)
    candidates = [photo_of(user, sha=sha) for _ in range(10)]
    results = await asyncio.gather(*(env.store.insert_photo(p, uploaded(p)) for p in candidates))
    winners = [photo for photo, created in results if created]
    assert len(winners) == 1
    assert {photo.id for photo, _ in results} == {winners[0].id}
    assert [p.id for p in await env.store.list_photos(user.id, 100)] == [winners[0].id]
    pending = await env.store.pending_outbox(env.store.shard_of(user.id), 100)
    assert [record.event.key for record in pending] == [str(winners[0].id)]


async def test_get_photo_of_another_owner_is_none(env: Env) -> None:
    owner = await new_user(env)
    neighbour = neighbour_of(owner)  # same shard, so only the owner check can say no
    await env.store.create_user(neighbour)
    stranger = await new_user(env, (env.store.shard_of(owner.id) + 1) % SHARDS)
    photo = photo_of(owner)
    await env.store.insert_photo(photo, [])
    for other in (neighbour, stranger):
        assert await env.store.get_photo(other.id, photo.id) is None
        assert await env.store.get_photo_by_sha256(other.id, photo.sha256) is None
        assert await env.store.list_photos(other.id, 10) == []
        assert await env.store.delete_photo(other.id, photo.id, []) is None
    assert await env.store.get_photo(owner.id, photo.id) == photo


async def test_keyset_pages_are_newest_first_without_gaps_or_duplicates(env: Env) -> None:
    owner = await new_user(env)
    neighbour = neighbour_of(owner)
    await env.store.create_user(neighbour)
    start = ids.unix_ms_of(owner.id)
    # Several photos per millisecond: the random part of the id decides among them.
    mine = [photo_of(owner, unix_ms=start + i // 3) for i in range(47)]
    for photo in mine:
        await env.store.insert_photo(photo, [])
    await env.store.insert_photo(photo_of(neighbour, unix_ms=start + 5), [])
    gone = mine[20]
    await env.store.delete_photo(owner.id, gone.id, [])

    pages: list[list[uuid.UUID]] = []
    before: uuid.UUID | None = None
    while True:
        page = [p.id for p in await env.store.list_photos(owner.id, 10, before)]
        if not page:
            break
        pages.append(page)
        before = page[-1]
    expected = sorted((p.id for p in mine if p is not gone), key=lambda i: i.int, reverse=True)
    assert [len(page) for page in pages] == [10, 10, 10, 10, 6]
    assert [photo_id for page in pages for photo_id in page] == expected
    assert await env.store.list_photos(owner.id, 0) == []


async def test_delete_hides_the_photo_and_frees_its_bytes(env: Env) -> None:
    user = await new_user(env)
    photo = photo_of(user)
    await env.store.insert_photo(photo, uploaded(photo))
    deleted_event = NewEvent(topic="photo-upload", key=str(photo.id), payload={"deleted": True})
    deleted = await env.store.delete_photo(user.id, photo.id, [deleted_event])
    assert deleted is not None
    assert deleted.status is PhotoStatus.DELETED
    assert deleted.deleted_at is not None
    assert deleted.deleted_at.tzinfo is UTC
    assert await env.store.get_photo(user.id, photo.id) is None
    assert await env.store.get_photo_by_sha256(user.id, photo.sha256) is None
    assert await env.store.list_photos(user.id, 10) == []
    assert await env.store.get_photo_any_state(photo.id) == deleted
    pending = await env.store.pending_outbox(env.store.shard_of(user.id), 10)
    assert [record.event for record in pending][-1] == deleted_event

    assert await env.store.delete_photo(user.id, photo.id, uploaded(photo)) is None
    assert await outbox_size(env) == 2  # the second delete wrote nothing

    again = photo_of(user, sha=photo.sha256)
    stored, created = await env.store.insert_photo(again, [])
    assert created
    assert stored.id == again.id != photo.id


# --- worker updates ---------------------------------------------------------------------------


async def test_apply_photo_update_applies_once(env: Env) -> None:
    user = await new_user(env)
    photo = photo_of(user)
    await env.store.insert_photo(photo, [])
    event_id = uuid.uuid4()
    taken = datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    changes = PhotoChanges(width=4000, taken_at=taken, exif={"Model": "X"}, placeholder="L00000")
    thumb = NewEvent(topic="thumbnail-generation", key=str(photo.id), payload={"sizes": ["thumb"]})

    result = await env.store.apply_photo_update("processing", event_id, photo.id, changes, [], [thumb])
    assert result is ApplyResult.APPLIED
    applied = await env.store.get_photo(user.id, photo.id)
    assert applied is not None
    assert (applied.width, applied.height) == (4000, 480)
    assert (applied.exif, applied.placeholder) == ({"Model": "X"}, "L00000")
    assert applied.taken_at == taken
    assert applied.taken_at is not None
    assert applied.taken_at.tzinfo is UTC
    assert applied.status is PhotoStatus.PROCESSING  # None leaves a column as it is
    assert applied.updated_at > photo.updated_at

    redelivered = PhotoChanges(width=1, status=PhotoStatus.READY)
    result = await env.store.apply_photo_update(
        "processing", event_id, photo.id, redelivered, [variant_of(photo, "thumb", 256)], [thumb]
    )
    assert result is ApplyResult.ALREADY_PROCESSED
    assert await env.store.get_photo(user.id, photo.id) == applied
    assert await env.store.list_variants(photo.id) == []
    assert await outbox_size(env) == 1

    # Idempotency is per consumer: another consumer may handle the same event.
    result = await env.store.apply_photo_update("thumbnails", event_id, photo.id, redelivered, [], [])
    assert result is ApplyResult.APPLIED


async def test_concurrent_redeliveries_apply_once(env: Env) -> None:
    user = await new_user(env)
    photo = photo_of(user)
    await env.store.insert_photo(photo, [])
    event_id = uuid.uuid4()
    job = NewEvent(topic="thumbnail-generation", key=str(photo.id), payload={})
    results = await asyncio.gather(
        *(
            env.store.apply_photo_update("processing", event_id, photo.id, PhotoChanges(width=i), [], [job])
            for i in range(1, 6)
        )
    )
    assert sorted(r.value for r in results) == ["already_processed"] * 4 + ["applied"]
    assert await outbox_size(env) == 1


async def test_apply_photo_update_on_a_gone_photo_changes_nothing(env: Env) -> None:
    user = await new_user(env)
    photo = photo_of(user)
    await env.store.insert_photo(photo, [])
    await env.store.delete_photo(user.id, photo.id, [])
    before = await env.store.get_photo_any_state(photo.id)
    event = NewEvent(topic="thumbnail-generation", key=str(photo.id), payload={})
    unknown = replace(photo, id=ids.new_photo_id(user.id))
    for target in (photo, unknown):
        result = await env.store.apply_photo_update(
            "processing",
            uuid.uuid4(),
            target.id,
            PhotoChanges(width=1),
            [variant_of(target, "t", 9)],
            [event],
        )
        assert result is ApplyResult.PHOTO_GONE
    assert await env.store.get_photo_any_state(photo.id) == before
    assert await env.store.list_variants(photo.id) == []
    assert await outbox_size(env) == 0
    shard = env.engines[env.store.shard_of(user.id)]
    assert await count(shard, processed_events) == 0


async def test_stalled_photos_are_the_live_processing_ones_unchanged_since(env: Env) -> None:
    user = await new_user(env)
    shard = env.store.shard_of(user.id)
    old = now() - timedelta(hours=1)
    stalled = [replace(photo_of(user), updated_at=old - timedelta(minutes=n)) for n in range(3)]
    ready = replace(photo_of(user), updated_at=old)
    deleted = replace(photo_of(user), updated_at=old)
    fresh = photo_of(user)
    for photo in (*stalled, ready, deleted, fresh):
        await env.store.insert_photo(photo, [])
    await env.store.apply_photo_update(
        "thumbnails", uuid.uuid4(), ready.id, PhotoChanges(status=PhotoStatus.READY), [], []
    )
    await env.store.delete_photo(user.id, deleted.id, [])
    async with env.engines[shard].begin() as conn:  # both updates touched their rows: age them again
        for photo in (ready, deleted):
            await conn.execute(update(photos).where(photos.c.id == photo.id).values(updated_at=old))
    cutoff = now() - timedelta(minutes=1)

    found = await env.store.stalled_photos(shard, cutoff, 10)

    assert [p.id for p in found] == [p.id for p in reversed(stalled)]  # oldest change first
    assert [p.id for p in await env.store.stalled_photos(shard, cutoff, 2)] == [stalled[2].id, stalled[1].id]
    assert await env.store.stalled_photos(shard, cutoff, 0) == []
    others = [n for n in env.store.shard_ids() if n != shard]
    for other in others:
        assert await env.store.stalled_photos(other, cutoff, 10) == []
    # A photo that moves (any applied update touches its row) is no longer stalled.
    await env.store.apply_photo_update("processing", uuid.uuid4(), stalled[2].id, PhotoChanges(), [], [])
    assert stalled[2].id not in [p.id for p in await env.store.stalled_photos(shard, cutoff, 10)]


async def test_variants_are_upserted_by_name(env: Env) -> None:
    user = await new_user(env)
    photo = photo_of(user)
    await env.store.insert_photo(photo, [])
    first = variant_of(photo, "thumb", 256)
    await env.store.apply_photo_update("thumbs", uuid.uuid4(), photo.id, PhotoChanges(), [first], [])
    thumb, preview = variant_of(photo, "thumb", 200), variant_of(photo, "preview", 1440)
    done = PhotoChanges(status=PhotoStatus.READY)
    await env.store.apply_photo_update("thumbs", uuid.uuid4(), photo.id, done, [thumb, preview], [])
    assert await env.store.list_variants(photo.id) == [preview, thumb]
    ready = await env.store.get_photo(user.id, photo.id)
    assert ready is not None
    assert ready.status is PhotoStatus.READY


async def test_variants_of_many_photos_in_one_call_only_the_owners(env: Env) -> None:
    user = await new_user(env)
    made, bare = photo_of(user), photo_of(user)
    stranger = neighbour_of(user)  # same shard, another owner
    await env.store.create_user(stranger)
    theirs = photo_of(stranger)
    for photo in (made, bare, theirs):
        await env.store.insert_photo(photo, [])
    for photo in (made, theirs):
        variants = [variant_of(photo, "thumb", 256), variant_of(photo, "preview", 1440)]
        await env.store.apply_photo_update("thumbs", uuid.uuid4(), photo.id, PhotoChanges(), variants, [])
    found = await env.store.variants_of(user.id, [made.id, bare.id, theirs.id])
    assert set(found) == {made.id}
    assert found[made.id] == await env.store.list_variants(made.id)
    assert await env.store.variants_of(user.id, []) == {}


# --- outbox and operations --------------------------------------------------------------------


async def test_outbox_is_in_seq_order_until_published(env: Env) -> None:
    user = await new_user(env, 1)
    elsewhere = await new_user(env, 2)
    events = []
    for _ in range(6):
        photo = photo_of(user)
        batch = uploaded(photo)
        events += batch
        await env.store.insert_photo(photo, batch)
    await env.store.insert_photo(photo_of(elsewhere), [NewEvent(topic="photo-upload", key="x", payload={})])

    pending = await env.store.pending_outbox(1, 100)
    assert [record.event for record in pending] == events
    assert all(record.shard_id == 1 and record.created_at.tzinfo is UTC for record in pending)
    seqs = [record.seq for record in pending]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert await env.store.pending_outbox(1, 2) == pending[:2]

    await env.store.mark_published(1, seqs[:4])
    await env.store.mark_published(1, seqs[:2])  # idempotent
    await env.store.mark_published(1, [])
    assert await env.store.pending_outbox(1, 100) == pending[4:]
    assert [record.event.key for record in await env.store.pending_outbox(2, 100)] == ["x"]

    more = photo_of(user)
    await env.store.insert_photo(more, uploaded(more))
    later = await env.store.pending_outbox(1, 100)
    assert later[:2] == pending[4:]
    assert later[2].seq > seqs[-1]


async def test_shard_stats(env: Env) -> None:
    alice, bob = await new_user(env, 0), await new_user(env, 0)
    carol = await new_user(env, 3)
    for owner, sizes in ((alice, [100, 200]), (bob, [50]), (carol, [7, 8, 9])):
        for size in sizes:
            photo = photo_of(owner, size=size)
            await env.store.insert_photo(photo, uploaded(photo))
    doomed = (await env.store.list_photos(alice.id, 1))[0]
    await env.store.delete_photo(alice.id, doomed.id, [])
    await env.store.mark_published(3, [record.seq for record in await env.store.pending_outbox(3, 1)])

    stats = {s.shard_id: s for s in await env.store.shard_stats()}
    assert sorted(stats) == list(range(SHARDS))
    assert (stats[0].users, stats[0].photos, stats[0].bytes, stats[0].pending_outbox) == (
        2,
        2,
        350 - doomed.bytes,
        3,
    )
    assert (stats[3].users, stats[3].photos, stats[3].bytes, stats[3].pending_outbox) == (1, 3, 24, 2)
    assert (stats[1].users, stats[1].photos, stats[1].bytes, stats[1].pending_outbox) == (0, 0, 0, 0)


# --- access tracking and tiering -------------------------------------------------------------


async def ready_photo(
    env: Env, owner: User, *, created: datetime | None = None, bucket: str = "photos-0"
) -> Photo:
    """A ready photo of ``owner`` uploaded at ``created`` (default now), stored in ``bucket``."""
    stamp = created or now()
    photo = replace(
        photo_of(owner, unix_ms=int(stamp.timestamp() * 1000)),
        status=PhotoStatus.READY,
        created_at=stamp,
        updated_at=stamp,
        bucket=bucket,
    )
    await env.store.insert_photo(photo, [])
    return photo


async def test_record_accesses_moves_the_last_read_forward_only(env: Env) -> None:
    alice, bob = await new_user(env, 0), await new_user(env, 3)
    mine, theirs = await ready_photo(env, alice), await ready_photo(env, bob)
    assert mine.last_accessed_at is None
    t0 = now()
    t1, t2 = t0 + timedelta(minutes=1), t0 + timedelta(minutes=2)
    unknown = photo_of(alice).id  # never inserted: skipped, not an error
    await env.store.record_accesses({mine.id: t1, theirs.id: t0, unknown: t0})

    async def last_read(photo: Photo) -> datetime | None:
        found = await env.store.get_photo(photo.owner_id, photo.id)
        assert found is not None
        return found.last_accessed_at

    assert await last_read(mine) == t1
    assert await last_read(theirs) == t0
    await env.store.record_accesses({mine.id: t0})  # older than what is stored: ignored
    assert await last_read(mine) == t1
    await env.store.record_accesses({mine.id: t2})
    assert await last_read(mine) == t2
    assert (await env.store.get_photo(alice.id, mine.id)) == replace(mine, last_accessed_at=t2)


async def test_access_bands_count_live_ready_originals_by_last_read_and_tier(env: Env) -> None:
    user = await new_user(env, 1)
    t = now()
    day = timedelta(days=1)
    fresh = await ready_photo(env, user, created=t - day)
    idle_40 = await ready_photo(env, user, created=t - 40 * day)
    read_lately = await ready_photo(env, user, created=t - 100 * day)
    await env.store.record_accesses({read_lately.id: t - 10 * day})
    idle_100 = await ready_photo(env, user, created=t - 100 * day)
    cold_100 = await ready_photo(env, user, created=t - 100 * day, bucket="cold-x")
    gone = await ready_photo(env, user, created=t - 100 * day)
    await env.store.delete_photo(user.id, gone.id, [])
    processing = photo_of(user)  # still in the pipeline: not counted
    await env.store.insert_photo(processing, [])

    edges = [t - 30 * day, t - 90 * day]
    bands = await env.store.access_bands(1, edges, ["cold-x"])
    assert bands == [
        AccessBand(0, False, 2, fresh.bytes + read_lately.bytes),
        AccessBand(1, False, 1, idle_40.bytes),
        AccessBand(2, False, 1, idle_100.bytes),
        AccessBand(2, True, 1, cold_100.bytes),
    ]
    assert await env.store.access_bands(1, edges, []) == [
        AccessBand(0, False, 2, fresh.bytes + read_lately.bytes),
        AccessBand(1, False, 1, idle_40.bytes),
        AccessBand(2, False, 2, idle_100.bytes + cold_100.bytes),
    ]
    assert await env.store.access_bands(2, edges, ["cold-x"]) == []
    with pytest.raises(ValueError, match="newest first"):
        await env.store.access_bands(1, edges[::-1], [])


async def test_switch_buckets_can_move_the_original_alone_or_leave_it(env: Env) -> None:
    user = await new_user(env)
    photo = await ready_photo(env, user)
    thumb = variant_of(photo, "thumb", 256)
    await env.store.apply_photo_update("thumbs", uuid.uuid4(), photo.id, PhotoChanges(), [thumb], [])

    # Tiering: the original alone to a cold bucket; the variant stays.
    assert await env.store.switch_buckets(photo, [], "cold-x")
    found = await env.store.photo_and_variants(photo.id)
    assert found is not None
    cold_photo, variants = found
    assert (cold_photo.bucket, [v.bucket for v in variants]) == ("cold-x", ["photos-0"])

    # A rebalance: the variants move, the cold original is neither checked nor moved, even when the
    # row read is older than the switch above.
    assert await env.store.switch_buckets(photo, variants, "photos-1", move_original=False)
    found = await env.store.photo_and_variants(photo.id)
    assert found is not None
    assert (found[0].bucket, [v.bucket for v in found[1]]) == ("cold-x", ["photos-1"])
    # Moving the original from a stale row is refused.
    assert not await env.store.switch_buckets(photo, [], "photos-1")


# --- migrations, types, failures --------------------------------------------------------------


def _schema_diff(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def test_migrations_are_idempotent_and_match_the_schema(env: Env) -> None:
    user = await new_user(env)
    for engine in env.engines.values():
        assert await current_revision(engine) == head_revision()
        await migrate(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            assert await conn.run_sync(_schema_diff) == []
    await env.store.start()  # a second start is a no-op too
    assert await env.store.get_user(user.id) == user


async def test_concurrent_first_migrations_do_not_collide(env: Env) -> None:
    make_engine, drop = await env.backend.fresh_database()
    engines = [make_engine() for _ in range(3)]
    try:
        await asyncio.gather(*(migrate(engine) for engine in engines))
        assert await current_revision(engines[0]) == head_revision()
        async with engines[0].connect() as conn:
            assert await conn.run_sync(_schema_diff) == []
    finally:
        for engine in engines:
            await engine.dispose()
        await drop()


async def test_a_shard_from_a_newer_release_is_refused(env: Env) -> None:
    make_engine, drop = await env.backend.fresh_database()
    engine = make_engine()
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(ConfigError, match="9999"):
            await migrate(engine)
    finally:
        await engine.dispose()
        await drop()


async def test_datetimes_are_timezone_aware_utc(env: Env) -> None:
    plus_five = timezone(timedelta(hours=5))
    user = replace(user_on(), created_at=datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=plus_five))
    await env.store.create_user(user)
    stored = await env.store.get_user(user.id)
    assert stored is not None
    assert stored.created_at == user.created_at
    assert stored.created_at.tzinfo is UTC
    assert stored.created_at.hour == 5

    with pytest.raises(ValueError, match="naive"):
        await env.store.create_user(User(id=ids.new_user_id(), name="n", created_at=datetime(2025, 1, 1)))


async def test_unreachable_backend_raises_backend_unavailable(env: Env) -> None:
    store = SqlMetadataStore({0: env.backend.unreachable_engine()}, lambda key: 0)
    try:
        with pytest.raises(BackendUnavailable):
            await store.start()
        with pytest.raises(BackendUnavailable):
            await store.get_user(ids.new_user_id())
    finally:
        await store.close()


# --- resumable uploads ----------------------------------------------------------------------------


def upload_of(owner: User, *, expires_in: timedelta = timedelta(hours=1)) -> ResumableUpload:
    created = now()
    return ResumableUpload(
        id=ids.new_photo_id(owner.id),
        owner_id=owner.id,
        length=1000,
        offset=0,
        metadata="filename YS5qcGc=",
        filename="a.jpg",
        created_at=created,
        expires_at=created + expires_in,
        storage={"multipart_id": "m1", "parts": [], "tail_size": 0},
    )


async def test_an_upload_round_trips_and_is_only_its_owners(env: Env) -> None:
    alice, bob = await new_user(env, 0), await new_user(env, 0)
    upload = upload_of(alice)
    await env.store.create_upload(upload)
    assert await env.store.get_upload(alice.id, upload.id) == upload
    assert await env.store.get_upload(bob.id, upload.id) is None
    assert await env.store.delete_upload(bob.id, upload.id) is None
    assert await env.store.delete_upload(alice.id, upload.id) == upload
    assert await env.store.get_upload(alice.id, upload.id) is None


async def test_one_lease_at_a_time_and_only_at_the_stored_offset(env: Env) -> None:
    alice = await new_user(env, 1)
    upload = upload_of(alice)
    await env.store.create_upload(upload)
    t = now()
    later = t + timedelta(seconds=30)
    assert not await env.store.lease_upload(alice.id, upload.id, 5, "a", t, later)  # wrong offset
    assert await env.store.lease_upload(alice.id, upload.id, 0, "a", t, later)
    assert not await env.store.lease_upload(alice.id, upload.id, 0, "b", t, later)  # held
    storage = {"multipart_id": "m1", "parts": [[1, "e1", 600]], "tail_size": 0}
    assert not await env.store.save_upload(alice.id, upload.id, "b", 600, storage, later)  # not b's
    assert await env.store.save_upload(alice.id, upload.id, "a", 600, storage, later)
    saved = await env.store.get_upload(alice.id, upload.id)
    assert saved is not None
    assert (saved.offset, saved.storage, saved.lease_token) == (600, storage, "a")
    # A lease that ran out can be taken over, and the old holder's writes then fail.
    assert await env.store.lease_upload(
        alice.id, upload.id, 600, "b", later + timedelta(seconds=1), later + timedelta(seconds=60)
    )
    assert not await env.store.save_upload(alice.id, upload.id, "a", 700, storage, None)
    assert await env.store.save_upload(alice.id, upload.id, "b", 700, storage, None)  # released
    assert await env.store.lease_upload(alice.id, upload.id, 700, "c", t, later)
    photo_id = ids.new_photo_id(alice.id)
    assert not await env.store.complete_upload(alice.id, upload.id, "b", photo_id)
    assert await env.store.complete_upload(alice.id, upload.id, "c", photo_id)
    done = await env.store.get_upload(alice.id, upload.id)
    assert done is not None
    assert (done.photo_id, done.offset, done.lease_token, done.lease_until) == (photo_id, 1000, None, None)
    assert not await env.store.lease_upload(alice.id, upload.id, 1000, "d", t, later)  # a photo now


async def test_expired_uploads_are_listed_oldest_first_and_refuse_leases(env: Env) -> None:
    alice = await new_user(env, 2)
    old = upload_of(alice, expires_in=timedelta(seconds=-20))
    older = upload_of(alice, expires_in=timedelta(seconds=-40))
    live = upload_of(alice)
    for upload in (old, older, live):
        await env.store.create_upload(upload)
    t = now()
    assert [u.id for u in await env.store.expired_uploads(2, t, 10)] == [older.id, old.id]
    assert [u.id for u in await env.store.expired_uploads(2, t, 1)] == [older.id]
    assert not await env.store.lease_upload(alice.id, old.id, 0, "a", t, t + timedelta(seconds=30))
