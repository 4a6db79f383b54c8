"""The EventLog contract: every backend must pass these.

Backends: ``sqlite`` (a file per test), ``kafka`` (one tansu broker per session, see
tests/support/engines/kafka.py; the topics are deleted before each test so every test starts from
empty ones) and ``kafka-apache`` (marker ``apache_kafka``: the Apache Kafka named by
PHOTOSTORE_TEST_KAFKA_BOOTSTRAP, skipped without it).

A backend is described by ``LogBackend``: how to open a started client on the shared storage in this
process, and the Python source that opens one in another process (for the multi-process and SIGKILL
tests). Topics are the spec's (128/256/64 partitions); group names are fresh per test.

Kafka and tansu specifics:
- tansu's ListOffsets(latest) answers the base offset of a partition's last record batch + 1, not
  the offset after its last record (end offsets and lag from it are wrong). ``KafkaEventLog`` reads
  partition tails to correct it, so the end-offset and lag checks below pass on tansu too; the check
  of ListOffsets alone (``read_tails=False``) is kept, expected to fail on tansu, and run as a plain
  check on Apache Kafka.
- Session timeouts: tansu answers a JoinGroup after half the session timeout (1 s at least), so the
  Kafka backends cap the session (tansu 2 s; Apache Kafka's smallest default is 6 s).
- Retention is the broker's on its own clock: the checks that drive ``apply_retention(now_ms)`` are
  SQLite-only.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from photostore.events.kafka_log import KafkaEventLog
from photostore.events.partitioning import partition_for
from photostore.events.port import Consumer, EventLog, OutgoingRecord, Record
from photostore.events.sqlite_log import SqliteEventLog
from photostore.settings import EventSettings, KafkaSettings, TopicSettings
from tests.support.engines.kafka import (
    APACHE_KAFKA_ENV,
    TansuBroker,
    apache_kafka_bootstrap,
    delete_topics,
    running_tansu,
)

TOPICS: dict[str, TopicSettings] = EventSettings().topics
TOPIC = "photo-processing"
PARTITIONS = TOPICS[TOPIC].partitions
SHORT_SESSION_S = 1.0
KAFKA_REQUEST_TIMEOUT_S = 5.0
TANSU_MAX_SESSION_S = 2.0  # tansu answers JoinGroup after half the session (1 s at least)
APACHE_MIN_SESSION_S = 6.0  # Apache Kafka's group.min.session.timeout.ms by default
TANSU_END_OFFSET_DEFECT = (
    "tansu 0.6 defect: ListOffsets(latest) returns the base offset of the last record batch + 1, "
    "so end offsets and lag from ListOffsets alone are wrong on it (right on Apache Kafka)"
)
SQLITE_ONLY_RETENTION = (
    "Kafka brokers delete records past retention.ms themselves, on their own clock; "
    "apply_retention(now_ms) is a no-op there (it returns 0)"
)
KAFKA = ("kafka", "kafka-apache")


@dataclass
class LogBackend:
    """Opens clients of one backend on one shared storage; closes what it opened."""

    name: str
    open_log: Callable[[float], Awaitable[EventLog]]  # session timeout (s) -> a started client
    subprocess_source: Callable[[float], str]  # source of ``async def open_log()`` for a child process
    opened: list[EventLog] = field(default_factory=list)

    async def open(self, session_timeout_s: float = 10.0) -> EventLog:
        log = await self.open_log(session_timeout_s)
        self.opened.append(log)
        return log


def _sqlite_backend(path: Path) -> LogBackend:
    async def open_log(session_timeout_s: float) -> EventLog:
        log = SqliteEventLog(path, TOPICS, session_timeout_s=session_timeout_s)
        await log.start()
        return log

    def source(session_timeout_s: float) -> str:
        return textwrap.dedent(f"""
            from pathlib import Path
            from photostore.events.sqlite_log import SqliteEventLog
            from photostore.settings import EventSettings

            async def open_log():
                log = SqliteEventLog(
                    Path({str(path)!r}), EventSettings().topics, session_timeout_s={session_timeout_s!r}
                )
                await log.start()
                return log
        """)

    return LogBackend("sqlite", open_log, source)


def _kafka_backend(name: str, bootstrap: str, *, max_session_s: float, read_tails: bool = True) -> LogBackend:
    settings = KafkaSettings(bootstrap_servers=bootstrap, request_timeout_s=KAFKA_REQUEST_TIMEOUT_S)

    def session(requested_s: float) -> float:
        return min(requested_s, max_session_s) if name == "kafka" else max(requested_s, max_session_s)

    async def open_log(session_timeout_s: float) -> EventLog:
        log = KafkaEventLog(
            settings, TOPICS, session_timeout_s=session(session_timeout_s), read_tails=read_tails
        )
        await log.start()
        return log

    def source(session_timeout_s: float) -> str:
        return textwrap.dedent(f"""
            from photostore.events.kafka_log import KafkaEventLog
            from photostore.settings import EventSettings, KafkaSettings

            async def open_log():
                log = KafkaEventLog(
                    KafkaSettings(
                        bootstrap_servers={bootstrap!r}, request_timeout_s={KAFKA_REQUEST_TIMEOUT_S!r}
                    ),
                    EventSettings().topics,
                    session_timeout_s={session(session_timeout_s)!r},
                    read_tails={read_tails!r},
                )
                await log.start()
                return log
        """)

    return LogBackend(name, open_log, source)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[TansuBroker]:
    """One tansu broker for the whole session (it starts in well under 0.1 s)."""
    with running_tansu() as broker:
        yield broker


def _apache_bootstrap() -> str:
    bootstrap = apache_kafka_bootstrap()
    if bootstrap is None:
        pytest.skip(f"set {APACHE_KAFKA_ENV} to an Apache Kafka's bootstrap servers to run this")
    return bootstrap


async def _kafka_for_test(
    request: pytest.FixtureRequest, name: str, *, read_tails: bool = True
) -> LogBackend:
    """A Kafka backend on empty topics: the shared broker's topics are deleted first."""
    if name == "kafka":
        bootstrap = request.getfixturevalue("kafka_broker").bootstrap
        made = _kafka_backend(name, bootstrap, max_session_s=TANSU_MAX_SESSION_S, read_tails=read_tails)
    else:
        bootstrap = _apache_bootstrap()
        made = _kafka_backend(name, bootstrap, max_session_s=APACHE_MIN_SESSION_S, read_tails=read_tails)
    await delete_topics(bootstrap, list(TOPICS))
    return made


