"""What only the Kafka log promises: scaled topics, topic setup against what the broker has, outages and
a broker that comes back empty, late commits after a rebalance, and misuse errors.

Runs against a real tansu broker on loopback (one per module, restarted empty before each test). The
pure helpers are tested without one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from photostore.errors import BackendUnavailable, ConfigError
from photostore.events._kafka_support import key_partitioner, scaled_topics
from photostore.events.kafka_log import KafkaEventLog
from photostore.events.partitioning import partition_for
from photostore.events.port import Consumer, OutgoingRecord, Record
from photostore.settings import EventSettings, KafkaSettings, TopicSettings
from tests.support.engines.availability import free_port
from tests.support.engines.kafka import TansuBroker, running_tansu

TOPICS = EventSettings().topics
TOPIC = "photo-processing"
REQUEST_TIMEOUT_S = 1.0
SESSION_S = 2.0


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with running_tansu() as started:
        yield started


@pytest.fixture
def clean(broker: TansuBroker) -> TansuBroker:
    """The module's broker, restarted: empty (deleting topics is not enough here, as a test that
    writes while the broker has no topics leaves records behind that tansu does not delete)."""
    broker.restart()
    return broker


def _settings(broker: TansuBroker, **overrides: object) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=broker.bootstrap, request_timeout_s=REQUEST_TIMEOUT_S, **overrides)


@pytest.fixture
async def log(clean: TansuBroker) -> AsyncIterator[KafkaEventLog]:
    opened = KafkaEventLog(_settings(clean), TOPICS, session_timeout_s=SESSION_S, check_interval_s=0.5)
    await opened.start()
    yield opened
    await opened.close()


def _group() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def _records(count: int, keys: int, tag: str = "") -> list[OutgoingRecord]:
    return [OutgoingRecord(TOPIC, f"key-{i % keys}", f"{tag}{i}".encode()) for i in range(count)]


async def _drain(
    consumer: Consumer, want: int, *, commit: bool = True, within_s: float = 20.0
) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + within_s
    while len(got) < want and time.monotonic() < deadline:
        records = await consumer.poll(timeout_s=0.5)
        got.extend(records)
        if records and commit:
            await consumer.commit(records)
    return got


async def _topic_partitions(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = set(await admin.list_topics())
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(sorted(names))}
    finally:
        await admin.close()


# --- pure helpers -------------------------------------------------------------------------------


def test_scaled_topics_round_and_keep_at_least_one_partition() -> None:
    scaled = scaled_topics(TOPICS, 0.05)
    assert {name: spec.partitions for name, spec in scaled.items()} == {
        "photo-upload": 6,  # 128 * 0.05 = 6.4
        "photo-processing": 13,  # 12.8
        "thumbnail-generation": 3,  # 3.2
    }
    assert {name: spec.retention_ms for name, spec in scaled.items()} == {
        name: spec.retention_ms for name, spec in TOPICS.items()
    }
    tiny = scaled_topics({"t": TopicSettings(partitions=3, retention_ms=1000)}, 0.01)
    assert tiny["t"].partitions == 1


def test_the_partitioner_is_partition_for() -> None:
    for i in range(200):
        key = f"photo-{i}"
        assert key_partitioner(key.encode(), list(range(64)), []) == partition_for(key, 64)
    with pytest.raises(ValueError, match="key"):
        key_partitioner(None, [0, 1], [0, 1])


# --- topics -------------------------------------------------------------------------------------


async def test_start_creates_scaled_topics_and_keys_follow_partition_for(clean: TansuBroker) -> None:
    log = KafkaEventLog(_settings(clean, partitions_scale=0.05), TOPICS, session_timeout_s=SESSION_S)
    await log.start()
    try:
        infos = {t.name: t for t in await log.topics()}
        assert {n: i.partitions for n, i in infos.items()} == {
            "photo-upload": 6,
            "photo-processing": 13,
            "thumbnail-generation": 3,
        }
        assert await _topic_partitions(clean.bootstrap) == {n: i.partitions for n, i in infos.items()}
        await log.publish(_records(60, keys=30))
        got = await _drain(await log.consumer(_group(), TOPIC), want=60)
        assert len(got) == 60
        assert all(r.partition == partition_for(r.key, 13) for r in got)
    finally:
        await log.close()


async def test_deployments_in_two_namespaces_share_a_broker_and_see_nothing_of_each_other(
    clean: TansuBroker,
) -> None:
    staging, production = (
        KafkaEventLog(
            _settings(clean, partitions_scale=0.05, namespace=name), TOPICS, session_timeout_s=SESSION_S
        )
        for name in ("staging", "prod")
    )
    await staging.start()
    await production.start()
    try:
        on_broker = await _topic_partitions(clean.bootstrap)
        assert set(on_broker) == {f"{ns}.{name}" for ns in ("staging", "prod") for name in TOPICS}
        assert {t.name for t in await staging.topics()} == set(TOPICS)  # logical names above the log
        await staging.publish(_records(20, keys=10, tag="s"))
        await production.publish(_records(5, keys=5, tag="p"))
        group = _group()  # the same group name in both: two groups on the broker
        got_staging = await _drain(await staging.consumer(group, TOPIC), want=20)
        got_production = await _drain(await production.consumer(group, TOPIC), want=5, within_s=5)
        assert sorted(r.value for r in got_staging) == sorted(f"s{i}".encode() for i in range(20))
        assert sorted(r.value for r in got_production) == sorted(f"p{i}".encode() for i in range(5))
        assert {r.topic for r in got_staging} == {TOPIC}
        assert sum((await staging.committed(group, TOPIC)).values()) == 20
        assert sum((await production.committed(group, TOPIC)).values()) == 5
        assert sum((await staging.lag(group, TOPIC)).values()) == 0
        assert (group, TOPIC) in await staging.groups()
    finally:
        await staging.close()
        await production.close()


def test_a_namespace_is_a_plain_name() -> None:
    for bad in ("a.b", "a b", "x" * 101):
        with pytest.raises(ValueError, match="namespace"):
            KafkaSettings(namespace=bad)


async def test_start_keeps_existing_topics_and_their_records(clean: TansuBroker) -> None:
    first = KafkaEventLog(_settings(clean), TOPICS)
    await first.start()
    await first.publish(_records(40, keys=10))
    await first.close()
    second = KafkaEventLog(_settings(clean), TOPICS)
    await second.start()
    try:
        ends = {t.name: t.end_offsets for t in await second.topics()}[TOPIC]
        assert sum(ends.values()) == 40
    finally:
        await second.close()


async def _create_topic(bootstrap: str, name: str, partitions: int, retention_ms: int | None = None) -> None:
    configs = {} if retention_ms is None else {"retention.ms": str(retention_ms)}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
    finally:
        await admin.close()


async def test_another_retention_on_the_broker_is_reported_not_changed(
    clean: TansuBroker, caplog: pytest.LogCaptureFixture
) -> None:
    await _create_topic(clean.bootstrap, TOPIC, TOPICS[TOPIC].partitions, retention_ms=5000)
    log = KafkaEventLog(_settings(clean), TOPICS)
    await log.start()
    try:
        infos = {t.name: t for t in await log.topics()}
        assert infos[TOPIC].retention_ms == 5000  # what the broker enforces
        assert infos["photo-upload"].retention_ms == TOPICS["photo-upload"].retention_ms  # created by start()
        assert "keeps records 5000 ms on the broker" in caplog.text
    finally:
        await log.close()


async def test_a_topic_with_too_few_partitions_is_refused_where_they_cannot_be_added(
    clean: TansuBroker,
) -> None:
    await _create_topic(clean.bootstrap, TOPIC, 8)
    log = KafkaEventLog(_settings(clean), TOPICS)
    with pytest.raises(ConfigError, match=r"has 8 partitions and settings want 256.*cannot add partitions"):
        await log.start()


async def test_a_topic_with_more_partitions_than_configured_is_refused(clean: TansuBroker) -> None:
    await _create_topic(clean.bootstrap, TOPIC, 300)
    log = KafkaEventLog(_settings(clean), TOPICS)
    with pytest.raises(ConfigError, match="cannot be reduced to 256"):
        await log.start()


async def test_tansu_refuses_the_idempotent_producer_so_the_log_publishes_without(log: KafkaEventLog) -> None:
    # tansu 0.6 rejects aiokafka's InitProducerId v0; publishing still works, with acks=all.
    assert log.idempotent is False
    await log.publish(_records(5, keys=5))
    assert sum({t.name: t.end_offsets for t in await log.topics()}[TOPIC].values()) == 5


# --- outages ------------------------------------------------------------------------------------


async def test_no_broker_is_backend_unavailable_naming_the_servers() -> None:
    address = f"127.0.0.1:{free_port()}"
    log = KafkaEventLog(KafkaSettings(bootstrap_servers=address, request_timeout_s=REQUEST_TIMEOUT_S), TOPICS)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=address):
        await log.start()
    assert time.monotonic() - started < 5


async def _raises_within(what: Awaitable[object], limit_s: float) -> BackendUnavailable:
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        await what
    assert time.monotonic() - started < limit_s
    return caught.value


async def _poll_until_it_fails(consumer: Consumer) -> None:
    while True:
        await consumer.poll(timeout_s=0.2)


async def test_a_broker_restart_is_unavailable_while_down_and_needs_no_manual_step(
    clean: TansuBroker, log: KafkaEventLog
) -> None:
    group = _group()
    member = await log.consumer(group, TOPIC)
    await log.publish(_records(10, keys=10, tag="before-"))
    assert len(await _drain(member, want=10)) == 10

    clean.stop()  # tansu keeps everything in memory: it comes back empty
    bound_s = 4 * REQUEST_TIMEOUT_S + 2
    error = await _raises_within(log.publish(_records(3, keys=3, tag="down-")), bound_s)
    assert clean.bootstrap in str(error)
    await _raises_within(log.topics(), bound_s)
    await _raises_within(log.lag(group, TOPIC), bound_s)
    await _raises_within(log.consumer(_group(), TOPIC), bound_s + 2 * SESSION_S + 5)
    await _raises_within(_poll_until_it_fails(member), bound_s)  # empty polls check the broker now and then

    clean.start()
    await _publish_until_it_works(log, _records(10, keys=10, tag="after-"), within_s=20)
    # Recreated by the log with the configured counts, not auto-created with the broker's default.
    assert (await _topic_partitions(clean.bootstrap))[TOPIC] == TOPICS[TOPIC].partitions
    fresh = await _drain(await log.consumer(_group(), TOPIC), want=10)
    assert {r.value for r in fresh} >= {f"after-{i}".encode() for i in range(10)}
    assert sum({t.name: t.end_offsets for t in await log.topics()}[TOPIC].values()) >= 10
    rejoined = await _drain(member, want=10)  # the member from before rejoins its (lost) group by itself
    assert {r.value for r in rejoined} >= {f"after-{i}".encode() for i in range(10)}


async def _publish_until_it_works(log: KafkaEventLog, records: list[OutgoingRecord], within_s: float) -> None:
    """What the outbox relay does: publish again until the broker acknowledges."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            await log.publish(records)
            return
        except BackendUnavailable:
            assert time.monotonic() < deadline, "the log did not recover after the broker came back"
            await asyncio.sleep(0.2)


