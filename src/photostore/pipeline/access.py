"""Access tracking: when each original was last read, for the tiering job, at almost no cost.

A read of an original calls :meth:`AccessTracker.original_read`: two dict lookups, no I/O. A
photo read again within ``resolution`` of its last recorded read is not recorded again, so a
popular photo costs one write per period, not one per read. Recorded reads are written every
``flush_s`` as one UPDATE batch per shard (``MetadataStore.record_accesses``), and once more when
the process stops. A failed write keeps the reads for the next flush; what a SIGKILL loses is at
most ``flush_s`` of reads, which can only make an original look idle a little early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from photostore.metadata.port import MetadataStore

log = logging.getLogger(__name__)

# Photos remembered as recently recorded (a bound on memory; an evicted one is just recorded again).
REMEMBERED = 200_000
# Pending reads beyond this are written at once rather than at the next tick.
PENDING_HIGH_WATER = 50_000


@dataclass
class AccessStats:
    reads: int = 0  # originals read
    recorded: int = 0  # reads written to the database
    write_failures: int = 0


class AccessTracker:
    def __init__(
        self,
        metadata: MetadataStore,
        *,
        resolution_s: float,
        flush_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if resolution_s <= 0 or flush_s <= 0:
            raise ValueError("resolution_s and flush_s must be positive")
        self._metadata = metadata
        self._resolution_s = resolution_s
        self._flush_s = flush_s
        self._clock = clock
        self._recorded_at: dict[str, float] = {}  # photo id text -> last time recorded, oldest first
        self._pending: dict[str, float] = {}  # photo id text -> time of the read to write
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self.stats = AccessStats()

    def original_read(self, photo_id: str) -> None:
        """Note a read of the photo's original (the hot path: no I/O, no await)."""
        self.stats.reads += 1
        now = self._clock()
        last = self._recorded_at.get(photo_id)
        if last is not None and now - last < self._resolution_s:
            return
        if last is not None:
            del self._recorded_at[photo_id]  # re-inserted below: the dict stays oldest first
        elif len(self._recorded_at) >= REMEMBERED:
            del self._recorded_at[next(iter(self._recorded_at))]
        self._recorded_at[photo_id] = now
        self._pending[photo_id] = now
        if len(self._pending) >= PENDING_HIGH_WATER:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Write the pending reads; how many were written (0 on failure: they stay pending)."""
        async with self._flush_lock:
            batch, self._pending = self._pending, {}
            if not batch:
                return 0
            accesses = {uuid.UUID(text): datetime.fromtimestamp(at, UTC) for text, at in batch.items()}
            try:
                await self._metadata.record_accesses(accesses)
            except Exception:
                self.stats.write_failures += 1
                log.warning("could not record %d original reads; retrying at the next flush", len(batch))
                for text, at in batch.items():  # a newer read noted meanwhile wins
                    self._pending[text] = max(at, self._pending.get(text, at))
                return 0
            self.stats.recorded += len(batch)
            return len(batch)

    async def run(self) -> None:
        """Flush every ``flush_s`` (sooner when many reads wait) until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_s)
            self._wake.clear()
            await self.flush()