@pytest.fixture(
    params=["sqlite", "kafka", pytest.param("kafka-apache", marks=pytest.mark.apache_kafka)],
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LogBackend]:
    if request.param == "sqlite":
        made = _sqlite_backend(tmp_path / "events" / "log.db")
    else:
        made = await _kafka_for_test(request, request.param)
    yield made
    for log in made.opened:
        await log.close()


def only_on(backend: LogBackend, *names: str, reason: str) -> None:
    """Skip the calling test on backends other than ``names``, saying why."""
    if backend.name not in names:
        pytest.skip(f"not on {backend.name}: {reason}")


@pytest.fixture
async def log(backend: LogBackend) -> EventLog:
    return await backend.open()


def _group() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def _records(count: int, keys: int, topic: str = TOPIC, tag: str = "") -> list[OutgoingRecord]:
    return [OutgoingRecord(topic, f"key-{i % keys}", f"{tag}{i}".encode()) for i in range(count)]


async def _drain(
    consumer: Consumer, want: int | None = None, *, commit: bool = True, idle_s: float = 0.5
) -> list[Record]:
    """Poll until ``want`` records arrived (or, without ``want``, until a poll comes back empty)."""
    got: list[Record] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        records = await consumer.poll(max_records=100, timeout_s=idle_s)
        got.extend(records)
        if records and commit:
            await consumer.commit(records)
        if (want is None and not records) or (want is not None and len(got) >= want):
            break
    return got


async def _drain_together(members: Sequence[Consumer], want: int) -> list[list[Record]]:
    """Poll every member side by side until ``want`` records arrived between them (or 30 s passed),
    then a second more.

    A member polled while its group rebalances gets nothing for a while, so a member's empty poll
    is no sign the group is done; only the total is.
    """
    got: list[list[Record]] = [[] for _ in members]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30

    async def poll_once(index: int) -> None:
        records = await members[index].poll(max_records=100, timeout_s=0.3)
        got[index].extend(records)
        if records:
            await members[index].commit(records)

    while loop.time() < deadline and sum(len(records) for records in got) < want:
        await asyncio.gather(*(poll_once(index) for index in range(len(members))))
    # A second more of polling: a record delivered twice would show up here.
    settled = loop.time() + 1.0
    while loop.time() < settled:
        await asyncio.gather(*(poll_once(index) for index in range(len(members))))
    return got


