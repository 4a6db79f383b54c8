"""Stateless pieces of the Kafka EventLog: partition counts, the key partitioner, error translation,
and two guards around aiokafka 0.14 (no topic auto-creation; a clean ``stop()``).

aiokafka ships no type hints; its objects are ``Any`` here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import client as aiokafka_client
from aiokafka.admin import client as aiokafka_admin_client
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from photostore.errors import BackendUnavailable
from photostore.events.partitioning import partition_for
from photostore.settings import TopicSettings

log = logging.getLogger(__name__)


def scaled_topics(topics: Mapping[str, TopicSettings], scale: float) -> dict[str, TopicSettings]:
    """The topics with ``partitions * scale`` partitions each (rounded, at least 1); retention unchanged."""
    return {
        name: TopicSettings(partitions=max(1, round(spec.partitions * scale)), retention_ms=spec.retention_ms)
        for name, spec in topics.items()
    }


def key_partitioner(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """aiokafka's partitioner hook: the partition ``partition_for(key, partitions)``, as the embedded log.

    A topic's partitions are always numbered 0..n-1, so the index is the partition id. Every record
    of photostore has a key; a record without one is a bug, not something to spread at random.
    """
    if key is None:
        raise ValueError("photostore records always have a key")
    return partition_for(key.decode("utf-8"), len(all_partitions))


@asynccontextmanager
async def kafka_call(what: str, servers: str, timeout_s: float) -> AsyncIterator[None]:
    """Bound the body by ``timeout_s`` and turn every driver error into ``BackendUnavailable``.

    The message names the bootstrap servers, so an operator sees which cluster failed.
    """
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError as exc:
        raise BackendUnavailable(f"Kafka at {servers}: {what}: no answer within {timeout_s:g} s") from exc
    except KafkaError as exc:
        raise BackendUnavailable(f"Kafka at {servers}: {what}: {type(exc).__name__}: {exc}") from exc
    except OSError as exc:
        raise BackendUnavailable(f"Kafka at {servers}: {what}: {exc}") from exc


# --- aiokafka guards ------------------------------------------------------------------------------


class _MetadataRequestWithoutAutoCreate(MetadataRequest):  # type: ignore[misc]  # aiokafka is untyped
    """A MetadataRequest that never asks the broker to create the topics it names."""

    def __init__(self, topics: list[str] | None = None, allow_auto_topic_creation: bool = False) -> None:
        super().__init__(topics, allow_auto_topic_creation)


def disable_topic_auto_creation() -> None:
    """Make every aiokafka client of this process ask for metadata without auto-creating topics.

    Why: aiokafka 0.14 sends ``allow_auto_topic_creation=True`` on every metadata request and has no
    switch for it. A broker with auto-creation on (tansu always; Apache Kafka by default) then
    creates a missing topic with *its* default partition count (tansu 4, Kafka ``num.partitions``)
    as soon as any consumer or producer asks about it: right after a memory-only broker restarts,
    for instance. Keys would then land on other partitions than ``partition_for`` says, and tansu
    cannot add partitions afterwards. With this, only ``KafkaEventLog`` creates topics, with the
    configured counts; a missing topic is an error until it does. Idempotent.
    """
    aiokafka_client.MetadataRequest = _MetadataRequestWithoutAutoCreate
    aiokafka_admin_client.MetadataRequest = _MetadataRequestWithoutAutoCreate


def _cancelled_from_outside() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


# The background tasks an AIOKafkaConsumer's coordinator and fetcher keep (aiokafka 0.14).
_CONSUMER_TASKS = (
    "_coordination_task",
    "_heartbeat_task",
    "_commit_refresh_task",
    "_reset_committed_task",
    "_fetch_task",
)


async def stop_consumer(consumer: Any) -> None:
    """``consumer.stop()``, finished even when aiokafka raises a cancellation of its own.

    aiokafka's ``close()`` methods cancel a background task and then await it; a task cancelled
    before it ever ran re-raises that ``CancelledError`` (aio-libs/aiokafka#647: right after
    ``start()``, or when a fetch is retrying because the broker is gone). ``stop()`` then never
    closes its connections. Here the rest is done by hand; a real cancellation of the caller still
    propagates.
    """
    try:
        await consumer.stop()
        return
    except asyncio.CancelledError:
        if _cancelled_from_outside():
            raise
        log.debug("aiokafka consumer stop() was cut short by its own cancellation; finishing it")
    tasks: list[asyncio.Future[Any]] = []
    for owner in (consumer._coordinator, consumer._fetcher):
        for attr in _CONSUMER_TASKS:
            task = getattr(owner, attr, None)
            if isinstance(task, asyncio.Future) and not task.done():
                tasks.append(task)
        tasks.extend(t for t in getattr(owner, "_pending_tasks", ()) if not t.done())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await consumer._client.close()


async def stop_producer(producer: Any) -> None:
    """``producer.stop()`` (flushes what is queued), with the same guard as ``stop_consumer``."""
    try:
        await producer.stop()
    except asyncio.CancelledError:
        if _cancelled_from_outside():
            raise
        await producer.client.close()
