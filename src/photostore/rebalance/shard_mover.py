"""Online shard rebalancing: move users to the shard a new map gives them, a batch of keys at a time.

The plan is the key ranges whose owner differs between the map in force and the target map
(:meth:`ShardMap.moved_key_ranges`), grouped by (source, target) shard. The keys of a group go, in
batches of ``batch_keys``, through the steps Vitess' MoveTables takes, at user grain, each
journaled per key in the control file before it is taken (:mod:`.control`):

1. ``copying``: a snapshot of the key's rows is written to the target, replacing any leftovers of an
   interrupted try; then photos whose (updated_at, deleted_at) differ between the two sides are
   copied again until a pass finds few (a stamp is compared, not ordered, so a slow commit is
   never missed).
2. ``fenced``: a fence row on the source stops the key's writes (they wait up to a second, then get
   503 with Retry-After); a last catch-up copies what changed meanwhile.
3. ``switched``: the key's override routes it to the target (a version bump every process sees
   within a poll). The source rows stay until readers holding the old view are done.

When every key of a group is switched, the group's ranges are fenced against new users, keys created
meanwhile are moved too, the ranges are folded into the shard map in force (a blended ring), and after
a grace period the source rows are deleted (``cleaned``). When all groups are done the target map is
saved, the plan closed and the fences dropped. A mover killed at any point resumes from the journal:
a key not yet switched starts again from its copy, a switched one only waits for its cleanup.
"""

from __future__ import annotations

import asyncio
import bisect
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from photostore.errors import ConfigError
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.placement.shard_map import ShardMap
from photostore.placement.store import PlacementStore
from photostore.rebalance import pg_copy, shard_rows
from photostore.rebalance.control import ControlStore, RangeRecord
from photostore.rebalance.routing import STALE_AFTER_S

CATCH_UP_MARGIN_S = (
    2.0  # rows written this long before a pass started are copied again: clock skew, long commits
)
CATCH_UP_PASSES = 3
FEW_CHANGES = 20  # a catch-up pass that finds fewer changed photos ends the catch-up
CLEANUP_BATCH = 200  # keys whose source rows one transaction deletes
VIEW_MARGIN_S = 0.5  # beyond a view's staleness bound: a request routed just before its refresh ends
PLAN_GRACE_S = 2.0  # every process sees a new plan (and starts checking fences) within this
CLEANUP_GRACE_S = 2.0  # every process routes a switched key to its target within this

Progress = Callable[[int, int], None]
_STEPS = ("pending", "moved", "folded", "cleaned")


@dataclass(slots=True)
class MoveStats:
    keys: int = 0
    rows: int = 0
    bytes: int = 0
    fenced_s: list[float] = field(default_factory=list)
    moving_s: float = 0.0  # wall time spent moving keys (the grace periods excluded)

    def as_dict(self) -> dict[str, Any]:
        fenced = sorted(self.fenced_s)
        return {
            "keys": self.keys,
            "moving_s": round(self.moving_s, 3),
            "rows": self.rows,
            "bytes": self.bytes,
            "fenced_max_s": round(fenced[-1], 4) if fenced else 0.0,
            "fenced_p99_s": round(fenced[int(0.99 * (len(fenced) - 1))], 4) if fenced else 0.0,
        }


def plan_body(
    current: ShardMap, target: ShardMap, describe: str
) -> tuple[dict[str, Any], list[tuple[int, int, int, int]]]:
    """The plan's JSON and its key ranges (lo, hi, source, target)."""
    ranges = [(m.lo, m.hi, m.source, m.target) for m in current.moved_key_ranges(target)]
    body = {
        "plan_id": uuid.uuid4().hex,
        "describe": describe,
        "base_version": current.version,
        "target": target.to_dict(),
        "created_at": time.time(),
        "moved_fraction": current.moved_keys_fraction(target),
    }
    return body, ranges


def start_plan(
    placement: PlacementStore, control: ControlStore, target_of: Callable[[ShardMap], ShardMap], describe: str
) -> dict[str, Any]:
    """Record the plan that takes the map in force to ``target_of(map)``; Conflict if one runs."""
    current, _ = placement.reload()
    target = target_of(current)
    body, ranges = plan_body(current, target, describe)
    control.start_plan(body, ranges)
    return body


