"""Read replicas: the spec's ReadReplicaManager, one :class:`ReplicaSet` per shard.

Guarantees:

- Writes never come here: the store writes on the primary only.
- A read goes to a healthy replica chosen by the shard's selector (:mod:`.selectors`), or to the
  primary when the shard has no healthy replica.
- A read never fails because a replica failed: a read that fails on a replica with an operational
  error (connection refused or lost, timeout, recovery conflict) marks that replica unhealthy and runs
  once more on the primary. Errors the primary would raise too (constraint, bad data) are not retried.
- Health: every ``check_interval_s`` a background task runs ``SELECT 1`` on each replica, through its
  pool, with a ``check_timeout_s`` limit. A replica that fails is skipped until a check passes again,
  so a restarted replica is back within one interval plus one timeout. Each passing check is also a
  latency sample, so the latency selector keeps measuring replicas it currently does not choose. The
  check includes the wait for a pooled connection: a replica whose pool stays exhausted for longer
  than the timeout is treated as down too, and its reads go elsewhere until a check passes.
- Read-your-writes (:class:`ReadRouter`): a read concerning a user (a user id, or a photo id, which
  carries its owner's placement key) within ``read_your_writes_s`` after a write of that user *in this
  process* goes to the primary. Across processes it is best-effort: another process does not know about
  the write and may read a replica that has not replayed it yet (replication lag is usually far below
  the window, but nothing bounds it). A caller that needs the primary can say so with
  :func:`primary_reads`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from photostore.metadata.pool_stats import PoolStat, Role, describe_target, pool_stat
from photostore.metadata.recent_writes import RecentWrites
from photostore.metadata.selectors import LatencyBasedSelector, ReplicaSelector, RoundRobinSelector

__all__ = [
    "LatencyBasedSelector",
    "ReadRouter",
    "Replica",
    "ReplicaSelector",
    "ReplicaSet",
    "ReplicaStat",
    "RoundRobinSelector",
    "primary_reads",
]

T = TypeVar("T")
Read = Callable[[AsyncEngine], Awaitable[T]]

STATS_ALPHA = 0.2  # weight of a new sample in the latency EMA reported by replica_stats()

_PRIMARY_ONLY: ContextVar[bool] = ContextVar("photostore_primary_reads", default=False)


@contextmanager
def primary_reads() -> Iterator[None]:
    """Inside the block (this task and the tasks it starts), every metadata read goes to the primary."""
    token = _PRIMARY_ONLY.set(True)
    try:
        yield
    finally:
        _PRIMARY_ONLY.reset(token)


def _replica_failed(error: BaseException) -> bool:
    """An error the same read on the primary may not raise: the replica's, not the query's."""
    if isinstance(error, exc.IntegrityError | exc.DataError):
        return False
    return isinstance(error, exc.DBAPIError | exc.TimeoutError | exc.DisconnectionError | OSError)


@dataclass(frozen=True, slots=True)
class ReplicaStat:
    """Health and traffic of one server of a shard.

    ``latency_ms``: EMA of read and health-check round trips, None before the first. ``reads``: reads
    it served. ``failures``: failed reads and failed checks. The primary's entry counts the reads
    routed to it (read-your-writes, no healthy replica, retries); its ``healthy`` is always True, as
    the router never checks it (a down primary fails the read itself).
    """

    shard_id: int
    role: Role
    target: str
    healthy: bool
    latency_ms: float | None
    reads: int
    failures: int
    last_error: str | None


class Replica:
    """One read replica: its engine, health and counters. Hashable by identity (selector key)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.target = describe_target(engine.url)
        self.healthy = True  # optimistic until the first check: a failed read falls back anyway
        self.latency_s: float | None = None
        self.reads = 0
        self.failures = 0
        self.last_error: str | None = None

    def sample(self, latency_s: float) -> None:
        previous = self.latency_s
        self.latency_s = (
            latency_s if previous is None else STATS_ALPHA * latency_s + (1 - STATS_ALPHA) * previous
        )

    def fail(self, error: BaseException) -> None:
        self.healthy = False
        self.failures += 1
        self.last_error = f"{type(error).__name__}: {error}".splitlines()[0][:200]

    def __repr__(self) -> str:
        return f"Replica({self.target}, healthy={self.healthy})"