async def test_a_broker_that_comes_back_empty_between_two_calls_is_recovered(
    clean: TansuBroker, log: KafkaEventLog
) -> None:
    member = await log.consumer(_group(), TOPIC)
    await log.publish(_records(10, keys=10, tag="before-"))
    assert len(await _drain(member, want=10)) == 10

    clean.restart()  # no call of the log sees it down: only the lost topics and group tell
    await _publish_until_it_works(log, _records(10, keys=10, tag="after-"), within_s=20)
    await _drain(member, want=10, within_s=3)  # idle polls re-check the topics and recreate them
    assert (await _topic_partitions(clean.bootstrap))[TOPIC] == TOPICS[TOPIC].partitions
    await _publish_until_it_works(log, _records(10, keys=10, tag="later-"), within_s=20)
    # The member rejoins as a new member once its topic is back (tansu would keep handing it the
    # empty assignment it got while the topic was missing) and gets what is published now.
    later = {f"later-{i}".encode() for i in range(10)}
    got: set[bytes] = set()
    deadline = time.monotonic() + 20
    while not later <= got and time.monotonic() < deadline:
        got |= {r.value for r in await _drain(member, want=10, within_s=1)}
    assert later <= got


async def test_a_member_that_rejoined_while_its_topic_was_gone_gets_partitions_when_it_is_back(
    clean: TansuBroker,
) -> None:
    # A worker process: its log never re-checks the topics by itself within this test.
    worker = KafkaEventLog(_settings(clean), TOPICS, session_timeout_s=SESSION_S, check_interval_s=60)
    await worker.start()
    try:
        member = await worker.consumer(_group(), TOPIC)
        clean.restart()
        deadline = time.monotonic() + 15
        while member.assignment() and time.monotonic() < deadline:  # it rejoins: no topic, no partitions
            await member.poll(timeout_s=0.2)
        assert member.assignment() == []

        relay = KafkaEventLog(_settings(clean), TOPICS)  # another process recreates the topics
        await relay.start()
        try:
            await _publish_until_it_works(relay, _records(10, keys=10, tag="back-"), within_s=20)
            got = await _drain(member, want=10)
        finally:
            await relay.close()
        assert {r.value for r in got} == {f"back-{i}".encode() for i in range(10)}
    finally:
        await worker.close()