def _groups(ranges: Iterable[RangeRecord]) -> dict[tuple[int, int], list[RangeRecord]]:
    grouped: dict[tuple[int, int], list[RangeRecord]] = {}
    for record in ranges:
        grouped.setdefault((record.src, record.dst), []).append(record)
    return grouped


def _in_ranges(key: int, ranges: Sequence[RangeRecord], los: Sequence[int]) -> bool:
    at = bisect.bisect_right(los, key) - 1
    return at >= 0 and ranges[at].lo <= key < ranges[at].hi


class ShardRebalancer:
    """Runs (or resumes) the plan in the control file against the store's shards."""

    def __init__(
        self,
        store: SqlMetadataStore,
        placement: PlacementStore,
        control: ControlStore,
        *,
        parallel: int = 4,
        batch_keys: int = 32,
        plan_grace_s: float = PLAN_GRACE_S,
        cleanup_grace_s: float = CLEANUP_GRACE_S,
        progress: Progress | None = None,
    ) -> None:
        self._store = store
        self._placement = placement
        self._control = control
        self._parallel = asyncio.Semaphore(parallel)
        self._batch_keys = batch_keys
        # Never shorter than the staleness bound of a process's routing view (see routing.py).
        self._plan_grace_s = max(plan_grace_s, STALE_AFTER_S + VIEW_MARGIN_S)
        self._cleanup_grace_s = max(cleanup_grace_s, STALE_AFTER_S + VIEW_MARGIN_S)
        self._progress = progress
        self.stats = MoveStats()
        self._done = 0
        self._total = 0

    async def run(self) -> dict[str, Any] | None:
        """Finish the running plan; its summary, or None when no plan runs."""
        snapshot = self._control.snapshot()
        plan = snapshot.plan
        if plan is None:
            return None
        target = ShardMap.from_dict(plan["target"])
        await self._store.ensure_shards({s for r in snapshot.ranges for s in (r.src, r.dst)})
        wait = float(plan["created_at"]) + self._plan_grace_s - time.time()
        if wait > 0:
            await asyncio.sleep(wait)  # until every process checks fences for the moving ranges
        groups = _groups(snapshot.ranges)
        work = {pair: await self._keys_to_move(pair[0], records) for pair, records in groups.items()}
        self._total = sum(len(keys) for keys in work.values())
        self._report()
        for (src, dst), records in groups.items():
            await self._move_group(src, dst, records, target, work[(src, dst)])
        return await self._finish(plan, target)

    def _report(self) -> None:
        if self._progress is not None:
            self._progress(self._done, max(self._total, self._done))

    async def _keys_to_move(self, src: int, records: Sequence[RangeRecord]) -> list[int]:
        if all(r.step == "cleaned" for r in records):
            return []
        los = [r.lo for r in records]
        on_source = await shard_rows.keys_in_range(
            self._store.primary_engine(src), records[0].lo, records[-1].hi
        )
        journal = self._control.moves(records[0].lo, records[-1].hi)
        keys = {k for k in on_source if _in_ranges(k, records, los)} | set(journal)
        return sorted(keys)

    async def _move_group(
        self, src: int, dst: int, records: list[RangeRecord], target: ShardMap, keys: list[int]
    ) -> None:
        step = min((r.step for r in records), key=_STEPS.index)  # a kill may stop between records
        if step == "pending":
            await self._move_keys(src, dst, keys)
            source = self._store.primary_engine(src)
            # No new user in these ranges here from now on.
            await shard_rows.fence_ranges(source, [(r.lo, r.hi) for r in records], dst)
            stragglers = [k for k in await self._keys_to_move(src, records) if k not in set(keys)]
            self._total += len(stragglers)
            await self._move_keys(src, dst, stragglers)
            self._control.set_range_step([r.lo for r in records], "moved")
            step = "moved"
        if step == "moved":
            current, _ = self._placement.reload()
            blended = current.blended(target, [(r.lo, r.hi) for r in records])
            self._placement.save(blended)
            self._control.fold_ranges([(r.lo, r.hi) for r in records])
            step = "folded"
        if step == "folded":
            await asyncio.sleep(self._cleanup_grace_s)  # readers holding the old view finish
            source = self._store.primary_engine(src)
            moves = self._control.moves(records[0].lo, records[-1].hi).items()
            switched = [key for key, move in moves if move.src == src and move.step == "switched"]
            for at in range(0, len(switched), CLEANUP_BATCH):
                batch = switched[at : at + CLEANUP_BATCH]
                await shard_rows.delete_rows(source, batch)
                self._control.record_moves(batch, src, dst, "cleaned")
            self._control.set_range_step([r.lo for r in records], "cleaned")

    async def _move_keys(self, src: int, dst: int, keys: Sequence[int]) -> None:
        journal = self._control.moves()
        started = time.monotonic()
        todo = [k for k in keys if journal.get(k) is None or journal[k].step not in ("switched", "cleaned")]
        self._done += len(keys) - len(todo)
        self._report()

        async def one(batch: list[int]) -> None:
            async with self._parallel:
                await self._move_batch(batch, src, dst)
                self._done += len(batch)
                self._report()

        size = self._batch_keys
        await asyncio.gather(*(one(list(todo[at : at + size])) for at in range(0, len(todo), size)))
        self.stats.moving_s += time.monotonic() - started

    async def _move_batch(self, keys: list[int], src: int, dst: int) -> None:
        """Steps 1-3 for a batch of keys together: a few round trips whatever the batch's size."""
        source, target = self._store.primary_engine(src), self._store.primary_engine(dst)
        self._control.record_moves(keys, src, dst, "copying")
        copied, size, loads = await self._first_copy(source, target, keys)
        for _ in range(CATCH_UP_PASSES):
            changed_rows, changed_photos = await self._catch_up(source, target, keys)
            copied += changed_rows
            if changed_photos < FEW_CHANGES:
                break
        self._control.record_moves(keys, src, dst, "fenced", loads)
        fenced_at = time.monotonic()
        await shard_rows.fence_keys(source, keys, dst)
        copied += (await self._catch_up(source, target, keys))[0]  # nothing changes on the source now
        fenced_s = time.monotonic() - fenced_at
        self._control.switch_keys(keys, dst, fenced_s)
        self.stats.keys += len(keys)
        self.stats.rows += copied
        self.stats.bytes += size
        self.stats.fenced_s.extend([fenced_s] * len(keys))

    @staticmethod
    async def _first_copy(
        source: AsyncEngine, target: AsyncEngine, keys: list[int]
    ) -> tuple[int, int, dict[int, tuple[int, int]]]:
        """Replace the keys' rows on the target with a snapshot of the source's: binary COPY
        between PostgreSQL shards, SQLAlchemy rows otherwise; (rows, bytes, loads by key)."""
        if pg_copy.applies(source, target):
            bulk = await pg_copy.copy_keys(source, target, keys)
            return bulk.rows, bulk.size, bulk.loads
        rows = await shard_rows.read_rows(source, keys)
        await shard_rows.write_rows(target, keys, rows, fresh=True)
        return rows.count, rows.size, rows.loads_by_key()

    @staticmethod
    async def _catch_up(source: AsyncEngine, target: AsyncEngine, keys: list[int]) -> tuple[int, int]:
        """Copy the keys' photos whose stamps differ (and their users and API keys again);
        (rows copied, photos that differed)."""
        stale = shard_rows.changed_since(
            await shard_rows.photo_stamps(source, keys), await shard_rows.photo_stamps(target, keys)
        )
        delta = await shard_rows.read_rows(source, keys, stale)
        await shard_rows.write_rows(target, keys, delta, fresh=False)
        return delta.count, len(stale)

    async def _finish(self, plan: Mapping[str, Any], target: ShardMap) -> dict[str, Any]:
        current, _ = self._placement.reload()
        if not current.routes_like(target):
            raise ConfigError(
                "the shard map in force does not route like the plan's target; run `photostore verify`"
            )
        if current.ring != target.ring:
            self._placement.save(ShardMap(target.ring, current.version + 1))
        shards = set(current.shard_ids) | set(target.shard_ids)
        summary = {
            "plan_id": plan["plan_id"],
            "describe": plan["describe"],
            "moved_fraction": plan["moved_fraction"],
            **self.stats.as_dict(),
        }
        self._control.finish_plan(summary)
        await asyncio.sleep(self._cleanup_grace_s)  # every process routes by the final map
        for shard_id in sorted(shards):
            await shard_rows.clear_fences(self._store.primary_engine(shard_id))
        return summary
