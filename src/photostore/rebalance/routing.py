"""What a process routes by: the shard map, plus the keys already switched by a running rebalance.

A rebalance moves users one placement key at a time. A key it has switched routes to its new shard
through ``overrides`` until the key's whole range is folded into the shard map. Writes to a key in a
range being moved, or any write while this process's view may be stale, check the source shard's
fences first (see :mod:`photostore.metadata.fences`); every other write skips that check.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from photostore.errors import ShardMoveInProgress
from photostore.placement.shard_map import ShardMap

# A view older than this may miss a fence: writes then check fences whatever the plan says.
STALE_AFTER_S = 1.0


@dataclass(frozen=True, slots=True)
class Routing:
    """One consistent view: ``version`` counts every change a rebalance publishes."""

    shard_map: ShardMap
    overrides: Mapping[int, int] = field(default_factory=dict)
    moving: Sequence[tuple[int, int]] = ()  # sorted, disjoint [lo, hi) key ranges of the plan
    version: int = 0

    def shard_for_key(self, placement_key: int) -> int:
        shard = self.overrides.get(placement_key)
        return self.shard_map.shard_for_key(placement_key) if shard is None else shard

    def is_moving(self, placement_key: int) -> bool:
        """True when the key lies in a range the running plan moves."""
        at = bisect.bisect_right(self.moving, (placement_key, 1 << 33)) - 1
        return at >= 0 and self.moving[at][0] <= placement_key < self.moving[at][1]

    def shard_ids(self) -> set[int]:
        """Every shard this view can route to."""
        return set(self.shard_map.shard_ids) | set(self.overrides.values())


class RoutingHolder:
    """The process's current view, swapped whole by the watcher; read on every request.

    The watcher refreshes it every fraction of a second. Should it fall behind (a view older than
    STALE_AFTER_S), the next lookup refreshes it on the spot before routing, so no request is routed
    by a view a rebalance may have left behind (the grace periods of the mover assume this bound).
    """

    def __init__(
        self,
        routing: Routing,
        *,
        version: Callable[[], int] | None = None,
        load: Callable[[], Routing] | None = None,
        open_shards: Callable[[], Collection[int]] | None = None,
    ) -> None:
        self._routing = routing
        self._refreshed = time.monotonic()
        self._version = version
        self._load = load
        self._open_shards = open_shards

    @property
    def routing(self) -> Routing:
        return self._routing

    def install(self, routing: Routing) -> None:
        self._routing = routing
        self._refreshed = time.monotonic()

    def confirm_fresh(self) -> None:
        """The watcher looked and nothing changed."""
        self._refreshed = time.monotonic()

    def is_stale(self) -> bool:
        return time.monotonic() - self._refreshed > STALE_AFTER_S

    def refresh_now(self) -> None:
        """Catch up synchronously (a small local read); ShardMoveInProgress while the new view
        routes to a shard this process has not opened yet (the watcher opens it)."""
        if self._version is None or self._load is None:
            return
        if self._version() == self._routing.version:
            self.confirm_fresh()
            return
        routing = self._load()
        if self._open_shards is not None and not routing.shard_ids() <= set(self._open_shards()):
            raise ShardMoveInProgress("this process is opening a shard a rebalance added")
        self.install(routing)

    def shard_for_key(self, placement_key: int) -> int:
        if self.is_stale():
            self.refresh_now()
        return self._routing.shard_for_key(placement_key)

    def needs_fence_check(self, placement_key: int) -> bool:
        return self.is_stale() or self._routing.is_moving(placement_key)
