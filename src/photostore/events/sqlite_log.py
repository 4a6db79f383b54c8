"""The embedded EventLog: Kafka's model in one SQLite file, shared by any number of processes.

Guarantees (the port's, made concrete):
- A record's partition is ``partition_for(key, partitions)`` (xxh3 of the key), so one key keeps its
  order. Offsets of a partition start at 0 and go up by 1 with no gap, and never change.
- ``publish`` of a batch is one transaction, fsynced (WAL, ``synchronous=FULL``) before it returns.
- Consumer groups work across processes that share the file. Members are rows with a heartbeat; a
  member whose heartbeat is older than its session timeout is dropped. The partitions of a topic go
  round-robin to the sorted member ids; any change of members bumps the group's generation, and on
  its next poll every member takes its new assignment and resumes from the committed offsets (for
  every partition it owns, kept ones too, as in Kafka's eager rebalance). Heartbeats use the wall
  clock, so the processes sharing a file must share a clock (one machine).
- A member hands out records after its in-memory position, which starts at the committed offset
  (the first retained offset when none) and moves past every record ``poll`` returns. Uncommitted
  records are delivered again after a restart or rebalance: at least once.
- ``commit`` stores, per partition, last offset + 1, only for partitions the member owns at that
  moment; the others are skipped silently (their new owner will deliver those records again). A
  committed offset never goes backwards.
- ``apply_retention`` deletes, per partition, the oldest records past the topic's retention, and
  never changes an offset; a position before the first retained record skips to it.

A background task heartbeats every open consumer every ``session_timeout_s / 3``, so a member stays
in its group while it works on a batch; a process that dies (or an event loop that stalls) longer
than the session timeout loses its partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from photostore.errors import BackendUnavailable, ConfigError
from photostore.events import _sqlite_ops as ops
from photostore.events._sqlite_thread import SqliteThread, read_txn
from photostore.events.partitioning import partition_for
from photostore.events.port import OutgoingRecord, Record, TopicInfo
from photostore.settings import TopicSettings

log = logging.getLogger(__name__)

# Each fix is a write that settles the membership; more than a few in a row means members come and
# go faster than we can read them, and waiting a poll interval is better than spinning.
_MEMBERSHIP_FIXES_PER_FETCH = 3


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqliteEventLog:
    """A durable, partitioned event log in the SQLite file at ``path``."""

    def __init__(
        self,
        path: Path,
        topics: Mapping[str, TopicSettings],
        *,
        session_timeout_s: float = 10.0,
        poll_interval_s: float = 0.05,
    ) -> None:
        if session_timeout_s <= 0 or poll_interval_s <= 0:
            raise ConfigError("session_timeout_s and poll_interval_s must be > 0")
        self._path = Path(path)
        self._topic_settings = dict(topics)
        self._session_ms = int(session_timeout_s * 1000)
        self._poll_interval_s = poll_interval_s
        self._db = SqliteThread(self._path)
        self._topics: dict[str, ops.TopicRow] = {}
        self._consumers: set[SqliteConsumer] = set()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the file (creating it) and create or update the topics."""
        await asyncio.to_thread(self._path.parent.mkdir, parents=True, exist_ok=True)
        await self._db.open()
        topics = self._topic_settings
        try:
            self._topics = await self._db.run(lambda conn: ops.create_topics(conn, topics))
        except BaseException:
            await self._db.close()
            raise
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name="event-log-heartbeat")

    async def close(self) -> None:
        """Close every consumer (they leave their groups), then the file."""
        for consumer in list(self._consumers):
            try:
                await consumer.close()
            except BackendUnavailable:  # it drops out of its group when its session runs out
                log.warning("consumer %s could not leave its group", consumer.member_id, exc_info=True)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None
        await self._db.close()

    def _topic(self, name: str) -> ops.TopicRow:
        try:
            return self._topics[name]
        except KeyError:
            if not self._topics:
                raise BackendUnavailable("the event log is not started (call start())") from None
            raise ConfigError(f"unknown topic {name!r}; topics are {sorted(self._topics)}") from None

    # --- produce --------------------------------------------------------------------------------

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        """Append ``records`` in one transaction; durable on return."""
        if not records:
            return
        batches: dict[tuple[int, int], list[tuple[str, bytes]]] = {}
        for record in records:
            topic = self._topic(record.topic)
            part = partition_for(record.key, topic.partitions)
            batches.setdefault((topic.topic_id, part), []).append((record.key, bytes(record.value)))
        ts_ms = _now_ms()
        await self._db.run(lambda conn: ops.append(conn, batches, ts_ms))
        self._nudge()

    def _nudge(self) -> None:
        """Wake the consumers of this process that wait for records (others poll the file)."""
        event, self._wakeup = self._wakeup, asyncio.Event()
        event.set()

    # --- consume --------------------------------------------------------------------------------

    async def consumer(self, group: str, topic: str) -> SqliteConsumer:
        """Join ``group`` on ``topic`` as a new member (a rebalance for the group)."""
        if not group:
            raise ValueError("a consumer group needs a name")
        row = self._topic(topic)
        member_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        consumer = SqliteConsumer(self, group, row, member_id)
        await consumer._join()
        self._consumers.add(consumer)
        return consumer

    async def _heartbeat_loop(self) -> None:
        interval = self._session_ms / 3000
        while True:
            await asyncio.sleep(interval)
            members = [(c.group, c.topic_id, c.member_id) for c in self._consumers]
            if not members:
                continue
            now = _now_ms()
            try:
                lost = await self._db.run(partial(ops.heartbeat, members=members, now_ms=now))
            except BackendUnavailable:
                log.warning("event log heartbeat failed; retrying", exc_info=True)
                continue
            for i in lost:
                # Its session ran out (the loop stalled): its next poll rejoins the group.
                log.warning(
                    "consumer %s of group %s was dropped from its group", members[i][2], members[i][0]
                )

    # --- inspection -----------------------------------------------------------------------------

    async def topics(self) -> list[TopicInfo]:
        rows = sorted(self._topics.values(), key=lambda t: t.name)

        def read(conn: sqlite3.Connection) -> list[TopicInfo]:
            with read_txn(conn):
                return [
                    TopicInfo(
                        name=t.name,
                        partitions=t.partitions,
                        retention_ms=t.retention_ms,
                        end_offsets={p: end for p, (_, end) in ops.topic_bounds(conn, t.topic_id).items()},
                    )
                    for t in rows
                ]

        return await self._db.run(read)

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        topic_id = self._topic(topic).topic_id
        return await self._db.run(lambda conn: ops.committed_offsets(conn, group, topic_id))

    async def lag(self, group: str, topic: str) -> dict[int, int]:
        """End offset minus committed offset (0 when none), per partition that has ever had a record."""
        topic_id = self._topic(topic).topic_id

        def read(conn: sqlite3.Connection) -> dict[int, int]:
            with read_txn(conn):
                bounds = ops.topic_bounds(conn, topic_id)
                committed = ops.committed_offsets(conn, group, topic_id)
            return {p: max(0, end - committed.get(p, 0)) for p, (_, end) in bounds.items() if end > 0}

        return await self._db.run(read)

    async def groups(self) -> list[tuple[str, str]]:
        now = _now_ms()
        pairs = await self._db.run(lambda conn: ops.group_list(conn, now))
        return [(g, t) for g, t in pairs if t in self._topics]

    async def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete records past their topic's retention (one transaction per topic)."""
        now = _now_ms() if now_ms is None else now_ms
        deleted = 0
        for topic in self._topics.values():
            deleted += await self._db.run(partial(ops.apply_retention, topic=topic, now_ms=now))
        return deleted


