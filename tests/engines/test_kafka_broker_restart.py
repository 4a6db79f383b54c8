"""A consumer group member on a Kafka-protocol broker that restarts without its log (tansu keeps
everything in memory): the same member, with no help, consumes what is published after the restart.

Two ways a member can be left behind such a restart, each checked here: its group is gone (it must
rejoin and get its partitions again), and its fetch position is past the end of the partition the
broker now has (Apache Kafka answers that fetch with OffsetOutOfRange and the client resets; tansu
answers with nothing, so the member must notice the position is past the end itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiokafka import TopicPartition

from photostore.events._kafka_consumer import KafkaConsumer
from photostore.events.kafka_log import KafkaEventLog
from photostore.events.port import OutgoingRecord, Record
from photostore.settings import EventSettings, KafkaSettings
from tests.support.engines.kafka import TansuBroker, running_tansu

TOPIC = "photo-upload"
SESSION_S = 2.0  # tansu answers JoinGroup after half the session


@pytest.fixture
def broker() -> Iterator[TansuBroker]:
    with running_tansu() as started:
        yield started


async def _open(broker: TansuBroker) -> KafkaEventLog:
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap, request_timeout_s=5.0, partitions_scale=1 / 32
    )
    log = KafkaEventLog(settings, EventSettings().topics, session_timeout_s=SESSION_S, check_interval_s=0.5)
    await log.start()
    return log


def _records(count: int, tag: str) -> list[OutgoingRecord]:
    return [OutgoingRecord(TOPIC, f"key-{i}", f"{tag}-{i}".encode()) for i in range(count)]


async def _until_it_works(call: Callable[[], Awaitable[object]], deadline_s: float = 30.0) -> None:
    """Call until it returns without raising (the broker is coming back), or the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while True:
        try:
            await call()
            return
        except Exception:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _topics_back(log: KafkaEventLog) -> None:
    """Wait until the log has checked (and so recreated) its topics on the restarted broker.

    Why first: tansu acknowledges a produce to a topic that does not exist yet and then loses those
    records when the topic is created (the reconciler re-drives what the pipeline loses that way).
    """
    await asyncio.sleep(0.6)  # past the log's check interval: the next call checks the topics
    await _until_it_works(log.topics)


async def _round_trip(log: KafkaEventLog, consumer: KafkaConsumer, count: int, tag: str) -> set[bytes]:
    """Publish ``count`` records (retrying while the broker comes back); what the consumer then got."""
    records = _records(count, tag)
    await _until_it_works(lambda: log.publish(records))
    return {r.value for r in records} - await _consume(consumer, {r.value for r in records})


async def _consume(consumer: KafkaConsumer, want: set[bytes], deadline_s: float = 30.0) -> set[bytes]:
    """Poll (ignoring outages) until every value in ``want`` came, or the deadline."""
    got: set[bytes] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while not want <= got and loop.time() < deadline:
        try:
            records: list[Record] = await consumer.poll(max_records=100, timeout_s=0.25)
        except Exception:
            await asyncio.sleep(0.2)
            continue
        got |= {r.value for r in records}
        if records:
            await consumer.commit(records)
    return got


async def test_a_member_consumes_again_after_the_broker_restarted_empty(broker: TansuBroker) -> None:
    log = await _open(broker)
    try:
        consumer = await log.consumer("restart-group", TOPIC)
        assert await _round_trip(log, consumer, 40, "before") == set()

        broker.restart()
        await _topics_back(log)
        # Fewer than before: every partition ends below the positions the member had.
        assert await _round_trip(log, consumer, 4, "after") == set()
    finally:
        await log.close()


async def test_a_position_past_the_partitions_end_is_reset_to_the_earliest(broker: TansuBroker) -> None:
    log = await _open(broker)
    try:
        consumer = await log.consumer("past-end-group", TOPIC)
        assert await _round_trip(log, consumer, 8, "first") == set()
        # What a broker that lost its log leaves behind: positions far past every partition's end.
        for partition in consumer.assignment():
            consumer._consumer.seek(TopicPartition(TOPIC, partition), 10_000)

        assert await _round_trip(log, consumer, 8, "more") == set()
        assert consumer.positions_reset > 0
    finally:
        await log.close()
