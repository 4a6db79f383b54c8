"""Group commit: writes that arrive while a transaction is in flight share the next one.

With synchronous commits every transaction pays an fsync, and on a disk busy with photo bytes an
fsync also waits for their data. Batching concurrent inserts of one shard into one transaction
pays that once per batch instead of once per upload, and adds no latency when there is no
concurrency (a lone request starts its batch at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# run(items) returns one outcome per item: a result, or the exception that item alone raised.
BatchRunner = Callable[[list[T]], Awaitable[list[R | Exception]]]


class GroupCommit(Generic[T, R]):
    def __init__(self, run: BatchRunner[T, R], max_batch: int = 64) -> None:
        self._run = run
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Write ``item`` in the next batch; its own result or exception comes back here."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        # A cancelled caller does not cancel the write: the batch is shared with other callers.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    outcomes = await self._run([item for item, _ in batch])
                except Exception as exc:  # the whole transaction failed: nothing was written
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._drainer = None