def _ids(records: Sequence[Record]) -> set[tuple[int, int]]:
    return {(r.partition, r.offset) for r in records}


# --- partitions, order, offsets -------------------------------------------------------------------


async def test_a_records_partition_comes_from_its_key(log: EventLog) -> None:
    await log.publish(_records(500, keys=60))
    got = await _drain(await log.consumer(_group(), TOPIC), want=500)
    assert len(got) == 500
    partitions_of_key = defaultdict(set)
    for record in got:
        assert record.topic == TOPIC
        assert record.partition == partition_for(record.key, PARTITIONS)
        partitions_of_key[record.key].add(record.partition)
    assert all(len(parts) == 1 for parts in partitions_of_key.values())
    assert len({r.partition for r in got}) > 30  # 60 keys spread over many partitions


async def test_records_of_one_key_keep_their_order(log: EventLog) -> None:
    for batch in range(10):
        await log.publish([OutgoingRecord(TOPIC, f"key-{i % 7}", f"{batch}:{i}".encode()) for i in range(30)])
    got = await _drain(await log.consumer(_group(), TOPIC), want=300)
    by_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for record in got:
        batch, i = record.value.decode().split(":")
        by_key[record.key].append((int(batch), int(i)))
    assert len(by_key) == 7
    for sequence in by_key.values():
        assert sequence == sorted(sequence)


async def test_offsets_start_at_zero_and_have_no_gaps(log: EventLog) -> None:
    for _ in range(3):
        await log.publish(_records(100, keys=20))
    got = await _drain(await log.consumer(_group(), TOPIC), want=300)
    offsets: dict[int, list[int]] = defaultdict(list)
    for record in got:
        offsets[record.partition].append(record.offset)
        assert record.timestamp_ms > 0
    for partition, seen in offsets.items():
        assert sorted(seen) == list(range(len(seen))), f"partition {partition}"
    info = {t.name: t for t in await log.topics()}[TOPIC]
    assert info.partitions == PARTITIONS
    assert {p: end for p, end in info.end_offsets.items() if end} == {p: len(s) for p, s in offsets.items()}


async def test_topics_are_the_configured_ones(log: EventLog) -> None:
    infos = {t.name: t for t in await log.topics()}
    assert set(infos) == set(TOPICS)
    for name, spec in TOPICS.items():
        assert infos[name].partitions == spec.partitions
        assert infos[name].retention_ms == spec.retention_ms


async def test_published_records_survive_a_reopen(backend: LogBackend) -> None:
    first = await backend.open()
    await first.publish(_records(200, keys=30))
    before = await _drain(await first.consumer(_group(), TOPIC), want=200, commit=False)
    await first.close()

    second = await backend.open()
    after = await _drain(await second.consumer(_group(), TOPIC), want=200)
    assert sorted((r.partition, r.offset, r.key, r.value) for r in after) == sorted(
        (r.partition, r.offset, r.key, r.value) for r in before
    )
    ends = {t.name: t.end_offsets for t in await second.topics()}[TOPIC]
    assert sum(ends.values()) == 200


_PUBLISHER = """
import asyncio, sys, time
{open_source}
from photostore.events.port import OutgoingRecord

async def main():
    log = await open_log()
    for i in range(int(sys.argv[2])):
        await log.publish([OutgoingRecord(sys.argv[1], f"key-{{i}}", str(i).encode())])
    print("published", flush=True)
    time.sleep(60)  # SIGKILLed here, without closing anything

asyncio.run(main())
"""


