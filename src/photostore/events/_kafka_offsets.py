"""End offsets of a topic's partitions, exact on brokers whose ListOffsets(latest) is not.

tansu 0.6 answers ListOffsets(latest) with the base offset of the partition's last record batch
plus one, not with the offset after its last record: a batch of 50 records at offsets 0..49 reads
as end 1. So after ListOffsets this reads each non-empty partition's tail: it fetches from the
reported end - 1, which is inside the last batch on either kind of broker, and the last record
it gets, plus one, is the end. On Apache Kafka that is the reported end again (the tail read costs
one Fetch of one batch per non-empty partition and changes nothing); on tansu it is the right end.
Partitions with no retained record (start offset = end) are not read. The read can only raise an
end, never lower it, so a partition whose tail cannot be read (retention just deleted it) keeps the
broker's answer.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from photostore.events._kafka_support import stop_consumer

log = logging.getLogger(__name__)


class EndOffsets:
    """Reads end offsets with one group-less consumer, shared under a lock."""

    def __init__(self, servers: str, client_id: str, request_timeout_s: float, *, read_tails: bool) -> None:
        self.read_tails = read_tails
        self._timeout_s = request_timeout_s
        self._lock = asyncio.Lock()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=servers,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",  # a tail that is gone reads as nothing new: the reported end stays
            max_partition_fetch_bytes=1,  # the broker still sends the whole first batch: exactly the last one
            fetch_max_wait_ms=50,
            request_timeout_ms=int(request_timeout_s * 1000),
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def close(self) -> None:
        await stop_consumer(self._consumer)

    async def read(self, topic: str, partitions: int) -> dict[int, int]:
        """partition -> offset after its last record, for every partition of ``topic``."""
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        async with self._lock:
            reported = await self._consumer.end_offsets(tps)
            ends = {tp.partition: int(offset) for tp, offset in reported.items()}
            if self.read_tails:
                starts = await self._consumer.beginning_offsets(tps)
                nonempty = {tp.partition for tp, start in starts.items() if ends[tp.partition] > start}
                await self._read_tails(topic, ends, nonempty)
        return ends

    async def _read_tails(self, topic: str, ends: dict[int, int], nonempty: set[int]) -> None:
        pending = {TopicPartition(topic, p): ends[p] for p in sorted(nonempty)}
        if not pending:
            return
        self._consumer.assign(list(pending))
        try:
            for tp, end in pending.items():
                self._consumer.seek(tp, end - 1)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._timeout_s
            while pending and (left := deadline - loop.time()) > 0:
                batches = await self._consumer.getmany(*pending, timeout_ms=int(left * 1000))
                for tp, records in batches.items():
                    if records:
                        ends[tp.partition] = max(ends[tp.partition], records[-1].offset + 1)
                    pending.pop(tp, None)
            if pending:
                log.debug(
                    "tail of %d partitions of %s not read in time; kept ListOffsets", len(pending), topic
                )
        finally:
            self._consumer.assign([])  # stop fetching until the next read
