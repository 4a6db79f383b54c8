"""A consumer loop: poll, handle each partition's records in order, commit after handling.

Partitions are handled concurrently (bounded), records within one partition sequentially, so the
per-key order the log gives is kept. A record whose handler fails because a backend is unavailable
is retried, with capped backoff, until it succeeds or the loop stops (an outage must not drop
work). A record that keeps failing for any other reason is retried a few times and then skipped
and counted, so one poison event cannot stall its partition forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from photostore.errors import BackendUnavailable
from photostore.events.port import EventLog, Record

log = logging.getLogger(__name__)

Handler = Callable[[Record], Awaitable[None]]
MAX_OUTAGE_BACKOFF_S = 5.0


@dataclass
class ConsumerStats:
    handled: int = 0
    failed: int = 0
    retries: int = 0


class ConsumerLoop:
    def __init__(
        self,
        events: EventLog,
        group: str,
        topic: str,
        handler: Handler,
        *,
        concurrency: int = 2,
        batch: int = 32,
        max_attempts: int = 5,
        backoff_s: float = 0.2,
    ) -> None:
        self.group = group
        self.topic = topic
        self.stats = ConsumerStats()
        self._events = events
        self._handler = handler
        self._limit = asyncio.Semaphore(concurrency)
        self._batch = batch
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._stop = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        consumer = await self._events.consumer(self.group, self.topic)
        try:
            while not stop.is_set():
                try:
                    records = await consumer.poll(max_records=self._batch, timeout_s=0.25)
                    if records:
                        await self._handle_batch(records)
                        await consumer.commit(records)
                except Exception:
                    log.exception("consumer %s/%s pass failed; retrying", self.group, self.topic)
                    await asyncio.sleep(self._backoff_s)
        finally:
            await consumer.close()

    async def _handle_batch(self, records: list[Record]) -> None:
        by_partition: dict[int, list[Record]] = defaultdict(list)
        for record in records:
            by_partition[record.partition].append(record)
        await asyncio.gather(*(self._handle_partition(rs) for rs in by_partition.values()))

    async def _handle_partition(self, records: list[Record]) -> None:
        async with self._limit:
            for record in records:
                await self._handle_one(record)

    async def _handle_one(self, record: Record) -> None:
        attempt = 0
        outage = 0
        while True:
            try:
                await self._handler(record)
            except BackendUnavailable as exc:
                if self._stop.is_set():
                    raise  # not committed: the record comes again after the restart
                outage += 1
                self.stats.retries += 1
                if outage == 1:
                    log.warning("%s/%s waits for a backend: %s", self.group, self.topic, exc.detail)
                await asyncio.sleep(min(self._backoff_s * 2 ** min(outage, 6), MAX_OUTAGE_BACKOFF_S))
                continue
            except Exception:
                attempt += 1
                if attempt == self._max_attempts:
                    self.stats.failed += 1
                    log.exception(
                        "giving up on %s[%d]@%d after %d attempts",
                        record.topic,
                        record.partition,
                        record.offset,
                        attempt,
                    )
                    return
                self.stats.retries += 1
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
                continue
            self.stats.handled += 1
            return
