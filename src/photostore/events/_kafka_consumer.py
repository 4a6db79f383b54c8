"""One member of a Kafka consumer group on one topic: the port's Consumer over an AIOKafkaConsumer.

Guarantees (the port's, as the embedded log gives them):
- ``KafkaEventLog.consumer`` returns once this member has joined the group and has its first
  assignment, so members made one after another all take part before anyone polls.
- A rebalance is Kafka's eager one: every member gives up its partitions and resumes each partition
  it then owns from the group's committed offset; records delivered and not committed are
  delivered again (at least once). aiokafka runs the group protocol (heartbeats, rejoins) in the
  background, so a member keeps its partitions while it works on a batch, up to aiokafka's
  ``max_poll_interval_ms`` (300 s) between polls.
- ``commit`` stores, per partition, last offset + 1, only for partitions this member owns now and
  whose records it delivered since its last assignment; the others are skipped silently (their
  new owner delivers those records again). So a committed offset never goes back: a late commit
  of records from before a rebalance cannot undo what another member committed since.
- A member whose topic vanished and came back (a broker that restarted empty, such as tansu) rejoins
  as a new member at its next poll, so it gets partitions again without anyone's help.
- A member whose position in a partition is past that partition's end (a broker that lost its log,
  such as tansu after a restart, answers such a fetch with nothing where Kafka answers
  OffsetOutOfRange) reads that partition again from the start, as ``auto_offset_reset`` does on
  Kafka. Positions are audited every ``audit_interval_s`` against the high watermark of the last
  fetch; a partition is reset only when two audits in a row find it past the end at the same
  position, so a watermark from before a restart cannot cause it.
- Errors of the driver reach the caller as ``BackendUnavailable``; every call is bounded in time
  (a poll by its timeout; a rejoin by the join timeout).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError, KafkaError

from photostore.errors import BackendUnavailable
from photostore.events._kafka_names import WireNames
from photostore.events._kafka_support import kafka_call, stop_consumer
from photostore.events.port import Record

log = logging.getLogger(__name__)

_POLL_GRACE_S = 0.05  # lets getmany end by its own timeout before ours cuts it
_LOST_TOPIC_REFRESH_S = 1.0  # how often a member whose topic vanished asks whether it is back


@dataclass(frozen=True, slots=True)
class ConsumerContext:
    """What a member needs from its log."""

    servers: str
    timeout_s: float  # bound of one call (the settings' request timeout)
    join_timeout_s: float  # bound of joining the group
    config: dict[str, Any]  # AIOKafkaConsumer keyword arguments, group_id aside
    check_broker: Callable[[], Awaitable[None]]  # rate-limited reachability and topic check
    broker_failed: Callable[[], None]  # the next call re-checks the topics
    closed: Callable[[KafkaConsumer], None]
    leave_group: Callable[[str, str], Awaitable[None]]  # (group, member id), best effort
    audit_interval_s: float  # how often positions are compared with the partitions' ends


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, member: KafkaConsumer) -> None:
        self._member = member

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._member._new_epoch()

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._member._new_epoch()
        self._member._joined.set()


class KafkaConsumer:
    """Made by ``KafkaEventLog.consumer``; see the module docstring for its guarantees."""

    def __init__(self, ctx: ConsumerContext, group: str, topic: str, names: WireNames | None = None) -> None:
        self.group = group
        self.topic = topic
        names = names or WireNames()
        # What the broker calls them (see _kafka_names); records and logs keep the logical names.
        self._wire_group = names.group(group)
        self._wire_topic = names.topic(topic)
        self._ctx = ctx
        self._consumer = AIOKafkaConsumer(group_id=self._wire_group, **ctx.config)
        self._joined = asyncio.Event()
        self._epoch = 0
        self._resumed_epoch = -1  # the last epoch whose partitions all had their positions at a poll
        # partition -> the offset a commit must pass: the first offset delivered since the last
        # assignment (the resume point), then the last committed. Only partitions delivered since.
        self._floor: dict[int, int] = {}
        self._topic_seen = False
        self._topic_lost = False  # the topic vanished from the metadata after it had been seen
        self._refreshed_at = 0.0
        self._renewing = False
        self._audited_at = 0.0
        self._past_end: dict[int, int] = {}  # partition -> position found past the end by the last audit
        self.positions_reset = 0  # partitions reset to earliest by the audit, for tests and metrics
        self._poll_lock = asyncio.Lock()
        self._closed = False

    def assignment(self) -> list[int]:
        """The partitions this member owns now."""
        return sorted(tp.partition for tp in self._consumer.assignment())

    def _new_epoch(self) -> None:
        self._epoch += 1
        self._floor = {}

    def _on_metadata(self, cluster: Any) -> None:
        """aiokafka calls this on every metadata update of this member's client."""
        if cluster.partitions_for_topic(self._wire_topic):
            self._topic_seen = True
        elif self._topic_seen:
            self._topic_lost = True

    async def _join(self) -> None:
        """Start the client, subscribe, and wait for the first assignment (bounded)."""
        try:
            async with kafka_call(
                f"joining group {self.group!r}", self._ctx.servers, self._ctx.join_timeout_s
            ):
                await self._consumer.start()
                # aiokafka has no public hook for metadata changes; its cluster object has one.
                self._consumer._client.cluster.add_listener(self._on_metadata)
                self._consumer.subscribe([self._wire_topic], listener=_Listener(self))
                await self._joined.wait()
        except BaseException:
            await self._stop_client()
            raise

    async def _stop_client(self) -> None:
        coordinator = self._consumer._coordinator
        generation, member_id = getattr(coordinator, "generation", -1), getattr(coordinator, "member_id", "")
        await stop_consumer(self._consumer)  # a poll in flight gets ConsumerStoppedError: it returns []
        if generation == 0 and member_id:
            # tansu numbers generations from 0 and aiokafka leaves a group only from generation 1
            # on; without this the group would wait a session timeout for this member.
            await self._ctx.leave_group(self._wire_group, member_id)

    async def _renew_if_topic_came_back(self) -> None:
        """Rejoin as a new member when the topic vanished and is back (an empty broker came back).

        Why: the broker lost the group, and tansu answers a member that rejoined while the topic
        was missing with that empty assignment again, keeping the generation, even after the topic
        is back. A new member id makes a new group generation, with a real assignment.
        """
        if not self._renewing and not self._topic_lost:
            return
        if not self._renewing and not self._consumer.partitions_for_topic(self._wire_topic):
            # Still gone: ask again soon (aiokafka itself would wait out metadata_max_age_ms).
            now = asyncio.get_running_loop().time()
            if now - self._refreshed_at >= _LOST_TOPIC_REFRESH_S:
                self._refreshed_at = now
                self._consumer._client.force_metadata_update()
            return
        self._renewing = True  # until a renewal succeeds: a failed one is tried again next poll
        log.warning("topic %s is back after vanishing; group %s member rejoins", self.topic, self.group)
        await self._stop_client()
        self._consumer = AIOKafkaConsumer(group_id=self._wire_group, **self._ctx.config)
        self._joined = asyncio.Event()
        self._new_epoch()
        self._topic_seen = self._topic_lost = False
        await self._join()
        self._renewing = False

    async def poll(self, max_records: int = 100, timeout_s: float = 1.0) -> list[Record]:
        """Up to ``max_records`` records of this member's partitions, waiting up to ``timeout_s``.

        Returns ``[]`` on timeout. The first poll after an assignment first waits (at most the
        request timeout) until the member's partitions have resumed from the committed offsets, as
        the embedded log does in the same step, so an empty poll means nothing is waiting. When
        nothing came, the broker is checked now and then (at most once per the log's check
        interval), so an outage surfaces as ``BackendUnavailable``.
        """
        if max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {max_records}")
        if self._closed:
            raise RuntimeError("poll on a closed consumer")
        async with self._poll_lock:
            if self._closed:  # closed by another task while this one waited
                return []
            try:
                await self._renew_if_topic_came_back()
                await self._resume_positions()
                await self._audit_positions()
                batches = await self._fetch(max_records, max(0.0, timeout_s))
            except BackendUnavailable:
                if self._closed:
                    return []
                self._ctx.broker_failed()
                raise
            except ConsumerStoppedError:  # aiokafka raises it when closed meanwhile
                return []
            records = self._records(batches)
            if not records:
                await self._ctx.check_broker()
            return records

    async def _resume_positions(self) -> None:
        # Resuming takes a few round trips (committed offsets, then the log start where there is
        # none); counted against the poll's timeout it would make a poll right after a rebalance
        # come back empty although records are waiting.
        epoch = self._epoch
        if self._resumed_epoch == epoch:
            return
        partitions = list(self._consumer.assignment())
        if partitions:
            try:
                async with asyncio.timeout(self._ctx.timeout_s):
                    results = await asyncio.gather(
                        *(self._consumer.position(tp) for tp in partitions), return_exceptions=True
                    )
            except TimeoutError:
                return  # slow: this poll goes on, the next one waits again
            if any(isinstance(r, BaseException) for r in results):
                return  # reassigned meanwhile (IllegalStateError) or failing: the fetch will tell
        if self._epoch == epoch:
            self._resumed_epoch = epoch

    async def _audit_positions(self) -> None:
        """Reset partitions whose position is past their end (see the module docstring)."""
        now = asyncio.get_running_loop().time()
        if now - self._audited_at < self._ctx.audit_interval_s:
            return
        self._audited_at = now
        partitions = list(self._consumer.assignment())
        if not partitions:
            self._past_end = {}
            return
        try:
            async with asyncio.timeout(self._ctx.timeout_s):
                found = await asyncio.gather(
                    *(self._consumer.position(tp) for tp in partitions), return_exceptions=True
                )
        except TimeoutError:
            return
        # The end is the high watermark of the partition's last fetch response: exact on tansu too
        # (unlike its ListOffsets), and it costs no request.
        past_end: dict[int, int] = {}
        positions = []
        for tp, position in zip(partitions, found, strict=True):
            if not isinstance(position, int):
                continue
            positions.append(tp)
            end = self._consumer.highwater(tp)
            if end is not None and position > end:
                past_end[tp.partition] = position
        confirmed = [
            tp for tp in positions if self._past_end.get(tp.partition, -1) == past_end.get(tp.partition)
        ]
        self._past_end = past_end
        if not confirmed:
            return
        log.warning(
            "group %s: %s partitions %s are past their end (the broker lost records); reading them "
            "again from the earliest offset",
            self.group,
            self.topic,
            sorted(tp.partition for tp in confirmed),
        )
        try:
            for tp in confirmed:
                # Offset 0, not seek_to_beginning: that one waits (up to the request timeout) for a
                # ListOffsets the broker that just lost its log may not answer. A broker that lost its
                # log starts again at 0; one whose log starts later answers OffsetOutOfRange, and
                # ``auto_offset_reset`` takes the member to the earliest offset.
                self._consumer.seek(tp, 0)
        except IllegalStateError:  # reassigned meanwhile: the new owner resumes on its own
            return
        for tp in confirmed:
            self._floor.pop(tp.partition, None)
            self._past_end.pop(tp.partition, None)
        self.positions_reset += len(confirmed)

    async def _fetch(self, max_records: int, timeout_s: float) -> dict[Any, list[Any]]:
        # getmany waits for a rebalance in progress to finish whatever its timeout says; a
        # rebalance is no error, so the poll ends empty at its own timeout instead. Cancelling it
        # there loses nothing: getmany takes records from its buffer only just before it returns.
        try:
            async with asyncio.timeout(timeout_s + _POLL_GRACE_S):
                batches: dict[Any, list[Any]] = await self._consumer.getmany(
                    timeout_ms=int(timeout_s * 1000), max_records=max_records
                )
                return batches
        except TimeoutError:
            return {}
        except (KafkaError, OSError) as exc:
            raise BackendUnavailable(
                f"Kafka at {self._ctx.servers}: polling {self.topic}: {type(exc).__name__}: {exc}"
            ) from exc

    def _records(self, batches: dict[Any, list[Any]]) -> list[Record]:
        records: list[Record] = []
        for tp, messages in sorted(batches.items(), key=lambda item: item[0].partition):
            if not messages:
                continue
            self._floor.setdefault(tp.partition, messages[0].offset)
            records.extend(
                Record(
                    topic=self.topic,
                    partition=tp.partition,
                    offset=m.offset,
                    key="" if m.key is None else m.key.decode("utf-8"),
                    value=b"" if m.value is None else m.value,
                    timestamp_ms=m.timestamp,
                )
                for m in messages
            )
        return records

    async def commit(self, records: Sequence[Record]) -> None:
        """Commit past ``records``: per partition, its last offset + 1 (see the module docstring)."""
        if self._closed:
            raise RuntimeError("commit on a closed consumer")
        offsets: dict[int, int] = {}
        for record in records:
            if record.topic != self.topic:
                raise ValueError(f"record of topic {record.topic!r} committed to a {self.topic!r} consumer")
            offsets[record.partition] = max(offsets.get(record.partition, 0), record.offset + 1)
        owned = set(self.assignment())
        wanted = {p: o for p, o in offsets.items() if p in owned and p in self._floor and o > self._floor[p]}
        if len(wanted) < len(offsets):
            log.debug(
                "group %s: skipped commits of partitions not delivered since the last assignment", self.group
            )
        if not wanted:
            return
        epoch = self._epoch
        try:
            async with kafka_call(
                f"committing offsets of group {self.group!r}", self._ctx.servers, self._ctx.timeout_s
            ):
                try:
                    await self._consumer.commit(
                        {TopicPartition(self._wire_topic, p): o for p, o in wanted.items()}
                    )
                except (CommitFailedError, IllegalStateError) as exc:
                    # The group rebalanced since these records were delivered; the partitions'
                    # owners now deliver them again.
                    log.debug("group %s rebalanced; commit skipped: %s", self.group, exc)
                    return
        except BackendUnavailable:
            self._ctx.broker_failed()
            raise
        if self._epoch == epoch:
            self._floor.update(wanted)

    async def close(self) -> None:
        """Leave the group; its partitions go to the other members."""
        if self._closed:
            return
        self._closed = True
        self._ctx.closed(self)
        if self._renewing:  # a poll is making a new client: let it finish (bounded), then stop that one
            async with self._poll_lock:
                pass
        await self._stop_client()
