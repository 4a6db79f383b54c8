"""Re-drives photos the pipeline lost: live, still processing, and unchanged for too long.

An event can be lost after its outbox row was marked published: a broker that restarts without its
log (tansu keeps everything in memory), a topic deleted by an operator, retention shorter than an
outage of the workers. The photo then stays ``processing`` forever. Every ``interval_s`` this
looks for photos whose row has not changed for ``after_s`` and starts their pipeline again with a
fresh ``photo.uploaded`` event, written through the outbox in the same transaction that touches
the row (so the next pass leaves it alone for another ``after_s``). Every stage is idempotent, so
a photo that was merely slow is processed twice at worst, never wrongly.

A photo may also be unchanged for ``after_s`` because it waits behind a backlog (a bulk import).
Re-driving it then would only add to the backlog, pass after pass, so a pass is left out while the
pipeline works through a backlog: the total lag of its consumer groups is above ``max_lag`` and
their committed offsets moved since the last pass. A backlog that does not move is not waited for:
workers that are stuck, or a lag that is wrong (a broker that lost its log can report ends it no
longer has), would otherwise keep lost photos lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from photostore.domain import ApplyResult, PhotoChanges
from photostore.errors import PhotostoreError
from photostore.events.port import EventLog
from photostore.metadata.port import MetadataStore
from photostore.pipeline.messages import PHOTO_UPLOADED, PIPELINE_GROUPS, TOPIC_UPLOAD, photo_event
from photostore.pipeline.notify import Notifier

log = logging.getLogger(__name__)

CONSUMER = "reconciler"  # the processed-event marker's consumer name for re-drives
BATCH = 200  # photos per shard per pass


@dataclass
class ReconcilerStats:
    passes: int = 0
    skipped: int = 0  # passes left out because the pipeline had a backlog
    redriven: int = 0


class StalledPhotoReconciler:
    def __init__(
        self, metadata: MetadataStore, events: EventLog, notifier: Notifier, *, after_s: float, max_lag: int
    ) -> None:
        if after_s <= 0 or max_lag < 0:
            raise ValueError(f"need after_s > 0 and max_lag >= 0, got {after_s}, {max_lag}")
        self.after_s = after_s
        self.max_lag = max_lag
        self.interval_s = min(after_s / 2, 60.0)
        self.stats = ReconcilerStats()
        self._metadata = metadata
        self._events = events
        self._consumed: int | None = None  # the groups' committed offsets, summed, at the last pass
        self._notifier = notifier

    async def pass_once(self, now: datetime | None = None) -> list[uuid.UUID]:
        """One pass over every shard; returns the ids of the photos re-driven (none while a backlog moves)."""
        backlog, consumed = await self.queues()
        moving = self._consumed is None or consumed > self._consumed
        self._consumed = consumed
        if backlog > self.max_lag and moving:
            self.stats.skipped += 1
            log.info("reconciler waits: %d events in the pipeline's queues", backlog)
            return []
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=self.after_s)
        found = await asyncio.gather(
            *(self._shard(shard_id, cutoff) for shard_id in self._metadata.shard_ids())
        )
        redriven = [photo_id for ids in found for photo_id in ids]
        self.stats.passes += 1
        self.stats.redriven += len(redriven)
        if redriven:
            log.warning(
                "re-drove %d photos unchanged for over %g s through the pipeline", len(redriven), self.after_s
            )
            self._notifier.notify()
        return redriven

    async def queues(self) -> tuple[int, int]:
        """The pipeline's queues, read once: (events waiting: the total lag of its consumer groups,
        how far the groups got: their committed offsets, summed)."""
        ends = {info.name: info.end_offsets for info in await self._events.topics()}
        committed = await asyncio.gather(
            *(self._events.committed(group, topic) for group, topic in PIPELINE_GROUPS)
        )
        backlog = sum(
            max(0, end - done.get(partition, 0))
            for (_, topic), done in zip(PIPELINE_GROUPS, committed, strict=True)
            for partition, end in ends.get(topic, {}).items()
        )
        return backlog, sum(sum(done.values()) for done in committed)

    async def backlog(self) -> int:
        """Events waiting in the pipeline's queues: the total lag of its consumer groups."""
        return (await self.queues())[0]

    async def _shard(self, shard_id: int, cutoff: datetime) -> list[uuid.UUID]:
        redriven = []
        for photo in await self._metadata.stalled_photos(shard_id, cutoff, BATCH):
            event = photo_event(TOPIC_UPLOAD, PHOTO_UPLOADED, photo.id, photo.owner_id)
            result = await self._metadata.apply_photo_update(
                CONSUMER, uuid.uuid4(), photo.id, PhotoChanges(), [], [event]
            )
            if result is ApplyResult.APPLIED:  # not deleted meanwhile
                redriven.append(photo.id)
        return redriven

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
            if stop.is_set():
                return
            try:
                await self.pass_once()
            except PhotostoreError as exc:  # a shard or the log is down: the next pass tries again
                log.warning("reconciler pass failed: %s", exc.detail)
            except Exception:
                log.exception("reconciler pass failed")
