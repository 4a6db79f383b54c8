"""Online bucket moves: put every object where a target bucket map says, while the service runs.

One photo's objects (original and variants) move together:

1. journal "copying P's keys from S to T" (fsynced), so that a crash can find the copies;
2. copy each object to T, read it back and compare its SHA-256 with the row's;
3. switch: one conditional transaction points the rows at T only if the photo is still live and
   ready and its rows still name S with the same SHA-256 (``MetadataStore.switch_buckets``);
   otherwise the copies are deleted at once (the photo was deleted, or its row changed);
4. journal "switched: the sources may go at now + grace";
5. after the grace period (the longest a reader may hold a row read before the switch, from a
   cache) the sources are deleted and the journal entry dropped.

A reader holding any row of the photo, older or newer than the switch, finds the object it names.

Crash safety: the rows are the journal of switches; the journal file (:class:`BucketMoveJournal`)
holds the copies made and the source deletes owed. Whatever step a SIGKILL hit, the next run settles
each entry from the rows, read on the primary: the place the rows name is kept and the other copy
deleted, a source only after a grace period counted again from the restart. For a deleted photo the
photo.deleted handler removes what the rows name and the mover the other copy, so nothing is left.

Photos still processing are skipped (their variants are being written to the bucket the row names)
and retried at the end in bounded passes; photos uploaded during the run by processes still on the
old map are caught by a last scan from where each shard's scan ended (ids grow with time).
One mover runs per journal folder at a time (an exclusive lock, released when the process dies).

The journal, the result records and the verification live in :mod:`.bucket_journal`,
:mod:`.bucket_results` and :mod:`.bucket_verify`; their public names are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from photostore.blobs.port import BlobStore
from photostore.domain import Photo, PhotoStatus, Variant
from photostore.errors import BlobNotFound, ShardMoveInProgress
from photostore.metadata.port import MetadataStore
from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.bucket_journal import BucketMoveJournal, JournalEntry
from photostore.rebalance.bucket_results import (
    RETRYABLE,
    BucketPair,
    MoveCounters,
    MoveFailure,
    MoveOutcome,
    MovePlan,
    MoveResult,
    Progress,
    Tracker,
)
from photostore.rebalance.bucket_verify import (
    ORIGINAL,
    ObjectProblem,
    PhotoObject,
    ProblemKind,
    VerifyReport,
    bounded,
    objects_of,
    sha256_of,
    verify_objects,
)
from photostore.rebalance.destinations import (
    Destination,
    DestinationRule,
    MapDestinations,
    objects_to_move,
)

__all__ = [
    "DEFAULT_GRACE_S",
    "ORIGINAL",
    "RETRYABLE",
    "BucketMoveJournal",
    "BucketMoveSession",
    "BucketMover",
    "BucketPair",
    "JournalEntry",
    "MoveCounters",
    "MoveFailure",
    "MoveOutcome",
    "MovePlan",
    "MoveResult",
    "ObjectProblem",
    "ProblemKind",
    "Progress",
    "VerifyReport",
    "verify_objects",
]

log = logging.getLogger(__name__)

# The view cache's TTL (pipeline/reads.py READY_TTL_S). With a shared cache tier (Redis) a process
# may keep a view it read from there for runtime.SHARED_CACHE_LOCAL_TTL_S more: pass 20 s then.
DEFAULT_GRACE_S = 10.0


def _named_buckets(state: tuple[Photo, list[Variant]] | None) -> dict[str, str]:
    """Object key -> the bucket the rows name for it."""
    if state is None:
        return {}
    return {o.key: o.bucket for o in objects_of(*state)}


# --- one run's machinery -------------------------------------------------------------------------------


class BucketMoveSession:
    """Moves photos one at a time (concurrently) with the journal open and owed deletes running.

    Get one from :meth:`BucketMover.session`. On entry it settles what an earlier run left in the
    journal; on a clean exit it waits until every owed source delete is done.
    """

    def __init__(self, mover: BucketMover, journal: BucketMoveJournal) -> None:
        self._mover = mover
        self._journal = journal
        self._metadata = mover.metadata
        self._blobs = mover.blobs
        self._counters = mover.counters
        self.failures: list[MoveFailure] = []
        # Photos with a journal entry or a move in flight: never two moves of one photo at once.
        self._busy: set[uuid.UUID] = set()
        self._due: list[tuple[float, uuid.UUID]] = []  # heap of (delete_after, photo)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._deleter: asyncio.Task[None] | None = None
        self._bucket_lock = asyncio.Lock()

    # --- lifecycle ----------------------------------------------------------------------------------

    async def _start(self) -> None:
        for bucket in self._mover.rule.buckets():
            await self._ensure_bucket(bucket)
        self._deleter = asyncio.create_task(self._delete_when_due(), name="bucket-move-deletes")
        by_photo: dict[uuid.UUID, float | None] = {}
        for entry in await self._journal.entries():
            by_photo[entry.photo_id] = entry.delete_after
        for photo_id, delete_after in by_photo.items():
            self._busy.add(photo_id)
            await self._settle(photo_id, due_passed=delete_after is not None and delete_after <= time.time())
        if by_photo:
            log.info("bucket moves: settled %d photos an earlier run left in the journal", len(by_photo))

    async def _stop(self) -> None:
        deleter, self._deleter = self._deleter, None
        if deleter is None:
            return
        if deleter.done():
            if not deleter.cancelled() and deleter.exception() is not None:
                # Already raised by drain(), or the run failed first: its own error is what counts.
                log.warning("bucket moves: owed deletes stopped: %r", deleter.exception())
            return
        deleter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await deleter

    async def drain(self) -> None:
        """Wait until every owed source delete is done (at most the grace period after the last switch)."""
        deleter = self._deleter
        if deleter is None:
            return
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            await asyncio.wait({idle, deleter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
        if deleter.done():
            deleter.result()  # the deleter's error, if it failed
            raise RuntimeError("the bucket move deleter stopped")

    # --- moving ---------------------------------------------------------------------------------------

    async def move_photo(self, photo: Photo, variants: Sequence[Variant]) -> MoveOutcome:
        """Move the objects of ``photo`` (as read, with ``variants``) that the target map places
        elsewhere; the switch re-checks the rows, so a stale read costs a discarded copy at worst."""
        destination = self._mover.rule.destination(photo)
        objects = objects_to_move(photo, variants, destination)
        if destination is None or not objects:
            return MoveOutcome.IN_PLACE
        target = destination.bucket
        if photo.deleted_at is not None or photo.status is PhotoStatus.DELETED:
            return MoveOutcome.GONE
        if photo.status is not PhotoStatus.READY:
            return MoveOutcome.PROCESSING
        if photo.id in self._busy:
            return MoveOutcome.BUSY
        self._busy.add(photo.id)
        try:
            for bucket in {target, *(o.bucket for o in objects)}:
                await self._ensure_bucket(bucket)
            await self._journal.record_copies(photo.id, [(o.key, o.bucket, target) for o in objects])
        except BaseException:
            self._busy.discard(photo.id)  # nothing journaled (or a journal error): nothing to settle
            raise
        failure = await self._copy(photo.id, objects, target)
        if failure is None and await self._switch(photo, variants, destination):
            delete_after = time.time() + self._mover.grace_s
            await self._journal.record_switch(photo.id, delete_after)
            self._counters.objects_moved += len(objects)
            self._counters.bytes_moved += sum(o.size for o in objects)
            self._schedule(photo.id, delete_after)
            return MoveOutcome.MOVED
        state = await self._settle(photo.id, due_passed=False)
        if state is None or state[0].deleted_at is not None:
            return MoveOutcome.GONE  # a missing source was the delete handler's doing
        if failure is not None:
            self.failures.append(failure)
            log.warning(
                "bucket moves: %s/%s of photo %s: %s", failure.bucket, failure.key, photo.id, failure.reason
            )
            return MoveOutcome.FAILED
        return MoveOutcome.CHANGED

    async def _switch(self, photo: Photo, variants: Sequence[Variant], destination: Destination) -> bool:
        moving = variants if destination.variants else ()
        try:
            return await self._metadata.switch_buckets(
                photo, moving, destination.bucket, move_original=destination.original
            )
        except ShardMoveInProgress:
            return False  # its owner is being moved to another shard: the copies go, a later pass retries

    async def _copy(
        self, photo_id: uuid.UUID, objects: Sequence[PhotoObject], target: str
    ) -> MoveFailure | None:
        """Copy each object to ``target`` and check the copy; the first problem, if any."""
        for o in objects:
            problem = await self._copy_one(o, target)
            if problem is not None:
                return MoveFailure(photo_id, o.name, o.bucket, o.key, problem)
        return None

    async def _copy_one(self, o: PhotoObject, target: str) -> str | None:
        try:
            data = await self._blobs.get(o.bucket, o.key)
        except BlobNotFound:
            return "source missing"
        # A corrupt source is not spread; a copy that reads back wrong is not switched to.
        if await sha256_of(data) != o.sha256:
            self._counters.checksum_failures += 1
            return "the source's SHA-256 differs from the row's"
        await self._blobs.put(target, o.key, data, o.content_type)
        if await sha256_of(await self._blobs.get(target, o.key)) != o.sha256:
            self._counters.checksum_failures += 1
            return f"the copy in {target!r} reads back with another SHA-256"
        return None

    # --- settling journal entries ------------------------------------------------------------------

    async def _settle(self, photo_id: uuid.UUID, *, due_passed: bool) -> tuple[Photo, list[Variant]] | None:
        """Resolve the photo's journal entries from its rows (on the primary): the place the rows
        name stays, the other copy goes (a source only once ``due_passed``). Returns the rows read."""
        entries = await self._journal.entries(photo_id)
        state = await self._metadata.photo_and_variants(photo_id)
        named = _named_buckets(state)
        switched = [e for e in entries if named.get(e.key) == e.target]
        if switched and not due_passed:
            delete_after = entries[0].delete_after
            if delete_after is None:  # killed between the switch and its record: start the grace now
                delete_after = time.time() + self._mover.grace_s
                await self._journal.record_switch(photo_id, delete_after)
            self._schedule(photo_id, delete_after)
            return state
        for entry in entries:
            if named.get(entry.key) == entry.target:
                await self._delete(entry.source, entry.key)
                self._counters.sources_deleted += 1
            else:  # not switched (or switched elsewhere): the copy is nobody's
                await self._delete(entry.target, entry.key)
                self._counters.copies_discarded += 1
        await self._journal.forget(photo_id)
        self._busy.discard(photo_id)
        return state

    async def _delete(self, bucket: str, key: str) -> None:
        await self._ensure_bucket(bucket)
        await self._blobs.delete(bucket, key)

    def _schedule(self, photo_id: uuid.UUID, delete_after: float) -> None:
        heapq.heappush(self._due, (delete_after, photo_id))
        self._idle.clear()
        self._wake.set()

    async def _delete_when_due(self) -> None:
        while True:
            if not self._due:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._due[0][0] - time.time()
            if delay > 0:
                self._wake.clear()  # an earlier entry scheduled meanwhile wakes us
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            now = time.time()
            batch: list[uuid.UUID] = []
            while self._due and self._due[0][0] <= now:
                batch.append(heapq.heappop(self._due)[1])
            jobs = [partial(self._settle, photo_id, due_passed=True) for photo_id in batch]
            await bounded(self._mover.concurrency, jobs)

    async def _ensure_bucket(self, bucket: str) -> None:
        """Buckets a new map adds, or that rows name after a restart without them, are opened."""
        if bucket in self._blobs.buckets():
            return
        async with self._bucket_lock:
            if bucket not in self._blobs.buckets():
                await self._blobs.add_bucket(bucket)


# --- the mover -------------------------------------------------------------------------------------


@dataclass
class _RunState:
    tracker: Tracker
    left: dict[uuid.UUID, MoveOutcome] = field(default_factory=dict)


class BucketMover:
    """Moves every object whose row names another bucket than ``target`` gives its photo.

    ``journal_dir``: a folder of this deployment kept across runs (a rerun after a crash must use
    the same one). ``grace_s``: how long a source outlives its switch (the longest a reader may keep
    a row from a cache). ``processing_passes``: how many times photos skipped as processing (or
    busy, or changed) are tried again at the end, ``processing_wait_s`` apart. ``rule``: where
    objects belong (default: ``target``'s bucket for every object).
    """

    def __init__(
        self,
        metadata: MetadataStore,
        blobs: BlobStore,
        target: BucketMap,
        journal_dir: Path,
        *,
        grace_s: float = DEFAULT_GRACE_S,
        concurrency: int = 8,
        page_size: int = 200,
        processing_passes: int = 3,
        processing_wait_s: float = 2.0,
        rule: DestinationRule | None = None,
    ) -> None:
        if grace_s < 0 or concurrency < 1 or page_size < 1 or processing_passes < 0:
            raise ValueError("grace_s >= 0, concurrency >= 1, page_size >= 1, processing_passes >= 0")
        self.metadata = metadata
        self.blobs = blobs
        self.target = target
        self.rule: DestinationRule = rule if rule is not None else MapDestinations(target)
        self.journal_dir = Path(journal_dir)
        self.grace_s = grace_s
        self.concurrency = concurrency
        self.page_size = page_size
        self.processing_passes = processing_passes
        self.processing_wait_s = processing_wait_s
        self.counters = MoveCounters()

    async def _pages(
        self, shard_id: int, after: uuid.UUID | None
    ) -> AsyncIterator[list[tuple[Photo, list[Variant]]]]:
        while True:
            page = await self.metadata.live_photos_after(shard_id, after, self.page_size)
            if not page:
                return
            after = page[-1][0].id
            yield page

    async def plan(self, previous: BucketMap | None = None) -> MovePlan:
        """The dry run: objects and bytes to move per (source, target) pair, from the rows now.

        ``previous``: the map in force before ``target``; gives ``ideal_share``.
        """
        pairs: dict[tuple[str, str], list[int]] = {}
        photos = objects = size = 0
        for shard_id in self.metadata.shard_ids():
            async for page in self._pages(shard_id, None):
                for photo, variants in page:
                    photos += 1
                    for o in objects_of(photo, variants):
                        objects += 1
                        size += o.size
                    destination = self.rule.destination(photo)
                    if destination is None:
                        continue
                    for o in objects_to_move(photo, variants, destination):
                        counts = pairs.setdefault((o.bucket, destination.bucket), [0, 0])
                        counts[0] += 1
                        counts[1] += o.size
        ideal = None if previous is None else previous.moved_keys_fraction(self.target)
        return MovePlan(
            target_version=self.target.version,
            photos=photos,
            objects=objects,
            bytes=size,
            pairs=tuple(BucketPair(s, t, n, b) for (s, t), (n, b) in sorted(pairs.items())),
            ideal_share=ideal,
        )

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[BucketMoveSession]:
        """The journal open (and locked), what an earlier run left settled, owed deletes running;
        a clean exit waits for them. Raises ``Conflict`` if another mover holds the journal."""
        journal = BucketMoveJournal(self.journal_dir)
        await asyncio.to_thread(journal.open)
        session = BucketMoveSession(self, journal)
        try:
            await session._start()
            yield session
            await session.drain()
        finally:
            await session._stop()
            journal.close()

    async def run(self, progress: Progress | None = None, plan: MovePlan | None = None) -> MoveResult:
        """Move everything the target map places elsewhere; returns when the sources are deleted.

        ``progress(done, total)`` counts objects; ``plan`` (from :meth:`plan`) saves a scan.
        """
        plan = plan if plan is not None else await self.plan()
        moved_before, bytes_before = self.counters.objects_moved, self.counters.bytes_moved
        state = _RunState(Tracker(progress, plan.objects_to_move))
        async with self.session() as session:
            ends = {
                shard_id: await self._scan(session, shard_id, None, state)
                for shard_id in self.metadata.shard_ids()
            }
            # Photos uploaded meanwhile by processes still on the old map have newer ids.
            for shard_id, end in ends.items():
                await self._scan(session, shard_id, end, state)
            await self._retry(session, state)
            failures = tuple(session.failures)
        return MoveResult(
            objects_moved=self.counters.objects_moved - moved_before,
            bytes_moved=self.counters.bytes_moved - bytes_before,
            left_behind=dict(state.left),
            failures=failures,
        )

    async def _scan(
        self, session: BucketMoveSession, shard_id: int, after: uuid.UUID | None, state: _RunState
    ) -> uuid.UUID | None:
        """Move the photos of ``shard_id`` after ``after``; the last id seen."""
        async for page in self._pages(shard_id, after):
            after = page[-1][0].id
            await bounded(self.concurrency, [self._job(session, p, v, state) for p, v in page])
        return after

    def _job(
        self, session: BucketMoveSession, photo: Photo, variants: list[Variant], state: _RunState
    ) -> Callable[[], Awaitable[None]]:
        async def move() -> None:
            outcome = await session.move_photo(photo, variants)
            if outcome in RETRYABLE:
                state.left[photo.id] = outcome
                return
            state.left.pop(photo.id, None)
            state.tracker.advance(len(objects_to_move(photo, variants, self.rule.destination(photo))))

        return move

    async def _retry(self, session: BucketMoveSession, state: _RunState) -> None:
        """Bounded passes over the photos skipped so far, each read again on the primary."""
        for attempt in range(self.processing_passes):
            if not state.left:
                return
            if MoveOutcome.BUSY in state.left.values():
                await session.drain()  # the owed source deletes done, those photos can move again
            if attempt and MoveOutcome.PROCESSING in state.left.values():
                await asyncio.sleep(self.processing_wait_s)
            jobs = []
            for photo_id in list(state.left):
                found = await self.metadata.photo_and_variants(photo_id)
                if found is None or found[0].deleted_at is not None:
                    state.left.pop(photo_id)
                    continue
                jobs.append(self._job(session, *found, state))
            await bounded(self.concurrency, jobs)
