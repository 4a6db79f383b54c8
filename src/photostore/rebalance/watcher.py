"""Keeps a process's routing view current: polls the control version and swaps the view whole."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from photostore.placement.store import PlacementStore
from photostore.rebalance.control import ControlStore
from photostore.rebalance.routing import Routing, RoutingHolder

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1
T = TypeVar("T")


def load_routing(placement: PlacementStore, control: ControlStore) -> Routing:
    """The routing view now: the control snapshot first, so the map read after it is as new or newer."""
    snapshot = control.snapshot()
    shard_map, _ = placement.reload()
    moving = tuple((r.lo, r.hi) for r in snapshot.ranges if r.step != "folded" and r.step != "cleaned")
    return Routing(shard_map, dict(snapshot.overrides), moving, snapshot.version)


def plan_shards(control: ControlStore) -> set[int]:
    """The shards the running plan moves users to or from (open them before routing there)."""
    return {shard for r in control.snapshot().ranges for shard in (r.src, r.dst)}


class RoutingWatcher:
    def __init__(
        self,
        placement: PlacementStore,
        control: ControlStore,
        holder: RoutingHolder,
        prepare: Callable[[set[int]], Awaitable[None]],
        on_change: Callable[[Routing], None] = lambda _routing: None,
        interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        self._placement = placement
        self._control = control
        self._holder = holder
        self._prepare = prepare
        self._on_change = on_change
        self._interval_s = interval_s
        # A thread of its own: the shared pool may be busy decoding images for seconds.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="routing-watcher")

    async def _off_loop(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    async def refresh(self) -> bool:
        """Look once; True when the view changed."""
        version = await self._off_loop(self._control.version)
        if version == self._holder.routing.version:
            self._holder.confirm_fresh()
            return False
        routing = await self._off_loop(lambda: load_routing(self._placement, self._control))
        shards = routing.shard_ids() | await self._off_loop(lambda: plan_shards(self._control))
        await self._prepare(shards)  # shards and buckets open before any request can go there
        self._holder.install(routing)
        self._on_change(routing)
        log.info("routing version %d (shard map version %d)", routing.version, routing.shard_map.version)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.refresh()
                except Exception:
                    log.exception("routing refresh failed; requests refresh it themselves meanwhile")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._interval_s)
        finally:
            self._thread.shutdown(wait=False)
