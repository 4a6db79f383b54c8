"""What only the SQLite log promises: file settings, query plans, topic changes, commit ownership,
heartbeats, wake-ups and misuse errors."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from photostore.errors import BackendUnavailable, ConfigError
from photostore.events._sqlite_ops import ranges_sql
from photostore.events.port import OutgoingRecord
from photostore.events.sqlite_log import SqliteConsumer, SqliteEventLog
from photostore.settings import EventSettings, TopicSettings

TOPICS = EventSettings().topics
TOPIC = "photo-processing"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


@pytest.fixture
async def log(path: Path) -> AsyncIterator[SqliteEventLog]:
    opened = SqliteEventLog(path, TOPICS)
    await opened.start()
    yield opened
    await opened.close()


def _records(count: int, keys: int) -> list[OutgoingRecord]:
    return [OutgoingRecord(TOPIC, f"key-{i % keys}", str(i).encode()) for i in range(count)]


async def test_the_file_is_wal_with_full_sync(log: SqliteEventLog, path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert log._db._conn is not None
    (sync,) = await log._db.run(lambda c: c.execute("PRAGMA synchronous").fetchone())
    assert sync == 2  # FULL


async def test_reading_256_ranges_seeks_the_key_instead_of_scanning(log: SqliteEventLog, path: Path) -> None:
    await log.publish(_records(2000, keys=1000))
    params: list[int] = [x for p in range(256) for x in (p, 0, 2)] + [2]
    with closing(sqlite3.connect(path)) as conn:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + ranges_sql(256), params)]
    assert any(step.startswith("SEARCH r USING PRIMARY KEY (topic_id=? AND part=?") for step in plan), plan
    assert not any(step.startswith("SCAN r") for step in plan), plan


async def test_partitions_can_grow_but_not_shrink(path: Path) -> None:
    small = {**TOPICS, TOPIC: TopicSettings(partitions=4, retention_ms=60_000)}
    first = SqliteEventLog(path, small)
    await first.start()
    await first.publish(_records(20, keys=20))
    await first.close()

    grown = SqliteEventLog(path, {**TOPICS, TOPIC: TopicSettings(partitions=8, retention_ms=90_000)})
    await grown.start()
    info = {t.name: t for t in await grown.topics()}[TOPIC]
    assert (info.partitions, info.retention_ms) == (8, 90_000)
    assert sum(info.end_offsets.values()) == 20
    await grown.close()

    shrunk = SqliteEventLog(path, small)
    with pytest.raises(ConfigError, match="cannot be reduced"):
        await shrunk.start()


async def test_unknown_topics_are_config_errors(log: SqliteEventLog) -> None:
    with pytest.raises(ConfigError, match="unknown topic"):
        await log.publish([OutgoingRecord("nope", "k", b"v")])
    with pytest.raises(ConfigError, match="unknown topic"):
        await log.consumer("g", "nope")


async def test_a_commit_for_a_partition_the_member_does_not_own_is_skipped(log: SqliteEventLog) -> None:
    a, b = await log.consumer("g", TOPIC), await log.consumer("g", TOPIC)
    await log.publish(_records(200, keys=100))
    from_a = await a.poll(max_records=200, timeout_s=5)
    from_b = await b.poll(max_records=200, timeout_s=5)
    assert from_a
    assert from_b
    await a.commit(from_b)  # b's partitions: silently not stored
    assert await log.committed("g", TOPIC) == {}
    await a.commit(from_a)
    assert set(await log.committed("g", TOPIC)) == {r.partition for r in from_a}


async def test_a_committed_offset_never_goes_backwards(log: SqliteEventLog) -> None:
    await log.publish(_records(10, keys=1))
    consumer = await log.consumer("g", TOPIC)
    records = await consumer.poll(max_records=10, timeout_s=5)
    await consumer.commit(records)
    await consumer.commit(records[:2])  # a late, stale commit
    assert await log.committed("g", TOPIC) == {records[0].partition: 10}


async def test_a_busy_member_keeps_its_partitions_through_heartbeats(path: Path) -> None:
    log = SqliteEventLog(path, TOPICS, session_timeout_s=0.5)
    await log.start()
    busy, other = await log.consumer("g", TOPIC), await log.consumer("g", TOPIC)
    await busy.poll(timeout_s=0)
    await other.poll(timeout_s=0)
    assert len(other.assignment()) == 128
    for _ in range(30):  # "busy" does not poll for three sessions; its heartbeats go on
        await other.poll(timeout_s=0.05)
        assert len(other.assignment()) == 128
    await log.close()


async def test_a_member_whose_heartbeats_stop_is_dropped_and_rejoins_on_poll(path: Path) -> None:
    log = SqliteEventLog(path, TOPICS, session_timeout_s=0.5)
    await log.start()
    stalled, other = await log.consumer("g", TOPIC), await log.consumer("g", TOPIC)
    assert log._heartbeat_task is not None
    log._heartbeat_task.cancel()  # as if this process stalled
    await other.poll(timeout_s=0)
    assert len(other.assignment()) == 128
    await asyncio.sleep(0.8)
    await other.poll(timeout_s=0)
    assert len(other.assignment()) == 256  # the stalled member's session ran out
    await stalled.poll(timeout_s=0)  # it wakes up and rejoins
    await other.poll(timeout_s=0)
    assert len(stalled.assignment()) == len(other.assignment()) == 128
    await log.close()


async def test_poll_wakes_on_a_publish_in_this_process(path: Path) -> None:
    log = SqliteEventLog(path, TOPICS, poll_interval_s=10.0)  # only a nudge can wake it in time
    await log.start()
    consumer = await log.consumer("g", TOPIC)

    async def publish_later() -> None:
        await asyncio.sleep(0.1)
        await log.publish(_records(1, keys=1))

    started = time.monotonic()
    records, _ = await asyncio.gather(consumer.poll(timeout_s=5), publish_later())
    assert len(records) == 1
    assert time.monotonic() - started < 2
    await log.close()


async def test_a_cancelled_poll_loses_no_record(log: SqliteEventLog) -> None:
    consumer = await log.consumer("g", TOPIC)
    waiting = asyncio.create_task(consumer.poll(timeout_s=5))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await log.publish(_records(3, keys=1))
    assert [r.offset for r in await consumer.poll(timeout_s=5)] == [0, 1, 2]


async def test_a_closed_consumer_refuses_poll_and_commit_and_leaves(log: SqliteEventLog) -> None:
    consumer = await log.consumer("g", TOPIC)
    assert ("g", TOPIC) in await log.groups()
    await consumer.close()
    await consumer.close()  # twice is fine
    assert ("g", TOPIC) not in await log.groups()
    with pytest.raises(RuntimeError, match="closed"):
        await consumer.poll()
    with pytest.raises(RuntimeError, match="closed"):
        await consumer.commit([])


async def test_closing_the_log_closes_its_consumers(path: Path) -> None:
    log = SqliteEventLog(path, TOPICS)
    await log.start()
    consumer: SqliteConsumer = await log.consumer("g", TOPIC)
    await log.close()
    with pytest.raises(RuntimeError, match="closed"):
        await consumer.poll()


async def test_records_of_another_topic_cannot_be_committed(log: SqliteEventLog) -> None:
    await log.publish([OutgoingRecord("photo-upload", "k", b"v")])
    uploads = await log.consumer("g", "photo-upload")
    records = await uploads.poll(timeout_s=5)
    processing = await log.consumer("g", TOPIC)
    with pytest.raises(ValueError, match="topic"):
        await processing.commit(records)


async def test_a_path_that_cannot_be_opened_is_backend_unavailable(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path, TOPICS)  # a folder, not a file
    with pytest.raises(BackendUnavailable):
        await log.start()
    await log.close()