# --- consumers ----------------------------------------------------------------------------------


async def test_a_late_commit_after_a_rebalance_never_moves_the_offset_back(log: KafkaEventLog) -> None:
    group = _group()
    await log.publish(_records(20, keys=1))  # one key: one partition
    partition = partition_for("key-0", TOPICS[TOPIC].partitions)
    first = await log.consumer(group, TOPIC)
    old = await _drain(first, want=20, commit=False)
    assert [r.offset for r in old] == list(range(20))

    second = await log.consumer(group, TOPIC)  # a rebalance: the partition may go to either member
    owner = first if partition in first.assignment() else second
    assert len(await _drain(owner, want=20)) == 20  # delivered again (nothing was committed) and committed
    assert await log.committed(group, TOPIC) == {partition: 20}

    await first.commit(old[:5])  # from before the rebalance: skipped, silently
    assert await log.committed(group, TOPIC) == {partition: 20}


async def test_close_during_a_poll_makes_the_poll_return_nothing(log: KafkaEventLog) -> None:
    consumer = await log.consumer(_group(), TOPIC)
    polling = asyncio.create_task(consumer.poll(timeout_s=10))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await consumer.close()
    assert await polling == []
    assert time.monotonic() - started < 3


async def test_misuse_is_refused(clean: TansuBroker, log: KafkaEventLog) -> None:
    with pytest.raises(ConfigError, match="unknown topic"):
        await log.consumer(_group(), "no-such-topic")
    with pytest.raises(ConfigError, match="unknown topic"):
        await log.publish([OutgoingRecord("no-such-topic", "k", b"v")])
    with pytest.raises(ValueError, match="name"):
        await log.consumer("", TOPIC)
    consumer = await log.consumer(_group(), TOPIC)
    with pytest.raises(ValueError, match="max_records"):
        await consumer.poll(max_records=0)
    foreign = Record("photo-upload", 0, 0, "k", b"v", 1)
    with pytest.raises(ValueError, match="photo-upload"):
        await consumer.commit([foreign])
    await consumer.close()
    with pytest.raises(RuntimeError, match="closed"):
        await consumer.poll()
    with pytest.raises(RuntimeError, match="closed"):
        await consumer.commit([])
    not_started = KafkaEventLog(_settings(clean), TOPICS)
    with pytest.raises(BackendUnavailable, match="not started"):
        await not_started.topics()
