"""The background roles of a process: the outbox relay, the three consumer groups, housekeeping
(event retention, re-driving stalled photos).

``serve`` runs them beside the API in one process by default; ``--role worker`` or ``--role relay``
runs them alone, so each can be scaled on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, Literal

from photostore.pipeline.consumer import ConsumerLoop
from photostore.pipeline.handlers import PipelineHandlers
from photostore.pipeline.messages import TOPIC_PROCESSING, TOPIC_THUMBNAILS, TOPIC_UPLOAD
from photostore.pipeline.reconciler import StalledPhotoReconciler
from photostore.pipeline.relay import OutboxRelay, RelayLease
from photostore.runtime import Runtime

log = logging.getLogger(__name__)

Role = Literal["all", "api", "worker", "relay"]
RETENTION_INTERVAL_S = 60.0
STOP_TIMEOUT_S = 10.0
RESTART_PAUSE_S = 1.0  # before a background job that ended is started again


class BackgroundServices:
    def __init__(self, runtime: Runtime, role: Role) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.role = role
        self.handlers = PipelineHandlers(
            settings, runtime.metadata, runtime.blobs, runtime.cache, runtime.notifier
        )
        self.relay = OutboxRelay(
            runtime.metadata, runtime.events, runtime.notifier, settings.events.relay_interval_s
        )
        self.reconciler = StalledPhotoReconciler(
            runtime.metadata,
            runtime.events,
            runtime.notifier,
            after_s=settings.events.redrive_after_s,
            max_lag=settings.events.redrive_max_lag,
        )
        concurrency = settings.events.worker_concurrency
        self.consumers = [
            ConsumerLoop(runtime.events, "dispatch", TOPIC_UPLOAD, self.handlers.dispatch, concurrency=4),
            ConsumerLoop(
                runtime.events, "processing", TOPIC_PROCESSING, self.handlers.process, concurrency=concurrency
            ),
            ConsumerLoop(
                runtime.events,
                "thumbnails",
                TOPIC_THUMBNAILS,
                self.handlers.thumbnails,
                concurrency=concurrency,
            ),
        ]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        jobs: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        watcher = self.runtime.routing_watcher()
        jobs.append(("routing watcher", lambda: watcher.run(self._stop)))
        if self.role in ("all", "relay"):
            lease = RelayLease(self.runtime.settings.data_dir / "locks" / "relay.lock")
            jobs.append(("outbox relay", lambda: self.relay.run(self._stop, lease)))
            jobs.append(("event retention", self._retention))
            jobs.append(("reconciler", lambda: self.reconciler.run(self._stop)))
        if self.role in ("all", "worker"):
            for loop in self.consumers:
                jobs.append((f"consumer {loop.group}", partial(loop.run, self._stop)))
        self._tasks = [asyncio.create_task(self._supervised(name, job)) for name, job in jobs]

    async def _supervised(self, name: str, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``job`` until stopped; if it ends before that (an error, or a cancellation that leaked
        out of a driver, which would otherwise end the task without a word), log it and start it
        again, so no background role dies silently."""
        while not self._stop.is_set():
            try:
                await job()
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._stop.is_set() or (task is not None and task.cancelling()):
                    raise  # a real cancellation: stopping
                log.error("background job %s was cancelled from inside; starting it again", name)
            except Exception:
                log.exception("background job %s failed; starting it again", name)
            else:
                if self._stop.is_set():
                    return
                log.error("background job %s ended by itself; starting it again", name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), RESTART_PAUSE_S)

    async def stop(self) -> None:
        self._stop.set()
        # wait_for cancels a task that does not finish its current step in time.
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, timeout=STOP_TIMEOUT_S)
        self._tasks.clear()

    async def wait(self) -> None:
        await asyncio.gather(*self._tasks)

    async def _retention(self) -> None:
        while not self._stop.is_set():
            try:
                removed = await self.runtime.events.apply_retention()
                if removed:
                    log.info("event retention removed %d records", removed)
            except Exception:
                log.exception("event retention pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), RETENTION_INTERVAL_S)
