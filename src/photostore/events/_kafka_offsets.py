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

# A tail read is one fetch of one batch per partition (milliseconds); one that takes longer is not
# waited for: the broker's ListOffsets answer stands, and lag readers (metrics, the reconciler) are
# never held up behind it.
TAIL_READ_S = 1.0


class EndOffsets:
    """Reads end offsets with one group-less consumer, shared under a lock."""

    def __init__(self, servers: str, client_id: str, request_timeout_s: float, *, read_tails: bool) -> None:
        self.read_tails = read_tails
        self._servers = servers
        self._client_id = client_id
        self._timeout_s = request_timeout_s
        self._lock = asyncio.Lock()
        self._consumer = self._new_consumer()
        self._renew = False
        self._stopping: set[asyncio.Task[None]] = set()

    def _new_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._servers,
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",  # a tail that is gone reads as nothing new: the reported end stays
            max_partition_fetch_bytes=1,  # the broker still sends the whole first batch: exactly the last one
            fetch_max_wait_ms=50,
            request_timeout_ms=int(self._timeout_s * 1000),
        )

    async def start(self) -> None:
        await self._consumer.start()

    def failed(self) -> None:
        """A read failed or timed out: the next one starts on a new client.

        Why: after a broker lost its topics and made them again, a client can keep waiting on
        metadata from before (reads time out again and again); a new client asks afresh.
        """
        self._renew = True

    async def _renewed(self) -> None:
        old, self._consumer = self._consumer, self._new_consumer()
        self._renew = False
        # The old client stops in the background: stopping one whose fetch waits on a broker that
        # lost its topics can take as long as its request timeout, and no read should wait for that.
        stopping = asyncio.create_task(_stop_within(old, self._timeout_s))
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)
        await self._consumer.start()

    async def close(self) -> None:
        await stop_consumer(self._consumer)
        if self._stopping:
            await asyncio.wait(self._stopping)

    async def read(self, topic: str, partitions: int) -> dict[int, int]:
        """partition -> offset after its last record, for every partition of ``topic``."""
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        async with self._lock:
            if self._renew:
                await self._renewed()
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
            deadline = loop.time() + min(self._timeout_s, TAIL_READ_S)
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
                self._renew = True  # a client that cannot read tails may hold metadata from before
        finally:
            self._consumer.assign([])  # stop fetching until the next read


async def _stop_within(consumer: AIOKafkaConsumer, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await stop_consumer(consumer)
    except Exception as error:  # best effort: its connections close with the process at worst
        log.debug("an end-offsets client did not stop cleanly: %r", error)
