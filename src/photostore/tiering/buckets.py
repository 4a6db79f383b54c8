"""The cold tier's buckets, and the folder every bucket move (rebalance or tiering) journals in.

Both kinds of move share one journal folder on purpose: its lock lets one mover run at a time, so
a rebalance and a tiering pass never copy the same photo at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from photostore.settings import Settings

if TYPE_CHECKING:
    from photostore.runtime import Runtime


def cold_buckets(settings: Settings) -> frozenset[str]:
    """Buckets holding cold originals: never a bucket map's, so a rebalance leaves them be."""
    cold = settings.tiering.cold_bucket
    return frozenset() if cold is None else frozenset({cold})


def move_journal_dir(runtime: Runtime) -> Path:
    return runtime.placement.directory / "bucket-moves"