async def test_a_publish_survives_sigkill_right_after_it_returns(backend: LogBackend) -> None:
    script = _PUBLISHER.format(open_source=backend.subprocess_source(10.0))
    with subprocess.Popen(
        [sys.executable, "-c", script, TOPIC, "50"], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            assert await asyncio.to_thread(child.stdout.readline) == "published\n"
        finally:
            child.kill()
            child.wait(timeout=30)
    log = await backend.open()
    got = await _drain(await log.consumer(_group(), TOPIC), want=50)
    assert sorted(int(r.value) for r in got) == list(range(50))


# --- consumer groups ------------------------------------------------------------------------------


async def test_a_group_shares_partitions_and_no_record_goes_to_two_members(log: EventLog) -> None:
    group = _group()
    members = [await log.consumer(group, TOPIC) for _ in range(3)]  # all join before anyone polls
    await log.publish(_records(600, keys=200))
    got = await _drain_together(members, want=600)
    ids = [_ids(records) for records in got]
    assert sum(len(s) for s in ids) == 600
    assert set().union(*ids) == {(r.partition, r.offset) for records in got for r in records}
    assert len(set().union(*ids)) == 600, "a record was delivered to two live members"
    partitions = [{p for p, _ in s} for s in ids]
    assert all(partitions), "a member got nothing"
    assert sum(len(p) for p in partitions) == len(set().union(*partitions)), "a partition had two owners"


async def test_a_member_does_not_get_its_uncommitted_records_twice(log: EventLog) -> None:
    await log.publish(_records(10, keys=1))
    consumer = await log.consumer(_group(), TOPIC)
    first = await consumer.poll(max_records=4, timeout_s=5)
    second = await consumer.poll(max_records=100, timeout_s=5)
    assert [r.offset for r in first] == [0, 1, 2, 3]
    assert [r.offset for r in second] == [4, 5, 6, 7, 8, 9]


async def test_commit_then_resume_after_reopen_redelivers_only_uncommitted(backend: LogBackend) -> None:
    group = _group()
    first = await backend.open()
    await first.publish(_records(10, keys=1))
    consumer = await first.consumer(group, TOPIC)
    handled = await consumer.poll(max_records=4, timeout_s=5)
    await consumer.commit(handled)
    unhandled = await consumer.poll(max_records=3, timeout_s=5)  # delivered, never committed
    assert [r.offset for r in unhandled] == [4, 5, 6]
    partition = handled[0].partition
    assert await first.committed(group, TOPIC) == {partition: 4}
    await first.close()  # closes the consumer too

    second = await backend.open()
    again = await _drain(await second.consumer(group, TOPIC), want=6)
    assert [r.offset for r in again] == [4, 5, 6, 7, 8, 9]  # at least once: 4-6 come back
    assert await second.committed(group, TOPIC) == {partition: 10}


async def test_when_a_member_leaves_the_others_take_its_partitions(log: EventLog) -> None:
    group = _group()
    staying, leaving = await log.consumer(group, TOPIC), await log.consumer(group, TOPIC)
    await log.publish(_records(400, keys=150))
    early = await _drain(staying, idle_s=0.3)
    taken = await leaving.poll(max_records=10, timeout_s=5)  # delivered but never committed
    assert taken
    assert not _ids(early) & _ids(taken)
    assert len(early) < 400
    await leaving.close()
    late = await _drain(staying, want=400 - len(early))
    assert len(_ids(early) | _ids(late)) == 400
    assert _ids(taken) <= _ids(late)  # the leaver's uncommitted records are delivered again
    assert not _ids(early) & _ids(late)  # the stayer's committed records are not


async def test_two_clients_on_the_same_storage_share_one_group(backend: LogBackend) -> None:
    group = _group()
    one, two = await backend.open(), await backend.open()
    members = [await one.consumer(group, TOPIC), await two.consumer(group, TOPIC)]
    await one.publish(_records(300, keys=100))
    got = await _drain_together(members, want=300)
    assert got[0]
    assert got[1]
    assert not _ids(got[0]) & _ids(got[1])
    assert len(_ids(got[0]) | _ids(got[1])) == 300


async def test_records_of_one_key_keep_their_order_across_a_group_of_two(log: EventLog) -> None:
    group = _group()
    members = [await log.consumer(group, TOPIC) for _ in range(2)]
    for batch in range(5):
        await log.publish(
            [OutgoingRecord(TOPIC, f"key-{i % 20}", f"{batch}:{i}".encode()) for i in range(40)]
        )
    got = await _drain_together(members, want=200)
    assert got[0]
    assert got[1]
    assert sum(len(records) for records in got) == 200
    keys = [{r.key for r in records} for records in got]
    assert not keys[0] & keys[1], "a key was handed to both members"
    for records in got:
        by_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for record in records:
            batch, i = record.value.decode().split(":")
            by_key[record.key].append((int(batch), int(i)))
        for sequence in by_key.values():
            assert sequence == sorted(sequence)


async def test_records_not_committed_are_delivered_again_after_close(log: EventLog) -> None:
    group = _group()
    await log.publish(_records(30, keys=3))
    first = await log.consumer(group, TOPIC)
    taken = await _drain(first, want=30, commit=False)
    assert len(taken) == 30
    await first.commit([r for r in taken if r.key == "key-0"])
    await first.close()  # without committing key-1 and key-2

    second = await log.consumer(group, TOPIC)
    again = await _drain(second, want=20)
    assert _ids(again) == _ids([r for r in taken if r.key != "key-0"])
    assert sorted((r.partition, r.offset, r.value) for r in again) == sorted(
        (r.partition, r.offset, r.value) for r in taken if r.key != "key-0"
    )


_MEMBER = """
import asyncio, json, sys
{open_source}

async def main():
    log = await open_log()
    consumer = await log.consumer(sys.argv[1], sys.argv[2])
    print("joined", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # "go": every member has joined, start polling
    got = []
    while records := await consumer.poll(max_records=100, timeout_s=0.5):
        await consumer.commit(records)
        got.extend([r.partition, r.offset] for r in records)
    print(json.dumps(got), flush=True)
    await asyncio.sleep(60)  # SIGKILLed here: heartbeats stop without leaving the group

asyncio.run(main())
"""


async def test_a_killed_member_of_another_process_is_replaced_after_its_session(
    backend: LogBackend,
) -> None:
    group = _group()
    log = await backend.open(SHORT_SESSION_S)
    await log.publish(_records(300, keys=120))
    script = _MEMBER.format(open_source=backend.subprocess_source(SHORT_SESSION_S))
    with subprocess.Popen(
        [sys.executable, "-c", script, group, TOPIC], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdin is not None
            assert child.stdout is not None
            assert await asyncio.to_thread(child.stdout.readline) == "joined\n"
            here = await log.consumer(group, TOPIC)
            child.stdin.write("go\n")
            child.stdin.flush()
            mine = await _drain(here, idle_s=0.5)
            theirs = {(p, o) for p, o in json.loads(await asyncio.to_thread(child.stdout.readline))}
            assert mine
            assert theirs
            assert not _ids(mine) & theirs, "a record was delivered to both processes"
            assert len(_ids(mine) | theirs) == 300
        finally:
            child.kill()
            child.wait(timeout=30)

    # The child committed what it got; once its session runs out this member owns every partition
    # and gets exactly the new records.
    await log.publish(_records(100, keys=100, tag="new-"))
    after = await _drain(here, want=100)
    assert sorted(r.value for r in after) == sorted(f"new-{i}".encode() for i in range(100))
    assert set((await log.lag(group, TOPIC)).values()) == {0}


# --- lag, committed, groups -----------------------------------------------------------------------


async def test_lag_is_end_minus_committed(log: EventLog) -> None:
    group = _group()
    await log.publish(_records(200, keys=40))
    expected = Counter(partition_for(f"key-{i % 40}", PARTITIONS) for i in range(200))
    lag = await log.lag(group, TOPIC)
    assert {p: n for p, n in lag.items() if n} == dict(expected)

    consumer = await log.consumer(group, TOPIC)
    got = await _drain(consumer, want=200, commit=False)
    assert {p: n for p, n in (await log.lag(group, TOPIC)).items() if n} == dict(expected)  # not committed
    await consumer.commit(got[:50])
    committed = await log.committed(group, TOPIC)
    after_some = await log.lag(group, TOPIC)
    for partition, count in expected.items():
        assert after_some[partition] == count - committed.get(partition, 0)
    await consumer.commit(got)
    assert set((await log.lag(group, TOPIC)).values()) == {0}
    assert await log.committed(group, TOPIC) == dict(expected)


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("kafka", marks=pytest.mark.xfail(reason=TANSU_END_OFFSET_DEFECT, strict=True)),
        pytest.param("kafka-apache", marks=pytest.mark.apache_kafka),
    ],
)
async def test_list_offsets_alone_gives_exact_end_offsets_and_lag(
    request: pytest.FixtureRequest, engine: str
) -> None:
    """End offsets and lag with the partition-tail read off: what the broker's ListOffsets says."""
    made = await _kafka_for_test(request, engine, read_tails=False)
    log = await made.open()
    try:
        group = _group()
        await log.publish(_records(50, keys=1))  # one partition, mostly one batch
        partition = partition_for("key-0", PARTITIONS)
        ends = {t.name: t.end_offsets for t in await log.topics()}[TOPIC]
        lag = await log.lag(group, TOPIC)
        assert (ends[partition], lag) == (50, {partition: 50})
    finally:
        await log.close()