class ReplicaSet:
    """A shard's primary engine and its read replicas (it owns and disposes the replica engines)."""

    def __init__(
        self,
        shard_id: int,
        primary: AsyncEngine,
        replicas: Sequence[AsyncEngine] = (),
        selector: ReplicaSelector | None = None,
        *,
        check_interval_s: float = 2.0,
        check_timeout_s: float = 1.0,
    ) -> None:
        self.shard_id = shard_id
        self.primary = primary
        self.replicas = tuple(Replica(engine) for engine in replicas)
        self._selector: ReplicaSelector = selector or RoundRobinSelector()
        self._check_interval_s = check_interval_s
        self._check_timeout_s = check_timeout_s
        self._checker: asyncio.Task[None] | None = None
        self._primary = Replica(primary)  # counters of the reads the primary served

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the health checks (none without replicas); idempotent."""
        if self.replicas and self._checker is None:
            self._checker = asyncio.create_task(self._check_forever(), name=f"replica-checks-{self.shard_id}")

    async def close(self) -> None:
        """Stop the checks and dispose the replica engines (the primary belongs to the store)."""
        if self._checker is not None:
            self._checker.cancel()
            with suppress(asyncio.CancelledError):
                await self._checker
            self._checker = None
        await asyncio.gather(*(replica.engine.dispose() for replica in self.replicas))

    async def _check_forever(self) -> None:
        while True:
            await self.check_now()
            await asyncio.sleep(self._check_interval_s)

    async def check_now(self) -> None:
        """One health-check round over every replica, concurrently."""
        await asyncio.gather(*(self._check(replica) for replica in self.replicas))

    async def _check(self, replica: Replica) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._check_timeout_s):
                async with replica.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception as error:  # whatever the cause, the replica cannot serve now
            replica.fail(error)
            return
        latency = time.monotonic() - started
        replica.healthy = True
        replica.sample(latency)
        self._selector.observe(replica, latency)

    # --- reads ----------------------------------------------------------------------------------

    def healthy(self) -> list[Replica]:
        return [replica for replica in self.replicas if replica.healthy]

    async def read(self, run: Read[T], *, primary_only: bool = False) -> T:
        """``run`` on a healthy replica, else (or after the replica failed it) on the primary."""
        replica = None if primary_only else self._selector.select(self.healthy())
        if replica is None:
            return await self._on_primary(run)
        started = time.monotonic()
        try:
            result = await run(replica.engine)
        except Exception as error:
            if not _replica_failed(error):
                raise
            replica.fail(error)
            return await self._on_primary(run)
        latency = time.monotonic() - started
        replica.reads += 1
        replica.sample(latency)
        self._selector.observe(replica, latency)
        return result

    async def _on_primary(self, run: Read[T]) -> T:
        started = time.monotonic()
        result = await run(self.primary)
        self._primary.reads += 1
        self._primary.sample(time.monotonic() - started)
        return result

    # --- statistics -----------------------------------------------------------------------------

    def replica_stats(self) -> list[ReplicaStat]:
        """The primary (reads routed to it) first, then each replica."""
        servers: list[tuple[Role, Replica]] = [("primary", self._primary)]
        servers += [("replica", replica) for replica in self.replicas]
        return [
            ReplicaStat(
                shard_id=self.shard_id,
                role=role,
                target=server.target,
                healthy=server.healthy,
                latency_ms=None if server.latency_s is None else server.latency_s * 1000,
                reads=server.reads,
                failures=server.failures,
                last_error=server.last_error,
            )
            for role, server in servers
        ]

    def replica_pool_stats(self) -> list[PoolStat]:
        return [pool_stat(replica.engine, self.shard_id, "replica") for replica in self.replicas]


class ReadRouter:
    """Routes each shard's reads through its :class:`ReplicaSet`, keeping read-your-writes."""

    def __init__(self, replica_sets: Iterable[ReplicaSet], *, read_your_writes_s: float = 5.0) -> None:
        self._sets = {replica_set.shard_id: replica_set for replica_set in replica_sets}
        self._recent = RecentWrites(read_your_writes_s)

    def shard_ids(self) -> list[int]:
        return sorted(self._sets)

    def replica_set(self, shard_id: int) -> ReplicaSet:
        return self._sets[shard_id]

    def add(self, replica_set: ReplicaSet, *, start: bool) -> None:
        """Route a shard added at run time (a rebalance's new shard)."""
        self._sets[replica_set.shard_id] = replica_set
        if start:
            replica_set.start()

    def start(self) -> None:
        for replica_set in self._sets.values():
            replica_set.start()

    async def close(self) -> None:
        await asyncio.gather(*(replica_set.close() for replica_set in self._sets.values()))

    def wrote(self, ids: Iterable[uuid.UUID]) -> None:
        """Record writes of the users owning ``ids``: their reads stay on the primary for a while."""
        self._recent.wrote(ids)

    async def read(
        self, shard_id: int, run: Read[T], *, concerning: uuid.UUID | None = None, primary_only: bool = False
    ) -> T:
        """Run the read ``run(engine)`` on shard ``shard_id``; KeyError for a shard it does not know.

        ``concerning`` is the user or photo id the read is about (None: no user, e.g. the outbox).
        """
        replica_set = self._sets[shard_id]
        to_primary = (
            primary_only
            or _PRIMARY_ONLY.get()
            or (concerning is not None and self._recent.is_recent(concerning))
        )
        return await replica_set.read(run, primary_only=to_primary)

    def replica_stats(self) -> list[ReplicaStat]:
        """Per shard with replicas: the primary's routed reads, then each replica's health and reads."""
        return [
            stat
            for shard_id in self.shard_ids()
            if self._sets[shard_id].replicas
            for stat in self._sets[shard_id].replica_stats()
        ]

    def replica_pool_stats(self) -> list[PoolStat]:
        return [stat for shard_id in self.shard_ids() for stat in self._sets[shard_id].replica_pool_stats()]
