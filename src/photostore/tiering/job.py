"""The tiering job: one pass moves every idle original to the cold bucket and every cold original
read since back to a hot one, with the bucket mover's guarantees.

Each original is copied, read back and checked against its SHA-256, switched by a conditional
transaction (only if its row is unchanged), and its source deleted after a grace period; a journal
makes every step safe to kill (see photostore.rebalance.buckets). Reads keep working throughout:
the row names a complete object at every moment, and a reader holding an older row finds the
source until the grace period ends, then reads the row again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from photostore.errors import ConfigError, Conflict
from photostore.rebalance.bucket_results import MovePlan, MoveResult, Progress
from photostore.rebalance.buckets import BucketMover
from photostore.runtime import Runtime
from photostore.tiering.buckets import move_journal_dir
from photostore.tiering.rule import TierDestinations

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TierPlan:
    idle_before: datetime
    photos: int  # live photos seen
    to_cold: tuple[int, int]  # originals, bytes
    to_hot: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "idle_before": self.idle_before.isoformat(),
            "photos": self.photos,
            "to_cold": {"originals": self.to_cold[0], "bytes": self.to_cold[1]},
            "to_hot": {"originals": self.to_hot[0], "bytes": self.to_hot[1]},
        }


def tier_mover(runtime: Runtime, now: datetime | None = None) -> BucketMover:
    """A bucket mover following the tier rule as of ``now`` (default: the current time)."""
    settings = runtime.settings
    cold = settings.tiering.cold_bucket
    if cold is None:
        raise ConfigError("tiering is off: set tiering.cold_bucket to a bucket for cold originals")
    idle_before = (now or datetime.now(UTC)) - settings.tiering.cold_after
    bucket_map = runtime.placement.reload()[1]
    return BucketMover(
        runtime.metadata,
        runtime.blobs,
        bucket_map,
        move_journal_dir(runtime),
        grace_s=settings.rebalance.object_grace_s,
        concurrency=settings.tiering.concurrency,
        rule=TierDestinations(bucket_map, cold, idle_before),
    )


def summarize(plan: MovePlan, cold_bucket: str, idle_before: datetime) -> TierPlan:
    to_cold = [p for p in plan.pairs if p.target == cold_bucket]
    to_hot = [p for p in plan.pairs if p.source == cold_bucket]
    return TierPlan(
        idle_before,
        plan.photos,
        (sum(p.objects for p in to_cold), sum(p.bytes for p in to_cold)),
        (sum(p.objects for p in to_hot), sum(p.bytes for p in to_hot)),
    )


async def plan_pass(runtime: Runtime, now: datetime | None = None) -> tuple[BucketMover, MovePlan, TierPlan]:
    """What a pass as of ``now`` would move (a scan of every shard, nothing written)."""
    mover = tier_mover(runtime, now)
    plan = await mover.plan()
    rule = mover.rule
    assert isinstance(rule, TierDestinations)
    return mover, plan, summarize(plan, rule.cold_bucket, rule.idle_before)


async def run_pass(
    runtime: Runtime, now: datetime | None = None, progress: Progress | None = None
) -> tuple[TierPlan, MoveResult]:
    """One pass; returns once the moved originals' sources are deleted."""
    mover, plan, summary = await plan_pass(runtime, now)
    return summary, await mover.run(progress, plan)


async def watch(
    runtime: Runtime,
    interval_s: float,
    on_pass: Callable[[TierPlan, MoveResult], Awaitable[None]],
) -> None:
    """A pass every ``interval_s`` until cancelled; a pass that finds a bucket rebalance running
    (the shared journal is locked) is skipped, and a failed pass is logged and tried again."""
    while True:
        try:
            await on_pass(*await run_pass(runtime))
        except Conflict:
            log.info("tiering: a bucket move holds the journal; next pass in %.0f s", interval_s)
        except Exception:
            log.exception("tiering pass failed; next pass in %.0f s", interval_s)
        await asyncio.sleep(interval_s)