async def test_groups_lists_members_and_committed_offsets(log: EventLog) -> None:
    group = _group()
    consumer = await log.consumer(group, TOPIC)
    assert (group, TOPIC) in await log.groups()
    await log.publish(_records(5, keys=1))
    await consumer.commit(await _drain(consumer, want=5, commit=False))
    await consumer.close()
    assert (group, TOPIC) in await log.groups()  # still there: it has committed offsets


# --- retention ------------------------------------------------------------------------------------


async def test_retention_deletes_old_records_and_keeps_offsets(backend: LogBackend, log: EventLog) -> None:
    only_on(backend, "sqlite", reason=SQLITE_ONLY_RETENTION)
    retention_ms = TOPICS[TOPIC].retention_ms
    await log.publish(_records(100, keys=10, tag="old-"))
    reader = await log.consumer(_group(), TOPIC)  # reads some old records, commits nothing
    seen_old = await reader.poll(max_records=5, timeout_s=5)
    await asyncio.sleep(0.02)  # the new records get a later timestamp
    await log.publish(_records(50, keys=10, tag="new-"))
    new = [
        r for r in await _drain(await log.consumer(_group(), TOPIC), want=150) if r.value.startswith(b"new")
    ]
    ends_before = {t.name: t.end_offsets for t in await log.topics()}[TOPIC]

    assert await log.apply_retention() == 0  # nothing is a week old
    cutoff_now = min(r.timestamp_ms for r in new) + retention_ms - 1
    assert await log.apply_retention(cutoff_now) == 100
    assert {t.name: t.end_offsets for t in await log.topics()}[TOPIC] == ends_before

    fresh = await _drain(await log.consumer(_group(), TOPIC), want=50)
    assert sorted((r.partition, r.offset) for r in fresh) == sorted((r.partition, r.offset) for r in new)
    rest = await _drain(reader, want=50)  # its position was inside the deleted records
    assert seen_old
    assert sorted(r.value for r in rest) == sorted(r.value for r in new)

    await log.publish(_records(10, keys=10, tag="later-"))  # offsets go on from the old end
    later = await _drain(await log.consumer(_group(), TOPIC), want=60)
    ends_after = {t.name: t.end_offsets for t in await log.topics()}[TOPIC]
    for record in later:
        if record.value.startswith(b"later"):
            assert ends_before[record.partition] <= record.offset < ends_after[record.partition]


async def test_a_kafka_broker_applies_retention_itself(backend: LogBackend, log: EventLog) -> None:
    only_on(backend, *KAFKA, reason="the embedded log deletes records only in apply_retention")
    await log.publish(_records(30, keys=30))
    assert await log.apply_retention(10**13 + 10**12) == 0
    infos = {t.name: t for t in await log.topics()}
    assert {name: info.retention_ms for name, info in infos.items()} == {
        name: spec.retention_ms for name, spec in TOPICS.items()
    }  # retention.ms as set on the broker
    assert sum(infos[TOPIC].end_offsets.values()) == 30


async def test_retention_of_everything_keeps_the_end_offsets(backend: LogBackend, log: EventLog) -> None:
    only_on(backend, "sqlite", reason=SQLITE_ONLY_RETENTION)
    await log.publish(_records(30, keys=30))
    ends = {t.name: t.end_offsets for t in await log.topics()}[TOPIC]
    far_future = 10**13 + 10**12
    assert await log.apply_retention(far_future) == 30
    assert {t.name: t.end_offsets for t in await log.topics()}[TOPIC] == ends
    assert await (await log.consumer(_group(), TOPIC)).poll(timeout_s=0.2) == []
