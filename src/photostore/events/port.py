"""The EventLog port (Kafka's model).

Guarantees:
- Topics have a fixed number of partitions; a record's partition is chosen from its key, so records
  with one key keep their order.
- ``publish`` returns when the records are durable.
- A consumer group shares a topic's partitions among its members; each partition has one committed
  offset per group. Delivery is at least once: records after the committed offset are delivered
  again after a crash or rebalance, so handlers must be idempotent.
- ``lag`` is end offset minus committed offset, per partition.
- Records older than the topic's retention may be deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: str
    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: int
    retention_ms: int
    end_offsets: dict[int, int]  # partition -> next offset to be written


class Consumer(Protocol):
    """One member of a consumer group, subscribed to one topic."""

    async def poll(self, max_records: int = 100, timeout_s: float = 1.0) -> list[Record]: ...

    async def commit(self, records: Sequence[Record]) -> None:
        """Commit past the given records (each partition's offset becomes its last offset + 1)."""

    async def close(self) -> None:
        """Leave the group; its partitions go to the other members."""


class EventLog(Protocol):
    async def start(self) -> None:
        """Create the topics from settings if missing."""

    async def close(self) -> None: ...

    async def publish(self, records: Sequence[OutgoingRecord]) -> None: ...

    async def consumer(self, group: str, topic: str) -> Consumer: ...

    async def topics(self) -> list[TopicInfo]: ...

    async def committed(self, group: str, topic: str) -> dict[int, int]: ...

    async def lag(self, group: str, topic: str) -> dict[int, int]: ...

    async def groups(self) -> list[tuple[str, str]]:
        """(group, topic) pairs that have committed offsets or live members."""

    async def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete records past their topic's retention; returns how many were deleted."""