class SqliteConsumer:
    """One member of a consumer group on one topic; made by ``SqliteEventLog.consumer``."""

    def __init__(self, log: SqliteEventLog, group: str, topic: ops.TopicRow, member_id: str) -> None:
        self._log = log
        self.group = group
        self._topic = topic
        self.member_id = member_id
        self._view = ops.ConsumerView()
        self._poll_lock = asyncio.Lock()
        self._closed = False

    @property
    def topic(self) -> str:
        return self._topic.name

    @property
    def topic_id(self) -> int:
        return self._topic.topic_id

    def assignment(self) -> list[int]:
        """The partitions this member owned at its last poll."""
        return sorted(self._view.positions)

    async def _join(self) -> None:
        now = _now_ms()
        group, topic_id, member, session = self.group, self.topic_id, self.member_id, self._log._session_ms
        await self._log._db.run(lambda conn: ops.ensure_member(conn, group, topic_id, member, now, session))

    async def poll(self, max_records: int = 100, timeout_s: float = 1.0) -> list[Record]:
        """Up to ``max_records`` records of this member's partitions, waiting up to ``timeout_s``.

        Partitions with records waiting share ``max_records`` fairly. Returns ``[]`` on timeout.
        """
        if max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {max_records}")
        if self._closed:
            raise RuntimeError("poll on a closed consumer")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout_s)
        async with self._poll_lock:
            while not self._closed:  # closed by another task while waiting: return empty
                wakeup = self._log._wakeup  # taken before the read, so no publish is missed
                records = await self._fetch(max_records)
                remaining = deadline - loop.time()
                if records or remaining <= 0:
                    return records
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, self._log._poll_interval_s)):
                        await wakeup.wait()
        return []

    async def _fetch(self, max_records: int) -> list[Record]:
        db, group, topic, member = self._log._db, self.group, self._topic, self.member_id
        for _ in range(_MEMBERSHIP_FIXES_PER_FETCH):
            fetch = partial(
                ops.fetch,
                group=group,
                topic=topic,
                member_id=member,
                view=self._view,
                max_records=max_records,
                now_ms=_now_ms(),
            )
            result = await db.run(fetch)
            if result is not None:
                # Adopted only now: had the call been cancelled, no record would have been skipped.
                self._view, records = result
                return records
            if self._closed:
                break
            await self._join()  # drops expired members, rejoins if we were dropped
        return []  # the membership kept changing: the caller's poll loop tries again shortly

    async def commit(self, records: Sequence[Record]) -> None:
        """Commit past ``records``: per partition, its last offset + 1.

        Partitions this member no longer owns (a rebalance happened) are skipped silently.
        """
        if self._closed:
            raise RuntimeError("commit on a closed consumer")
        offsets: dict[int, int] = {}
        for record in records:
            if record.topic != self._topic.name:
                raise ValueError(f"record of topic {record.topic!r} committed to a {self.topic!r} consumer")
            offsets[record.partition] = max(offsets.get(record.partition, 0), record.offset + 1)
        if not offsets:
            return
        group, topic, member = self.group, self._topic, self.member_id
        stored = await self._log._db.run(lambda conn: ops.commit(conn, group, topic, member, offsets))
        if len(stored) < len(offsets):
            log.debug("member %s skipped commits of partitions it no longer owns", member)
        # Records already committed need not be handed out again by this member.
        view = self._view
        positions = {p: max(pos, stored.get(p, pos)) for p, pos in view.positions.items()}
        self._view = replace(view, positions=positions)

    async def close(self) -> None:
        """Leave the group: its partitions go to the other members at once."""
        if self._closed:
            return
        self._closed = True
        self._log._consumers.discard(self)
        group, topic_id, member = self.group, self.topic_id, self.member_id
        await self._log._db.run(lambda conn: ops.leave(conn, group, topic_id, member))
