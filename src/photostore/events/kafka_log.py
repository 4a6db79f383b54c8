"""The cluster EventLog: the port on a Kafka-protocol broker (Apache Kafka; tansu for tests), via aiokafka.

Guarantees (the port's, made concrete; the embedded ``SqliteEventLog`` is the twin):
- Topics are the configured ones, each with ``partitions * partitions_scale`` partitions (at least
  1) and ``retention.ms``; ``start()`` creates the missing ones (see ``TopicAdmin.ensure_topics``
  for topics that exist with other counts). No client of this process lets the broker auto-create
  a topic, so a topic never appears with the broker's default partition count.
- A record's partition is ``partition_for(key, partitions)`` (a custom partitioner), as in the
  embedded log, so one key keeps its order and both engines place keys alike.
- ``publish`` returns when the broker acknowledged every record with acks=all: durable as far as
  the broker is. The producer is idempotent (no duplicates from its own retries) where the broker
  supports it; tansu 0.6 rejects aiokafka's InitProducerId (v0), so there the producer falls back
  to acks=all without idempotence and a retry after a lost acknowledgement may write a record
  twice. Order per partition holds either way: aiokafka sends one batch per partition at a time.
- Consumers: see ``_kafka_consumer``. ``lag`` is end offset minus committed offset (0 when none),
  per partition that has ever had a record; end offsets are exact on tansu too (``_kafka_offsets``).
- Retention is the broker's: it deletes records past ``retention.ms`` on its own clock, so
  ``apply_retention`` deletes nothing and returns 0.
- Every call is bounded by a small multiple of ``request_timeout_s`` (joining a group also by the
  session timeout) and raises ``BackendUnavailable`` naming the bootstrap servers when the broker
  fails or cannot be reached; polls check the broker now and then when they get nothing, so an
  outage surfaces there too.
- A broker that comes back empty (tansu keeps everything in memory) needs no manual step: the
  first call after a failure, and any call at least ``check_interval_s`` after the last check,
  re-checks the topics and creates them again. What that broker had acknowledged is gone with it.

With ``namespace`` set, every topic and group on the broker is named ``<namespace>.<name>``
(``_kafka_names``), so deployments sharing one cluster never see each other's records or groups;
the port's callers keep the logical names.

``groups()`` returns the (group, topic) pairs this client used (consumers it made) that have live
members here or committed offsets, plus the groups the broker lists (ListGroups) that have
committed offsets in or members subscribed to our topics. tansu lists no groups, so on tansu only
the first part is known: another process's groups are not seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import IncompatibleBrokerVersion, UnknownError, UnsupportedVersionError

from photostore.errors import BackendUnavailable, ConfigError
from photostore.events._kafka_admin import TopicAdmin, TopicState
from photostore.events._kafka_consumer import ConsumerContext, KafkaConsumer
from photostore.events._kafka_names import WireNames
from photostore.events._kafka_offsets import EndOffsets
from photostore.events._kafka_support import (
    disable_topic_auto_creation,
    kafka_call,
    key_partitioner,
    scaled_topics,
    stop_producer,
)
from photostore.events.port import OutgoingRecord, TopicInfo
from photostore.settings import KafkaSettings, TopicSettings

log = logging.getLogger(__name__)

# JoinGroup is answered only when the group has formed: up to the rebalance timeout (= the session
# timeout here) on Kafka, plus its initial rebalance delay (3 s by default); half the session on tansu.
_JOIN_SLACK_S = 5.0
# How often a member compares its positions with its partitions' ends (see _kafka_consumer).
_AUDIT_INTERVAL_S = 2.0
# Errors with which a broker refuses the idempotent producer's InitProducerId.
_NO_IDEMPOTENCE = (UnknownError, UnsupportedVersionError, IncompatibleBrokerVersion)


class KafkaEventLog:
    """A partitioned event log on the Kafka cluster at ``settings.bootstrap_servers``."""

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Mapping[str, TopicSettings],
        *,
        session_timeout_s: float = 10.0,
        check_interval_s: float = 5.0,
        read_tails: bool = True,
    ) -> None:
        """``session_timeout_s``: a member silent this long leaves its group (Kafka accepts 6-1800 s
        by default; tansu any). ``check_interval_s``: how often the topics are re-checked at most.
        ``read_tails``: read partition tails for exact end offsets (see ``_kafka_offsets``); off,
        ListOffsets alone is trusted, which is right on Apache Kafka and wrong on tansu.
        """
        if session_timeout_s <= 0 or check_interval_s <= 0:
            raise ConfigError("session_timeout_s and check_interval_s must be > 0")
        disable_topic_auto_creation()
        self._settings = settings
        self._specs = scaled_topics(topics, settings.partitions_scale)
        self._names = WireNames(settings.namespace)
        self._servers = settings.bootstrap_servers
        self._timeout_s = settings.request_timeout_s
        self._session_s = session_timeout_s
        self._check_interval_s = check_interval_s
        self._read_tails = read_tails
        self._admin: TopicAdmin | None = None
        self._offsets: EndOffsets | None = None
        self._producer: Any = None
        self._idempotent = False
        self._states: dict[str, TopicState] = {}
        self._checked_at: float | None = None  # loop time of the last topic check; None: check next call
        self._check_lock = asyncio.Lock()
        self._consumers: set[KafkaConsumer] = set()
        self._used: set[tuple[str, str]] = set()

    @property
    def bootstrap_servers(self) -> str:
        return self._servers

    @property
    def idempotent(self) -> bool:
        """Whether the producer is idempotent (False on brokers that refuse it, such as tansu)."""
        return self._idempotent

    def partitions(self, topic: str) -> int:
        """The configured (scaled) partition count of ``topic``."""
        return self._spec(topic).partitions

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create the missing topics, and start the producer."""
        if self._admin is not None:
            return
        settings = self._settings
        self._admin = TopicAdmin(
            self._servers, settings.client_id, self._timeout_s, settings.replication_factor
        )
        self._offsets = EndOffsets(
            self._servers, settings.client_id, self._timeout_s, read_tails=self._read_tails
        )
        try:
            async with kafka_call("starting", self._servers, self._timeout_s * 3):
                await self._admin.start()
                self._states = await self._ensure_topics(self._admin, None)
                self._checked_at = asyncio.get_running_loop().time()
                await self._offsets.start()
                self._producer = await self._start_producer()
        except BaseException:
            await self._close_clients()
            raise

    def _new_producer(self, *, idempotent: bool) -> Any:
        return AIOKafkaProducer(
            bootstrap_servers=self._servers,
            client_id=self._settings.client_id,
            acks="all",
            enable_idempotence=idempotent,
            partitioner=key_partitioner,
            request_timeout_ms=int(self._timeout_s * 1000),
        )

    async def _start_producer(self) -> Any:
        producer = self._new_producer(idempotent=True)
        try:
            await producer.start()
        except _NO_IDEMPOTENCE as exc:
            await stop_producer(producer)
            log.warning(
                "Kafka at %s refuses the idempotent producer (%r); publishing with acks=all without "
                "idempotence: a retried batch may be written twice",
                self._servers,
                exc,
            )
        except BaseException:
            await stop_producer(producer)
            raise
        else:
            self._idempotent = True
            return producer
        producer = self._new_producer(idempotent=False)
        try:
            await producer.start()
        except BaseException:
            await stop_producer(producer)
            raise
        return producer

    async def close(self) -> None:
        """Close every consumer (they leave their groups), then the producer (it flushes) and the rest."""
        results = await asyncio.gather(*(c.close() for c in list(self._consumers)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.warning("a consumer could not leave its group cleanly: %r", result)
        await self._close_clients()

    async def _close_clients(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_producer(producer)
        offsets, self._offsets = self._offsets, None
        if offsets is not None:
            await offsets.close()
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()

    async def _ensure_topics(
        self, admin: TopicAdmin, known: Mapping[str, TopicState] | None
    ) -> dict[str, TopicState]:
        """``TopicAdmin.ensure_topics`` under the broker's names; states by logical name."""
        wire = {self._names.topic(name): name for name in self._specs}
        states = await admin.ensure_topics(
            {self._names.topic(name): spec for name, spec in self._specs.items()},
            None if known is None else {self._names.topic(name): state for name, state in known.items()},
        )
        return {wire[name]: state for name, state in states.items()}

    def _spec(self, name: str) -> TopicSettings:
        try:
            return self._specs[name]
        except KeyError:
            raise ConfigError(f"unknown topic {name!r}; topics are {sorted(self._specs)}") from None

    def _started(self) -> tuple[TopicAdmin, EndOffsets]:
        if self._admin is None or self._offsets is None:
            raise BackendUnavailable("the event log is not started (call start())")
        return self._admin, self._offsets

    # --- broker checks --------------------------------------------------------------------------

    def _broker_failed(self) -> None:
        self._checked_at = None

    async def _check(self) -> None:
        """Re-check (and recreate) the topics if the last check failed or is ``check_interval_s`` old."""
        admin, _ = self._started()
        loop = asyncio.get_running_loop()

        def fresh() -> bool:
            return self._checked_at is not None and loop.time() - self._checked_at < self._check_interval_s

        if fresh():
            return
        async with self._check_lock:
            if fresh():
                return
            async with kafka_call("checking the topics", self._servers, self._timeout_s):
                self._states = await self._ensure_topics(admin, self._states)
            self._checked_at = loop.time()

    async def _call_checked(self) -> tuple[TopicAdmin, EndOffsets]:
        try:
            await self._check()
        except BackendUnavailable:
            self._broker_failed()
            raise
        return self._started()

    # --- produce --------------------------------------------------------------------------------

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        """Send ``records`` (key -> ``partition_for``) and return when the broker acknowledged all."""
        if not records:
            return
        for record in records:
            self._spec(record.topic)
        await self._call_checked()
        producer = self._producer
        if producer is None:
            raise BackendUnavailable("the event log is closed")
        self._check_partition_counts(producer, {r.topic for r in records})
        futures: list[asyncio.Future[Any]] = []
        try:
            async with kafka_call(f"publishing {len(records)} records", self._servers, self._timeout_s):
                for record in records:
                    future = await producer.send(
                        self._names.topic(record.topic), value=bytes(record.value), key=record.key.encode()
                    )
                    future.add_done_callback(_retrieve)
                    futures.append(future)
            await self._acknowledged(futures)
        except BackendUnavailable:
            self._broker_failed()
            raise

    def _check_partition_counts(self, producer: Any, topics: set[str]) -> None:
        """Refuse to send while the producer sees another partition count than the topic's.

        The partitioner hook does not know the topic, so it cannot check this itself.
        """
        for topic in topics:
            known = producer.client.cluster.partitions_for_topic(self._names.topic(topic))
            want = self._states[topic].partitions if topic in self._states else self._spec(topic).partitions
            if known is not None and len(known) != want:
                self._broker_failed()
                raise BackendUnavailable(
                    f"Kafka at {self._servers}: topic {topic} has {len(known)} partitions, expected {want}"
                )

    async def _acknowledged(self, futures: list[asyncio.Future[Any]]) -> None:
        # asyncio.wait, not a timeout around gather: the futures must not be cancelled (aiokafka
        # resolves them itself, and a batch in flight cannot be called back anyway).
        _, pending = await asyncio.wait(futures, timeout=self._timeout_s * 2)
        if pending:
            raise BackendUnavailable(
                f"Kafka at {self._servers}: {len(pending)} of {len(futures)} records not acknowledged "
                f"within {self._timeout_s * 2:g} s"
            )
        for future in futures:
            if future.cancelled():  # the producer was stopped under this publish
                raise BackendUnavailable(f"Kafka at {self._servers}: publishing was cancelled")
            exc = future.exception()
            if exc is not None:
                raise BackendUnavailable(f"Kafka at {self._servers}: publishing failed: {exc!r}") from exc

    # --- consume --------------------------------------------------------------------------------

    async def consumer(self, group: str, topic: str) -> KafkaConsumer:
        """Join ``group`` on ``topic`` as a new member (a rebalance for the group)."""
        if not group:
            raise ValueError("a consumer group needs a name")
        self._spec(topic)
        await self._call_checked()
        consumer = KafkaConsumer(self._consumer_context(), group, topic, self._names)
        self._used.add((group, topic))
        self._consumers.add(consumer)
        try:
            await consumer._join()
        except BaseException:
            self._consumers.discard(consumer)
            raise
        return consumer

    def _consumer_context(self) -> ConsumerContext:
        session_ms = int(self._session_s * 1000)
        return ConsumerContext(
            servers=self._servers,
            timeout_s=self._timeout_s,
            join_timeout_s=self._timeout_s + 2 * self._session_s + _JOIN_SLACK_S,
            config={
                "bootstrap_servers": self._servers,
                "client_id": self._settings.client_id,
                "enable_auto_commit": False,
                "auto_offset_reset": "earliest",
                "session_timeout_ms": session_ms,
                "heartbeat_interval_ms": max(50, min(3000, session_ms // 10)),
                # JoinGroup waits for the group to form: a request must outlive that.
                "request_timeout_ms": int(max(self._timeout_s, self._session_s + _JOIN_SLACK_S) * 1000),
            },
            check_broker=self._check,
            broker_failed=self._broker_failed,
            closed=self._consumers.discard,
            leave_group=self._leave_group,
            audit_interval_s=_AUDIT_INTERVAL_S,
        )

    async def _leave_group(self, group: str, member_id: str) -> None:
        admin = self._admin
        if admin is None:
            return
        try:
            async with kafka_call(f"leaving group {group!r}", self._servers, self._timeout_s):
                await admin.leave_group(group, member_id)
        except BackendUnavailable as exc:  # the broker drops the member after its session anyway
            log.debug("could not leave group %s: %s", group, exc)

    # --- inspection -----------------------------------------------------------------------------

    async def topics(self) -> list[TopicInfo]:
        _, offsets = await self._call_checked()
        infos = []
        for name in sorted(self._specs):
            state = self._states.get(name) or TopicState(
                self._specs[name].partitions, self._specs[name].retention_ms
            )
            ends = await self._end_offsets(offsets, name, state.partitions)
            infos.append(TopicInfo(name, state.partitions, state.retention_ms, ends))
        return infos

    async def _end_offsets(self, offsets: EndOffsets, topic: str, partitions: int) -> dict[int, int]:
        try:
            async with kafka_call(f"reading end offsets of {topic}", self._servers, self._timeout_s * 2):
                return await offsets.read(self._names.topic(topic), partitions)
        except BackendUnavailable:
            self._broker_failed()
            offsets.failed()
            raise

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed offset per partition that has one."""
        admin, _ = await self._call_checked()
        return await self._committed(admin, group, topic)

    async def _committed(self, admin: TopicAdmin, group: str, topic: str) -> dict[int, int]:
        partitions = self._partition_count(topic)
        try:
            async with kafka_call(f"reading offsets of group {group!r}", self._servers, self._timeout_s):
                return await admin.committed(self._names.group(group), self._names.topic(topic), partitions)
        except BackendUnavailable:
            self._broker_failed()
            raise

    def _partition_count(self, topic: str) -> int:
        spec = self._spec(topic)
        state = self._states.get(topic)
        return spec.partitions if state is None else state.partitions

    async def lag(self, group: str, topic: str) -> dict[int, int]:
        """End offset minus committed offset (0 when none), per partition that has ever had a record."""
        admin, offsets = await self._call_checked()
        ends = await self._end_offsets(offsets, topic, self._partition_count(topic))
        committed = await self._committed(admin, group, topic)
        return {p: max(0, end - committed.get(p, 0)) for p, end in ends.items() if end > 0}

    async def groups(self) -> list[tuple[str, str]]:
        """(group, topic) pairs with committed offsets or live members (see the module docstring)."""
        admin, _ = await self._call_checked()
        live = {(c.group, c.topic) for c in self._consumers}
        pairs = set(live)
        for group, topic in self._used - live:
            if await self._committed(admin, group, topic):
                pairs.add((group, topic))
        try:
            async with kafka_call("listing groups", self._servers, self._timeout_s):
                listed = await admin.listed_groups()
        except BackendUnavailable:
            self._broker_failed()
            raise
        for wire_group in listed:
            local = self._names.local_group(wire_group)
            if local is not None:  # not another namespace's
                pairs |= await self._group_topics(admin, local, exclude=pairs)
        return sorted(pairs)

    async def _group_topics(
        self, admin: TopicAdmin, group: str, exclude: set[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        async with kafka_call(f"describing group {group!r}", self._servers, self._timeout_s):
            subscribed = await admin.subscribed_topics(self._names.group(group))
        found = set()
        for topic in sorted(self._specs):
            if (group, topic) in exclude:
                continue
            if self._names.topic(topic) in subscribed or await self._committed(admin, group, topic):
                found.add((group, topic))
        return found

    async def apply_retention(self, now_ms: int | None = None) -> int:
        """Nothing to do: the broker deletes records past ``retention.ms`` itself. Returns 0."""
        return 0


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a delivery's exception as seen (a publish that gave up no longer awaits it)."""
    if not future.cancelled():
        future.exception()
