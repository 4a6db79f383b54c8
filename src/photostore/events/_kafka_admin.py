"""Topic setup and group inspection for the Kafka EventLog, through aiokafka's admin client.

Callers bound each call and translate errors (``kafka_call``); this module raises driver errors and
``ConfigError`` for settings the cluster cannot follow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.coordinator.protocol import ConsumerProtocol
from aiokafka.errors import IncompatibleBrokerVersion, KafkaTimeoutError, UnsupportedVersionError, for_code
from aiokafka.protocol.group import LeaveGroupRequest

from photostore.errors import ConfigError
from photostore.settings import TopicSettings

log = logging.getLogger(__name__)

_NO_ERROR = 0
_UNKNOWN_TOPIC = 3
_TOPIC_ALREADY_EXISTS = 36
RETENTION_KEY = "retention.ms"
_LISTED_ATTEMPTS = 30
_LISTED_PAUSE_S = 0.1


@dataclass(frozen=True, slots=True)
class TopicState:
    """A topic as the broker has it."""

    partitions: int
    retention_ms: int


class TopicAdmin:
    """Creates the configured topics and reads groups' committed offsets and members."""

    def __init__(
        self, servers: str, client_id: str, request_timeout_s: float, replication_factor: int
    ) -> None:
        self._replication = replication_factor
        self._client = AIOKafkaAdminClient(
            bootstrap_servers=servers,
            client_id=client_id,
            request_timeout_ms=int(request_timeout_s * 1000),
        )

    async def start(self) -> None:
        await self._client.start()

    async def close(self) -> None:
        await self._client.close()

    # --- topics -------------------------------------------------------------------------------

    async def ensure_topics(
        self, specs: Mapping[str, TopicSettings], known: Mapping[str, TopicState] | None = None
    ) -> dict[str, TopicState]:
        """Create the missing topics, grow topics with too few partitions, and return every topic's state.

        Existing topics are kept. Fewer partitions than configured: added with CreatePartitions
        (keys then map anew, as in Kafka); a broker without CreatePartitions (tansu) gets a
        ``ConfigError`` saying so. More partitions than configured: ``ConfigError`` (they cannot be
        removed). A different ``retention.ms`` is reported and logged, not changed: aiokafka has only
        the old AlterConfigs, which would reset the topic's other settings (and tansu lacks it).
        ``known``: states from an earlier call, whose retention
        is not read (nor warned about) again unless the topic had to be created.
        """
        counts = await self._partition_counts(list(specs))
        missing = [name for name in specs if name not in counts]
        if missing:
            # Ask again before creating: tansu empties a topic that is "created" again, and a broker
            # that just restarted can answer UNKNOWN_TOPIC for a moment about one it has.
            await asyncio.sleep(_LISTED_PAUSE_S)
            counts.update(await self._partition_counts(missing))
            missing = [name for name in specs if name not in counts]
        if missing:
            await self._create(missing, specs)
            counts.update(await self._listed_after_creation(missing))
        for name, spec in specs.items():
            have = counts[name]
            if have > spec.partitions:
                raise ConfigError(
                    f"topic {name!r} has {have} partitions on the broker; they cannot be reduced to "
                    f"{spec.partitions} (set its partitions, or events.kafka.partitions_scale, to match)"
                )
            if have < spec.partitions:
                await self._grow(name, have, spec.partitions)
                counts[name] = spec.partitions
        known = {} if known is None else known
        unread = [name for name in specs if name in missing or name not in known]
        retention = await self._retention(unread) if unread else {}
        states = {}
        for name, spec in specs.items():
            if name not in unread:
                states[name] = TopicState(counts[name], known[name].retention_ms)
                continue
            actual = retention.get(name)
            if actual is None:
                log.warning(
                    "topic %s has no retention.ms on the broker; settings say %d", name, spec.retention_ms
                )
            elif actual != spec.retention_ms:
                log.warning(
                    "topic %s keeps records %d ms on the broker; settings say %d (change it on the broker)",
                    name,
                    actual,
                    spec.retention_ms,
                )
            states[name] = TopicState(counts[name], spec.retention_ms if actual is None else actual)
        return states

    async def _partition_counts(self, names: list[str]) -> dict[str, int]:
        """Partitions per existing topic; topics the broker does not know are left out."""
        counts = {}
        for topic in await self._client.describe_topics(names):
            code = topic["error_code"]
            if code == _UNKNOWN_TOPIC:
                continue
            if code != _NO_ERROR:
                raise for_code(code)(f"describing topic {topic['topic']}")
            counts[topic["topic"]] = len(topic["partitions"])
        return counts

    async def _listed_after_creation(self, names: list[str]) -> dict[str, int]:
        # A new topic can take a moment to show in the metadata (Apache Kafka's controller
        # propagates it to the brokers).
        for _ in range(_LISTED_ATTEMPTS):
            counts = await self._partition_counts(names)
            if len(counts) == len(names):
                return counts
            await asyncio.sleep(_LISTED_PAUSE_S)
        raise KafkaTimeoutError(f"topics {sorted(set(names) - set(counts))} were created but are not listed")

    async def _create(self, names: list[str], specs: Mapping[str, TopicSettings]) -> None:
        new = [
            NewTopic(
                name,
                specs[name].partitions,
                self._replication,
                topic_configs={RETENTION_KEY: str(specs[name].retention_ms)},
            )
            for name in names
        ]
        response = await self._client.create_topics(new)
        for name, code, message in response.topic_errors:
            if code not in (_NO_ERROR, _TOPIC_ALREADY_EXISTS):  # another process may have won the race
                raise for_code(code)(f"creating topic {name}: {message}")
            if code == _NO_ERROR:
                log.info("created topic %s (%d partitions)", name, specs[name].partitions)

    async def _grow(self, name: str, have: int, want: int) -> None:
        try:
            await self._client.create_partitions({name: NewPartitions(want)})
        except (IncompatibleBrokerVersion, UnsupportedVersionError) as exc:
            raise ConfigError(
                f"topic {name!r} has {have} partitions and settings want {want}, but this broker cannot add "
                f"partitions (no CreatePartitions: {exc}); recreate the topic or set its partitions to {have}"
            ) from exc
        log.warning("topic %s grew from %d to %d partitions; keys map to partitions anew", name, have, want)

    async def _retention(self, names: list[str]) -> dict[str, int]:
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        found = {}
        for response in await self._client.describe_configs(resources):
            for code, _message, _type, name, entries in response.resources:
                if code != _NO_ERROR:
                    raise for_code(code)(f"describing the configuration of topic {name}")
                for entry in entries:
                    if entry[0] == RETENTION_KEY and entry[1] is not None:
                        found[name] = int(entry[1])
        return found

    # --- groups -------------------------------------------------------------------------------

    async def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        """The group's committed offset per partition of ``topic`` that has one.

        Partitions are named explicitly: tansu answers an OffsetFetch for "all topics" in a form
        aiokafka cannot decode, and answers this one right.
        """
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        offsets = await self._client.list_consumer_group_offsets(group, partitions=wanted)
        return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    async def listed_groups(self) -> list[str]:
        """Consumer groups the broker lists (ListGroups). tansu 0.6 lists none."""
        return sorted({str(entry[0]) for entry in await self._client.list_consumer_groups()})

    async def subscribed_topics(self, group: str) -> set[str]:
        """Topics the live members of ``group`` subscribe to (tansu keeps no member metadata)."""
        topics: set[str] = set()
        for response in await self._client.describe_consumer_groups([group]):
            described: dict[str, Any]
            for described in response.to_object()["groups"]:
                if described["error_code"] != _NO_ERROR:
                    continue
                for member in described["members"]:
                    if member["member_metadata"]:
                        subscription = ConsumerProtocol.METADATA.decode(
                            member["member_metadata"]
                        ).subscription
                        topics.update(subscription)
        return topics

    async def leave_group(self, group: str, member_id: str) -> None:
        """Send LeaveGroup for a member (best effort: the answer is not checked)."""
        node = await self._client.find_coordinator(group)
        await self._client._send_request(LeaveGroupRequest(group, member_id), node)
