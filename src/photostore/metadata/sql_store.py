"""The MetadataStore on SQL shards: one SQLite file or PostgreSQL database per shard.

Guarantees beyond the port's (see :mod:`photostore.metadata.port`):

- Placement: a user's rows, and a photo's, live on ``shard_for_key(placement_key_of(id))``; a photo
  id must carry its owner's placement key (``ids.new_photo_id``), else insert_photo refuses it.
- Every write method is one short transaction on one shard. On SQLite, writers of one shard are
  serialised in this process by an asyncio lock (no SQLITE_BUSY storms) and begin with
  ``BEGIN IMMEDIATE`` (writers in other processes wait on busy_timeout instead of failing
  half-way); readers run concurrently under WAL.
- Driver errors surface as photostore errors (:mod:`photostore.metadata.translate`).
- Outbox order: ``seq`` order per shard. On PostgreSQL a seq is drawn at insert, so a transaction
  that commits late can make a lower seq visible after higher ones were returned; pending_outbox
  selects by "not yet published", never by a high-water mark, so nothing is skipped.
- Reads and replicas: without a :class:`~photostore.metadata.replicas.ReadRouter` every read runs on
  the shard's engine. With one, reads about a user go through the shard's replica set (healthy
  replica, else the primary; read-your-writes within this process, see :mod:`.replicas`), while
  writes, the reads inside a write transaction, the outbox and the shard statistics always use the
  primary: the relay must see its own marks, and the statistics are exact.
- The store owns the engines it is given, and the router: ``close()`` disposes them.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Executable, RowMapping, Select, bindparam, case, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from photostore.domain import (
    AccessBand,
    ApiKey,
    ApplyResult,
    NewEvent,
    OutboxRecord,
    Photo,
    PhotoChanges,
    PhotoStatus,
    ResumableUpload,
    ShardStats,
    User,
    Variant,
)
from photostore.errors import BadRequest, Conflict, IdempotencyKeyReused, ShardMoveInProgress, UnknownShard
from photostore.ids import placement_key_of
from photostore.metadata import driver_reads, rows
from photostore.metadata.dialect import insert_or_ignore, upsert
from photostore.metadata.engines import is_sqlite, single_read_options, write_options
from photostore.metadata.fences import KeyFenced, fenced_keys
from photostore.metadata.group_commit import GroupCommit
from photostore.metadata.migrate import migrate
from photostore.metadata.pool_stats import PoolStat, pool_stat
from photostore.metadata.port import MetadataStore
from photostore.metadata.provision import ensure_database
from photostore.metadata.replicas import ReadRouter, ReplicaSet, ReplicaStat
from photostore.metadata.schema import (
    FILENAME_MAX,
    STORAGE_PATH_MAX,
    api_keys,
    outbox,
    photos,
    processed_events,
    uploads,
    users,
)
from photostore.metadata.schema import variants as variants_table  # a parameter below is `variants`
from photostore.metadata.translate import translated

T = TypeVar("T")

_MARK_CHUNK = 500  # seqs per UPDATE ... WHERE seq IN (...): well under every engine's bind limit
# A write to a fenced user waits this long for its move to switch, then answers 503 Retry-After.
FENCE_WAIT_S = 1.0
_FENCE_POLL_S = 0.02

ShardOpener = Callable[[int], tuple[AsyncEngine, ReplicaSet | None]]


def _now() -> datetime:
    return datetime.now(UTC)


def _live(photo_id: uuid.UUID) -> Any:
    return (photos.c.id == photo_id) & photos.c.deleted_at.is_(None)


def _by_idempotency_key(owner_id: uuid.UUID, key: str) -> Select[Any]:
    return select(photos).where(
        (photos.c.user_id == owner_id) & (photos.c.idempotency_key == key) & photos.c.deleted_at.is_(None)
    )


class SqlMetadataStore:
    """MetadataStore over ``engines`` (shard id -> primary engine), placing ids with ``shard_for_key``.

    ``reads`` routes reads to replicas; its replica sets must cover exactly these shards, on these
    very primary engines. ``create_databases``: ``start()`` creates a missing PostgreSQL database.
    """

    def __init__(
        self,
        engines: Mapping[int, AsyncEngine],
        shard_for_key: Callable[[int], int],
        *,
        reads: ReadRouter | None = None,
        create_databases: bool = False,
        open_shard: ShardOpener | None = None,
    ) -> None:
        self._engines = dict(engines)
        self._open_shard = open_shard
        self._opening = asyncio.Lock()
        self._started = False
        # Which keys' writes check the rebalance fences; every key until a routing watcher says.
        self._needs_fence_check: Callable[[int], bool] = lambda _key: True
        self._shard_for_key = shard_for_key
        if reads is not None:
            _check_router(reads, self._engines)
        self._reads = reads
        self._create_databases = create_databases
        # Only SQLite needs in-process writer serialisation; PostgreSQL locks rows.
        self._write_locks = {
            sid: asyncio.Lock() for sid, engine in self._engines.items() if is_sqlite(engine)
        }
        # Concurrent photo inserts of a shard share one transaction (and one fsync).
        self._inserts: dict[int, GroupCommit[tuple[Photo, Sequence[NewEvent]], tuple[Photo, bool]]] = {}

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create missing databases if asked, apply migrations to every shard (idempotent, safe under
        concurrent starts), then start the replica health checks."""
        for shard_id in self.shard_ids():
            engine = self._engine(shard_id)
            if self._create_databases and not is_sqlite(engine):
                with translated(f"creating the database of shard {shard_id}"):
                    await ensure_database(engine.url)
            async with self._write_lock(shard_id):
                with translated(f"migrating shard {shard_id}"):
                    await migrate(engine)
        if self._reads is not None:
            self._reads.start()
        self._started = True

    async def ensure_shards(self, shard_ids: Iterable[int]) -> None:
        """Open (and migrate) shards a rebalance added since this store started; known ones are kept."""
        async with self._opening:  # the routing watcher and a mover may ask at once
            for shard_id in sorted(set(shard_ids) - set(self._engines)):
                await self._open_new_shard(shard_id)

    async def _open_new_shard(self, shard_id: int) -> None:
        if self._open_shard is None:
            raise UnknownShard(f"shard {shard_id} is new and this store cannot open shards")
        engine, replica_set = self._open_shard(shard_id)
        try:
            await self._prepare(shard_id, engine)
        except BaseException:
            await engine.dispose()
            raise
        if is_sqlite(engine):
            self._write_locks[shard_id] = asyncio.Lock()
        if self._reads is not None:
            assert replica_set is not None
            self._reads.add(replica_set, start=self._started)
        self._engines[shard_id] = engine

    async def _prepare(self, shard_id: int, engine: AsyncEngine) -> None:
        if self._create_databases and not is_sqlite(engine):
            with translated(f"creating the database of shard {shard_id}"):
                await ensure_database(engine.url)
        with translated(f"migrating shard {shard_id}"):
            await migrate(engine)

    def set_fence_policy(self, needs_fence_check: Callable[[int], bool]) -> None:
        """Check the rebalance fences only for keys this says (a fresh routing view knows which)."""
        self._needs_fence_check = needs_fence_check

    def primary_engine(self, shard_id: int) -> AsyncEngine:
        """The primary of ``shard_id``, for the rebalancer's copies (UnknownShard if not open)."""
        return self._engine(shard_id)

    async def close(self) -> None:
        """Stop the health checks and close every pool; safe to call twice."""
        if self._reads is not None:
            await self._reads.close()
        await asyncio.gather(*(engine.dispose() for engine in self._engines.values()))

    def shard_ids(self) -> Sequence[int]:
        return sorted(self._engines)

    # --- placement and transactions -------------------------------------------------------------

    def shard_of(self, any_id: uuid.UUID) -> int:
        """The shard holding the user or photo ``any_id``."""
        return self._shard_for_key(placement_key_of(any_id))

    def _engine(self, shard_id: int) -> AsyncEngine:
        try:
            return self._engines[shard_id]
        except KeyError:
            raise UnknownShard(f"shard {shard_id} has no metadata engine") from None

    def _write_lock(self, shard_id: int) -> AbstractAsyncContextManager[Any]:
        return self._write_locks.get(shard_id) or nullcontext()

    async def _fence_retrying(self, write: Callable[[], Awaitable[T]]) -> T:
        """Run ``write``; while it meets a fence, retry (routing may have moved on) for up to
        FENCE_WAIT_S, then raise ShardMoveInProgress (503 with Retry-After)."""
        deadline = time.monotonic() + FENCE_WAIT_S
        while True:
            try:
                return await write()
            except KeyFenced as fenced:
                if time.monotonic() >= deadline:
                    raise ShardMoveInProgress(
                        f"placement key {fenced.placement_key} is moving to another shard"
                    ) from None
                await asyncio.sleep(_FENCE_POLL_S)

    async def _check_fences(
        self, conn: AsyncConnection, shard_id: int, ids: Iterable[uuid.UUID], *, creating: bool = False
    ) -> set[int]:
        """The keys of ``ids`` this transaction on ``shard_id`` must not write, checked inside it.

        A key is refused when routing, looked up again now that the transaction holds its locks,
        sends it elsewhere (the write may have waited for the lock while a rebalance switched the
        key), or when the shard holds a fence for it.
        """
        keys = {placement_key_of(any_id) for any_id in ids}
        moved = {k for k in keys if self._shard_for_key(k) != shard_id}
        checked = [k for k in keys - moved if self._needs_fence_check(k)]
        return moved | await fenced_keys(conn, checked, creating=creating)

    @asynccontextmanager
    async def _guarded(
        self, what: str, owner: uuid.UUID, *, creating: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """A write transaction on ``owner``'s shard that raises KeyFenced if the owner is fenced."""
        shard_id = self.shard_of(owner)
        async with self._writing(shard_id, what, owner) as conn:
            if await self._check_fences(conn, shard_id, [owner], creating=creating):
                raise KeyFenced(placement_key_of(owner))
            yield conn

    @asynccontextmanager
    async def _writing(
        self, shard_id: int, what: str, *concerning: uuid.UUID
    ) -> AsyncIterator[AsyncConnection]:
        """One read-write transaction on the primary of ``shard_id``: committed if the block returns.

        ``concerning``: the users (or photos) written; their next reads stay on the primary.
        """
        engine = self._engine(shard_id)
        try:
            # Take the in-process lock before a pooled connection, so queued writers hold none.
            async with self._write_lock(shard_id):
                with translated(what):
                    async with engine.connect() as conn:
                        await conn.execution_options(**write_options(engine))
                        async with conn.begin():
                            yield conn
        finally:
            # Also after an error: a commit whose reply was lost may still have been applied.
            if self._reads is not None:
                self._reads.wrote(concerning)

    async def _read_rows(
        self,
        shard_id: int,
        stmt: Executable,
        what: str,
        *,
        concerning: uuid.UUID | None = None,
        primary_only: bool = False,
    ) -> Sequence[RowMapping]:
        """Run one SELECT outside any explicit transaction (one statement is its own snapshot).

        ``concerning`` is the user or photo id the read is about (read-your-writes); ``primary_only``
        skips the replicas.
        """

        async def run(engine: AsyncEngine) -> Sequence[RowMapping]:
            async with engine.connect() as conn:
                await conn.execution_options(**single_read_options(engine))
                result = await conn.execute(stmt)
                return result.mappings().all()

        return await self.run_read(shard_id, run, what, concerning=concerning, primary_only=primary_only)

    async def run_read(
        self,
        shard_id: int,
        run: Callable[[AsyncEngine], Awaitable[T]],
        what: str,
        *,
        concerning: uuid.UUID | None = None,
        primary_only: bool = False,
    ) -> T:
        """Run ``run(engine)`` where a read of ``shard_id`` goes (replica or primary), errors translated.

        The store's own reads use it; so can operations code and tests (e.g. ``inet_server_port()``).
        ``run`` must only read: on a replica a write fails, and a failed ``run`` may run twice.
        """
        engine = self._engine(shard_id)

        async def once_more_if_broken(target: AsyncEngine) -> T:
            # Pooled connections are pinged only after sitting idle (metadata/pooling.py): one broken
            # in busy use (a server restart under load) fails here, and its pool is invalidated.
            try:
                return await run(target)
            except DBAPIError as error:
                if not error.connection_invalidated:
                    raise
                return await run(target)

        with translated(what):
            if self._reads is None:
                return await once_more_if_broken(engine)
            return await self._reads.read(
                shard_id, once_more_if_broken, concerning=concerning, primary_only=primary_only
            )

    async def _read_one(
        self, shard_id: int, stmt: Select[Any], what: str, *, concerning: uuid.UUID | None = None
    ) -> RowMapping | None:
        found = await self._read_rows(shard_id, stmt.limit(1), what, concerning=concerning)
        return found[0] if found else None

    @staticmethod
    async def _append_events(conn: AsyncConnection, events: Sequence[NewEvent]) -> None:
        if events:
            now = _now()
            await conn.execute(insert(outbox), [rows.outbox_row(event, now) for event in events])

    # --- users and keys -------------------------------------------------------------------------

    async def create_user(self, user: User) -> None:
        """Insert the user on its shard; Conflict if the id exists."""

        async def write() -> None:
            async with self._guarded("create_user", user.id, creating=True) as conn:
                await conn.execute(insert(users).values(rows.user_row(user)))

        await self._fence_retrying(write)

    async def get_user(self, user_id: uuid.UUID) -> User | None:
        row = await self._read_one(
            self.shard_of(user_id), select(users).where(users.c.id == user_id), "get_user", concerning=user_id
        )
        return None if row is None else rows.to_user(row)

    async def add_api_key(self, key: ApiKey) -> None:
        """Store the key on its user's shard; Conflict if the key id exists or the user does not."""

        async def write() -> None:
            async with self._guarded("add_api_key", key.user_id) as conn:
                await conn.execute(insert(api_keys).values(rows.api_key_row(key)))

        await self._fence_retrying(write)

    async def get_api_key(self, user_id: uuid.UUID, key_id: str) -> ApiKey | None:
        """The key, revoked or not (check ``revoked_at``); None if unknown or not ``user_id``'s."""
        stmt = select(api_keys).where((api_keys.c.key_id == key_id) & (api_keys.c.user_id == user_id))
        row = await self._read_one(self.shard_of(user_id), stmt, "get_api_key", concerning=user_id)
        return None if row is None else rows.to_api_key(row)

    async def list_api_keys(self, user_id: uuid.UUID) -> list[ApiKey]:
        """Every key of the user, revoked ones included, oldest first."""
        stmt = (
            select(api_keys)
            .where(api_keys.c.user_id == user_id)
            .order_by(api_keys.c.created_at, api_keys.c.key_id)
        )
        found = await self._read_rows(self.shard_of(user_id), stmt, "list_api_keys", concerning=user_id)
        return [rows.to_api_key(row) for row in found]

    async def revoke_api_key(self, user_id: uuid.UUID, key_id: str) -> bool:
        """True if this call revoked the key; False if it is unknown or was already revoked."""
        stmt = (
            update(api_keys)
            .where(
                (api_keys.c.key_id == key_id)
                & (api_keys.c.user_id == user_id)
                & api_keys.c.revoked_at.is_(None)
            )
            .values(revoked_at=_now())
            .returning(api_keys.c.key_id)
        )

        async def write() -> bool:
            async with self._guarded("revoke_api_key", user_id) as conn:
                return (await conn.execute(stmt)).first() is not None

        return await self._fence_retrying(write)

    # --- photos ---------------------------------------------------------------------------------

    def _check_new_photo(self, photo: Photo) -> None:
        if placement_key_of(photo.id) != placement_key_of(photo.owner_id):
            raise ValueError(f"photo id {photo.id} does not carry its owner's placement key")
        if len(photo.filename) > FILENAME_MAX:
            raise BadRequest(f"filename longer than {FILENAME_MAX} characters")
        if len(photo.storage_path) > STORAGE_PATH_MAX:
            raise BadRequest(f"storage path longer than {STORAGE_PATH_MAX} characters")

    async def insert_photo(self, photo: Photo, events: Sequence[NewEvent]) -> tuple[Photo, bool]:
        """Insert ``photo`` and ``events`` atomically -> (photo, True); on a live (owner, sha256)
        duplicate -> (existing photo, False) with nothing written, also under concurrent inserts."""
        self._check_new_photo(photo)

        async def write() -> tuple[Photo, bool]:
            shard_id = self.shard_of(photo.owner_id)
            batcher = self._inserts.get(shard_id)
            if batcher is None:
                batcher = GroupCommit(partial(self._insert_batch, shard_id))
                self._inserts[shard_id] = batcher
            return await batcher.submit((photo, events))

        return await self._fence_retrying(write)

    async def _insert_batch(
        self, shard_id: int, batch: list[tuple[Photo, Sequence[NewEvent]]]
    ) -> list[tuple[Photo, bool] | Exception]:
        """Insert many photos in one transaction; one item's conflict does not fail the others."""
        owners = {photo.owner_id for photo, _ in batch}
        async with self._writing(shard_id, "insert_photo", *owners) as conn:
            fenced = await self._check_fences(conn, shard_id, owners)
            return [
                KeyFenced(placement_key_of(photo.owner_id))
                if placement_key_of(photo.owner_id) in fenced
                else await self._insert_one(conn, photo, events)
                for photo, events in batch
            ]

    async def _insert_one(
        self, conn: AsyncConnection, photo: Photo, events: Sequence[NewEvent]
    ) -> tuple[Photo, bool] | Exception:
        stmt = insert_or_ignore(conn.dialect.name, photos).values(rows.photo_row(photo))
        inserted = (await conn.execute(stmt.returning(photos.c.id))).first()
        if inserted is not None:
            await self._append_events(conn, events)
            return photo, True
        # A unique index said no: the (owner, sha256) of a live photo, or (rarely) the id.
        found = await conn.execute(
            select(photos).where(
                (photos.c.user_id == photo.owner_id)
                & (photos.c.sha256 == photo.sha256)
                & photos.c.deleted_at.is_(None)
            )
        )
        existing = found.mappings().first()
        if existing is not None:
            return rows.to_photo(existing), False
        if photo.idempotency_key is not None:
            keyed = await conn.execute(_by_idempotency_key(photo.owner_id, photo.idempotency_key))
            if keyed.first() is not None:
                return IdempotencyKeyReused()
        return Conflict(f"photo id {photo.id} already exists")

    async def get_photo(self, owner_id: uuid.UUID, photo_id: uuid.UUID) -> Photo | None:
        """The live photo, or None when unknown, deleted, or owned by someone else."""
        stmt = select(photos).where(_live(photo_id) & (photos.c.user_id == owner_id))
        row = await self._read_one(self.shard_of(owner_id), stmt, "get_photo", concerning=owner_id)
        return None if row is None else rows.to_photo(row)

    async def get_photo_by_sha256(self, owner_id: uuid.UUID, sha256: str) -> Photo | None:
        stmt = select(photos).where(
            (photos.c.user_id == owner_id) & (photos.c.sha256 == sha256) & photos.c.deleted_at.is_(None)
        )
        row = await self._read_one(self.shard_of(owner_id), stmt, "get_photo_by_sha256", concerning=owner_id)
        return None if row is None else rows.to_photo(row)

    async def get_photo_by_idempotency_key(self, owner_id: uuid.UUID, key: str) -> Photo | None:
        stmt = _by_idempotency_key(owner_id, key)
        row = await self._read_one(
            self.shard_of(owner_id), stmt, "get_photo_by_idempotency_key", concerning=owner_id
        )
        return None if row is None else rows.to_photo(row)

    async def list_photos(
        self, owner_id: uuid.UUID, limit: int, before: uuid.UUID | None = None
    ) -> list[Photo]:
        """Live photos of ``owner_id`` with id < ``before``, newest first, at most ``limit``.

        Keyset paging on (user_id, id): pass the last id of a page as ``before`` for the next one;
        each page costs one index range scan however deep it is.
        """
        if limit <= 0:
            return []

        async def run(engine: AsyncEngine) -> list[Photo]:
            async with engine.connect() as conn:
                if not is_sqlite(engine):  # the hot path: see metadata/driver_reads.py
                    return await driver_reads.list_photos(conn, owner_id, limit, before)
                condition = (photos.c.user_id == owner_id) & photos.c.deleted_at.is_(None)
                if before is not None:
                    condition &= photos.c.id < before
                stmt = select(photos).where(condition).order_by(photos.c.id.desc()).limit(limit)
                await conn.execution_options(**single_read_options(engine))
                return [rows.to_photo(row) for row in (await conn.execute(stmt)).mappings()]

        return await self.run_read(self.shard_of(owner_id), run, "list_photos", concerning=owner_id)

    async def delete_photo(
        self, owner_id: uuid.UUID, photo_id: uuid.UUID, events: Sequence[NewEvent]
    ) -> Photo | None:
        """Mark the photo deleted (freeing its sha256 for a new upload) and write ``events``, in one
        transaction; the deleted photo, or None (nothing written) if it was not live."""
        now = _now()
        stmt = (
            update(photos)
            .where(_live(photo_id) & (photos.c.user_id == owner_id))
            .values(status=PhotoStatus.DELETED.value, deleted_at=now, updated_at=now)
            .returning(*photos.c)
        )

        async def write() -> Photo | None:
            async with self._guarded("delete_photo", owner_id) as conn:
                row = (await conn.execute(stmt)).mappings().first()
                if row is None:
                    return None
                await self._append_events(conn, events)
                return rows.to_photo(row)

        return await self._fence_retrying(write)

    async def get_photo_any_state(self, photo_id: uuid.UUID) -> Photo | None:
        """The photo whatever its state (workers and the garbage collector use this)."""
        stmt = select(photos).where(photos.c.id == photo_id)
        row = await self._read_one(self.shard_of(photo_id), stmt, "get_photo_any_state", concerning=photo_id)
        return None if row is None else rows.to_photo(row)

    async def list_variants(self, photo_id: uuid.UUID) -> list[Variant]:
        """The photo's variants, by name."""
        table = variants_table
        stmt = select(table).where(table.c.photo_id == photo_id).order_by(table.c.name)
        found = await self._read_rows(self.shard_of(photo_id), stmt, "list_variants", concerning=photo_id)
        return [rows.to_variant(row) for row in found]

    async def variants_of(
        self, owner_id: uuid.UUID, photo_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[Variant]]:
        if not photo_ids:
            return {}
        table = variants_table
        owned = select(photos.c.id).where(photos.c.user_id == owner_id)
        stmt = (
            select(table)
            .where(table.c.photo_id.in_(list(photo_ids)) & table.c.photo_id.in_(owned))
            .order_by(table.c.photo_id, table.c.name)
        )
        found: dict[uuid.UUID, list[Variant]] = {}
        found_rows = await self._read_rows(self.shard_of(owner_id), stmt, "variants_of", concerning=owner_id)
        for row in found_rows:
            variant = rows.to_variant(row)
            found.setdefault(variant.photo_id, []).append(variant)
        return found

    async def apply_photo_update(
        self,
        consumer: str,
        event_id: uuid.UUID,
        photo_id: uuid.UUID,
        changes: PhotoChanges,
        variants: Sequence[Variant],
        events: Sequence[NewEvent],
    ) -> ApplyResult:
        """In one transaction: unless (consumer, event_id) was processed (ALREADY_PROCESSED) or the
        photo is not live (PHOTO_GONE), set ``changes``, upsert ``variants`` by (photo, name), append
        ``events`` and record the event as processed (APPLIED). The first two write nothing.

        Nothing is written before the outcome is known, so no path needs a rollback. The photo row
        is locked first (PostgreSQL ``FOR UPDATE``; SQLite's write lock covers it), so a concurrent
        delete or a concurrent redelivery of the same event cannot interleave.
        """
        if any(variant.photo_id != photo_id for variant in variants):
            raise ValueError(f"every variant must belong to photo {photo_id}")
        marker = (processed_events.c.consumer == consumer) & (processed_events.c.event_id == event_id)
        return await self._fence_retrying(
            partial(self._apply_photo_update, marker, consumer, event_id, photo_id, changes, variants, events)
        )

    async def _apply_photo_update(
        self,
        marker: Any,
        consumer: str,
        event_id: uuid.UUID,
        photo_id: uuid.UUID,
        changes: PhotoChanges,
        variants: Sequence[Variant],
        events: Sequence[NewEvent],
    ) -> ApplyResult:
        async with self._guarded("apply_photo_update", photo_id) as conn:
            seen = await conn.execute(select(processed_events.c.consumer).where(marker))
            if seen.first() is not None:
                return ApplyResult.ALREADY_PROCESSED
            live = await conn.execute(select(photos.c.id).where(_live(photo_id)).with_for_update())
            if live.first() is None:
                return ApplyResult.PHOTO_GONE
            record = insert_or_ignore(conn.dialect.name, processed_events).values(
                consumer=consumer, event_id=event_id, processed_at=_now()
            )
            if (await conn.execute(record.returning(processed_events.c.consumer))).first() is None:
                return ApplyResult.ALREADY_PROCESSED  # a concurrent redelivery committed first
            values = {**rows.changes_row(changes), "updated_at": _now()}
            await conn.execute(update(photos).where(photos.c.id == photo_id).values(values))
            if variants:
                stmt = upsert(conn.dialect.name, variants_table, ("photo_id", "name"))
                await conn.execute(stmt, [rows.variant_row(variant) for variant in variants])
            await self._append_events(conn, events)
            return ApplyResult.APPLIED

    async def stalled_photos(self, shard_id: int, updated_before: datetime, limit: int) -> list[Photo]:
        """Live photos of ``shard_id`` still processing whose row last changed before
        ``updated_before``, oldest change first, at most ``limit``; on the primary, where the
        pipeline writes (a lagging replica would make every photo look stalled)."""
        if limit <= 0:
            return []
        stmt = (
            select(photos)
            .where(
                (photos.c.status == PhotoStatus.PROCESSING.value)
                & photos.c.deleted_at.is_(None)
                & (photos.c.updated_at < updated_before)
            )
            .order_by(photos.c.updated_at)
            .limit(limit)
        )
        found = await self._read_rows(shard_id, stmt, "stalled_photos", primary_only=True)
        return [rows.to_photo(row) for row in found]

    # --- outbox ---------------------------------------------------------------------------------

    async def pending_outbox(self, shard_id: int, limit: int) -> list[OutboxRecord]:
        """Unpublished records of ``shard_id`` in seq order, at most ``limit``."""
        if limit <= 0:
            return []
        stmt = select(outbox).where(outbox.c.published_at.is_(None)).order_by(outbox.c.seq).limit(limit)
        found = await self._read_rows(shard_id, stmt, "pending_outbox", primary_only=True)
        return [rows.to_outbox_record(shard_id, row) for row in found]

    async def mark_published(self, shard_id: int, seqs: Sequence[int]) -> None:
        """Mark ``seqs`` published (idempotent: already published or unknown seqs are ignored)."""
        if not seqs:
            return
        now = _now()
        unique = sorted(set(seqs))
        async with self._writing(shard_id, "mark_published") as conn:
            for start in range(0, len(unique), _MARK_CHUNK):
                chunk = unique[start : start + _MARK_CHUNK]
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.seq.in_(chunk) & outbox.c.published_at.is_(None))
                    .values(published_at=now)
                )

    # --- operations -----------------------------------------------------------------------------

    async def shard_stats(self) -> list[ShardStats]:
        """Per shard: users, live photos, bytes of live originals, pending outbox records.

        One statement per shard (a consistent snapshot), shards queried concurrently. The counts
        scan their tables: an operations call, not for the request path.
        """
        return list(await asyncio.gather(*(self._stats_of(shard_id) for shard_id in self.shard_ids())))

    async def _stats_of(self, shard_id: int) -> ShardStats:
        live = photos.c.deleted_at.is_(None)
        stmt = select(
            select(func.count()).select_from(users).scalar_subquery().label("users"),
            select(func.count()).select_from(photos).where(live).scalar_subquery().label("photos"),
            select(func.coalesce(func.sum(photos.c.bytes), 0)).where(live).scalar_subquery().label("bytes"),
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.published_at.is_(None))
            .scalar_subquery()
            .label("pending"),
        )
        (row,) = await self._read_rows(shard_id, stmt, "shard_stats", primary_only=True)
        return ShardStats(
            shard_id=shard_id,
            users=int(row["users"]),
            photos=int(row["photos"]),
            bytes=int(row["bytes"]),
            pending_outbox=int(row["pending"]),
        )

    # --- bucket moves

    async def live_photos_after(
        self, shard_id: int, after: uuid.UUID | None, limit: int
    ) -> list[tuple[Photo, list[Variant]]]:
        """Live photos of ``shard_id`` with id > ``after``, in id order, at most ``limit``, each with
        its variants by name; read in one snapshot on the primary (the bucket mover's keyset scan)."""
        if limit <= 0:
            return []
        condition: Any = photos.c.deleted_at.is_(None)
        if after is not None:
            condition &= photos.c.id > after
        stmt = select(photos).where(condition).order_by(photos.c.id).limit(limit)
        return await self._photos_with_variants(shard_id, stmt, "live_photos_after")

    async def photo_and_variants(self, photo_id: uuid.UUID) -> tuple[Photo, list[Variant]] | None:
        """The photo in any state with its variants, read in one snapshot on the primary."""
        stmt = select(photos).where(photos.c.id == photo_id)
        found = await self._photos_with_variants(self.shard_of(photo_id), stmt, "photo_and_variants")
        return found[0] if found else None

    async def _photos_with_variants(
        self, shard_id: int, photo_query: Select[Any], what: str
    ) -> list[tuple[Photo, list[Variant]]]:
        table = variants_table

        async def run(engine: AsyncEngine) -> list[tuple[Photo, list[Variant]]]:
            async with engine.connect() as conn:
                # Both SELECTs see one snapshot: a switch commits photo and variants together, and a
                # reader must not see half of it. A SQLite read transaction under WAL is a snapshot.
                if not is_sqlite(engine):
                    await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    page = [rows.to_photo(row) for row in (await conn.execute(photo_query)).mappings()]
                    if not page:
                        return []
                    stmt = (
                        select(table)
                        .where(table.c.photo_id.in_([photo.id for photo in page]))
                        .order_by(table.c.photo_id, table.c.name)
                    )
                    by_photo: dict[uuid.UUID, list[Variant]] = {}
                    for row in (await conn.execute(stmt)).mappings():
                        variant = rows.to_variant(row)
                        by_photo.setdefault(variant.photo_id, []).append(variant)
            return [(photo, by_photo.get(photo.id, [])) for photo in page]

        return await self.run_read(shard_id, run, what, primary_only=True)

    async def switch_buckets(
        self, photo: Photo, variants: Sequence[Variant], to_bucket: str, *, move_original: bool = True
    ) -> bool:
        """Point the rows of the objects of ``photo`` and ``variants`` not yet in ``to_bucket`` at it,
        in one transaction, if the photo is live and ready and each of those rows still has the
        bucket and SHA-256 given; else write nothing and return False. With ``move_original``
        false the photo row's bucket is neither checked nor changed (an original kept in a cold
        tier while its variants move).

        The photo row is locked first (as in apply_photo_update), so a concurrent delete or variant
        upsert cannot interleave; ``updated_at`` is bumped so a shard move's catch-up copies the
        change; like every user write it waits out its owner's move fence.
        """
        if any(variant.photo_id != photo.id for variant in variants):
            raise ValueError(f"every variant must belong to photo {photo.id}")
        moving = [variant for variant in variants if variant.bucket != to_bucket]
        original_moves = move_original and photo.bucket != to_bucket
        if not moving and not original_moves:
            return True
        table = variants_table
        names = [variant.name for variant in moving]

        async def write() -> bool:
            async with self._guarded("switch_buckets", photo.owner_id) as conn:
                locked = select(photos.c.bucket, photos.c.sha256, photos.c.status).where(_live(photo.id))
                current = (await conn.execute(locked.with_for_update())).mappings().first()
                if current is None or current["status"] != PhotoStatus.READY.value:
                    return False
                if original_moves and (current["bucket"], current["sha256"]) != (photo.bucket, photo.sha256):
                    return False
                if moving:
                    of_moving = (table.c.photo_id == photo.id) & table.c.name.in_(names)
                    found = await conn.execute(
                        select(table.c.name, table.c.bucket, table.c.sha256).where(of_moving)
                    )
                    named = {row["name"]: (row["bucket"], row["sha256"]) for row in found.mappings()}
                    if any(named.get(variant.name) != (variant.bucket, variant.sha256) for variant in moving):
                        return False
                    await conn.execute(update(table).where(of_moving).values(bucket=to_bucket))
                values: dict[str, Any] = {"updated_at": _now()}
                if original_moves:
                    values["bucket"] = to_bucket
                await conn.execute(update(photos).where(photos.c.id == photo.id).values(values))
                return True

        return await self._fence_retrying(write)

    # --- access tracking and tiering ------------------------------------------------------------

    async def record_accesses(self, accesses: Mapping[uuid.UUID, datetime]) -> None:
        """Set each photo's ``last_accessed_at`` to the time given where that is later; unknown
        photos are skipped. One transaction per shard, shards written concurrently.

        Not fenced and ``updated_at`` is left alone: an access is a hint, and one recorded while
        its owner moves to another shard may be lost, which costs at worst an early move to cold.
        """
        by_shard: dict[int, list[dict[str, Any]]] = {}
        for photo_id, at in accesses.items():
            by_shard.setdefault(self.shard_of(photo_id), []).append({"p_id": photo_id, "p_at": at})
        later = photos.c.last_accessed_at.is_(None) | (photos.c.last_accessed_at < bindparam("p_at"))
        stmt = (
            update(photos)
            .where((photos.c.id == bindparam("p_id")) & later)
            .values(last_accessed_at=bindparam("p_at"))
        )

        async def write(shard_id: int, batch: list[dict[str, Any]]) -> None:
            async with self._writing(shard_id, "record_accesses") as conn:
                await conn.execute(stmt, batch)

        await asyncio.gather(*(write(shard_id, batch) for shard_id, batch in by_shard.items()))

    async def access_bands(
        self, shard_id: int, edges: Sequence[datetime], cold_buckets: Iterable[str]
    ) -> list[AccessBand]:
        """Live, ready originals of ``shard_id`` by band of last access (``edges`` newest first)
        and by whether a cold bucket holds them: one grouped scan, on the primary."""
        if any(newer <= older for newer, older in itertools.pairwise(edges)):
            raise ValueError("edges must be newest first")
        touched = func.coalesce(photos.c.last_accessed_at, photos.c.created_at)
        band: Any = case(*((touched >= edge, index) for index, edge in enumerate(edges)), else_=len(edges))
        cold = sorted(set(cold_buckets))
        in_cold: Any = photos.c.bucket.in_(cold) if cold else False
        inner = (
            select(band.label("band"), case((in_cold, 1), else_=0).label("cold"), photos.c.bytes)
            .where(photos.c.deleted_at.is_(None) & (photos.c.status == PhotoStatus.READY.value))
            .subquery()
        )
        stmt = select(
            inner.c.band, inner.c.cold, func.count().label("photos"), func.sum(inner.c.bytes).label("bytes")
        ).group_by(inner.c.band, inner.c.cold)
        found = await self._read_rows(shard_id, stmt, "access_bands", primary_only=True)
        bands = [
            AccessBand(int(row["band"]), bool(row["cold"]), int(row["photos"]), int(row["bytes"] or 0))
            for row in found
        ]
        return sorted(bands, key=lambda b: (b.band, b.cold))

    # --- pools and replicas (for /metrics) ------------------------------------------------------

    def pool_stats(self) -> list[PoolStat]:
        """Every connection pool now: each shard's primary, then the replicas, by shard."""
        primaries = [pool_stat(self._engines[shard_id], shard_id, "primary") for shard_id in self.shard_ids()]
        replicas = self._reads.replica_pool_stats() if self._reads is not None else []
        return primaries + replicas

    def replica_stats(self) -> list[ReplicaStat]:
        """Health, latency and read counts per server of every shard that has replicas."""
        return self._reads.replica_stats() if self._reads is not None else []

    # --- resumable uploads (tus)

    async def create_upload(self, upload: ResumableUpload) -> None:
        async def write() -> None:
            async with self._guarded("create_upload", upload.owner_id) as conn:
                await conn.execute(insert(uploads).values(rows.upload_row(upload)))

        await self._fence_retrying(write)

    async def get_upload(self, owner_id: uuid.UUID, upload_id: uuid.UUID) -> ResumableUpload | None:
        stmt = select(uploads).where((uploads.c.id == upload_id) & (uploads.c.user_id == owner_id))
        found = await self._read_rows(self.shard_of(owner_id), stmt, "get_upload", primary_only=True)
        return rows.to_upload(found[0]) if found else None

    async def _update_upload(self, what: str, owner_id: uuid.UUID, stmt: Any) -> bool:
        async def write() -> bool:
            async with self._guarded(what, owner_id) as conn:
                return (await conn.execute(stmt.returning(uploads.c.id))).first() is not None

        return await self._fence_retrying(write)

    async def lease_upload(
        self,
        owner_id: uuid.UUID,
        upload_id: uuid.UUID,
        offset: int,
        token: str,
        now: datetime,
        until: datetime,
    ) -> bool:
        free = uploads.c.lease_until.is_(None) | (uploads.c.lease_until < now)
        stmt = (
            update(uploads)
            .where(
                (uploads.c.id == upload_id)
                & (uploads.c.user_id == owner_id)
                & (uploads.c.upload_offset == offset)
                & uploads.c.photo_id.is_(None)
                & (uploads.c.expires_at > now)
                & free
            )
            .values(lease_token=token, lease_until=until)
        )
        return await self._update_upload("lease_upload", owner_id, stmt)

    def _leased(self, owner_id: uuid.UUID, upload_id: uuid.UUID, token: str) -> Any:
        held = (
            (uploads.c.id == upload_id) & (uploads.c.user_id == owner_id) & (uploads.c.lease_token == token)
        )
        return update(uploads).where(held)

    async def save_upload(
        self,
        owner_id: uuid.UUID,
        upload_id: uuid.UUID,
        token: str,
        offset: int,
        storage: Mapping[str, object],
        lease_until: datetime | None,
    ) -> bool:
        stmt = self._leased(owner_id, upload_id, token).values(
            upload_offset=offset,
            storage=dict(storage),
            lease_until=lease_until,
            lease_token=token if lease_until is not None else None,
        )
        return await self._update_upload("save_upload", owner_id, stmt)

    async def complete_upload(
        self, owner_id: uuid.UUID, upload_id: uuid.UUID, token: str, photo_id: uuid.UUID
    ) -> bool:
        stmt = self._leased(owner_id, upload_id, token).values(
            photo_id=photo_id, upload_offset=uploads.c.upload_length, lease_token=None, lease_until=None
        )
        return await self._update_upload("complete_upload", owner_id, stmt)

    async def delete_upload(self, owner_id: uuid.UUID, upload_id: uuid.UUID) -> ResumableUpload | None:
        stmt = (
            delete(uploads)
            .where((uploads.c.id == upload_id) & (uploads.c.user_id == owner_id))
            .returning(*uploads.c)
        )

        async def write() -> ResumableUpload | None:
            async with self._guarded("delete_upload", owner_id) as conn:
                row = (await conn.execute(stmt)).mappings().first()
                return None if row is None else rows.to_upload(row)

        return await self._fence_retrying(write)

    async def expired_uploads(self, shard_id: int, now: datetime, limit: int) -> list[ResumableUpload]:
        stmt = (
            select(uploads)
            .where(uploads.c.expires_at < now)
            .order_by(uploads.c.expires_at, uploads.c.id)
            .limit(limit)
        )
        found = await self._read_rows(shard_id, stmt, "expired_uploads", primary_only=True)
        return [rows.to_upload(row) for row in found]


def _check_router(reads: ReadRouter, engines: Mapping[int, AsyncEngine]) -> None:
    if reads.shard_ids() != sorted(engines):
        raise ValueError(f"the read router covers shards {reads.shard_ids()}, the store {sorted(engines)}")
    for shard_id, engine in engines.items():
        if reads.replica_set(shard_id).primary is not engine:
            raise ValueError(f"the replica set of shard {shard_id} is not on the store's primary engine")


if TYPE_CHECKING:

    def _implements_the_port(store: SqlMetadataStore) -> MetadataStore:
        return store  # mypy proves here that SqlMetadataStore satisfies the MetadataStore protocol
