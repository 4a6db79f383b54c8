"""The outbox relay: moves committed outbox events of every shard to the event log.

At least once: events are marked published only after the log has them durably, so a crash in
between publishes them again, and the consumers' idempotency absorbs the duplicate. One relay runs
at a time per deployment (``RelayLease``); more would only publish duplicates.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from pathlib import Path

from photostore.events.port import EventLog, OutgoingRecord
from photostore.metadata.port import MetadataStore
from photostore.pipeline.messages import encode
from photostore.pipeline.notify import Notifier

log = logging.getLogger(__name__)

BATCH = 500
WARN_EVERY_S = 10.0  # a shard that stays down is logged this often, not at every pass


class RelayLease:
    """An exclusive lock file: held by the one relay that publishes; others stand by."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


class ShardsFailed(Exception):
    """Some shards' batches failed in a pass; ``moved`` events of the other shards went out."""

    def __init__(self, errors: dict[int, BaseException], moved: int) -> None:
        self.errors = errors
        self.moved = moved
        detail = "; ".join(f"shard {s}: {type(e).__name__}: {e}" for s, e in sorted(errors.items()))
        super().__init__(f"{len(errors)} shard(s) failed ({detail}); {moved} events of the others moved")


class OutboxRelay:
    def __init__(
        self, metadata: MetadataStore, events: EventLog, notifier: Notifier, interval_s: float
    ) -> None:
        self._metadata = metadata
        self._events = events
        self._notifier = notifier
        self._interval_s = interval_s
        self.published = 0

    async def drain_shard(self, shard_id: int) -> int:
        """Publish one batch of a shard's pending events; returns how many."""
        pending = await self._metadata.pending_outbox(shard_id, BATCH)
        if not pending:
            return 0
        records = [OutgoingRecord(r.event.topic, r.event.key, encode(r.event)) for r in pending]
        await self._events.publish(records)
        await self._metadata.mark_published(shard_id, [r.seq for r in pending])
        self.published += len(pending)
        return len(pending)

    async def drain_all(self) -> int:
        """One batch of every shard, shards side by side; raises if any shard failed (after the
        others moved theirs), with the number moved in ``ShardsFailed.moved``."""
        shard_ids = list(self._metadata.shard_ids())
        results = await asyncio.gather(*(self.drain_shard(s) for s in shard_ids), return_exceptions=True)
        moved = sum(result for result in results if isinstance(result, int))
        failed = {s: r for s, r in zip(shard_ids, results, strict=True) if isinstance(r, BaseException)}
        if failed:
            raise ShardsFailed(failed, moved)
        return moved

    async def run(self, stop: asyncio.Event, lease: RelayLease | None = None) -> None:
        warned_at = float("-inf")
        while not stop.is_set():
            if lease is not None and not lease.try_acquire():
                await _sleep_or_stop(stop, 1.0)
                continue
            try:
                moved = await self.drain_all()
            except ShardsFailed as error:
                # A shard (or the log) is down: the others kept moving; try the failed ones again soon.
                now = asyncio.get_running_loop().time()
                if now - warned_at >= WARN_EVERY_S:
                    warned_at = now
                    log.warning("outbox relay: %s", error)
                if error.moved == 0:
                    await _sleep_or_stop(stop, 1.0)
                continue
            except Exception:
                log.exception("outbox relay pass failed; retrying")
                await _sleep_or_stop(stop, 1.0)
                continue
            if moved == 0:
                await self._notifier.wait(self._interval_s)
        if lease is not None:
            lease.release()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
