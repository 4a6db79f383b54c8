"""A bucket mover in a process of its own, so that a test can SIGKILL it anywhere.

:func:`start_mover` forks it from a forkserver that has this module (and so photostore) imported
already: a child is moving within milliseconds, not after a second of imports, so a short kill loop
spends its time killing.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.buckets import BucketMover
from photostore.tiering.rule import TierDestinations
from tests.support.photo_library import open_stores

READY_TIMEOUT_S = 60.0
_forkserver = multiprocessing.get_context("forkserver")
_forkserver.set_forkserver_preload([__name__])


def run_mover(
    spec: dict[str, Any],
    target: dict[str, Any],
    journal: str,
    grace_s: float,
    report: Connection,
    tiers: tuple[str, str] | None = None,
) -> None:
    """The child: open the stores, say "ready", run the mover to ``target``, send the result.
    ``tiers``: (cold bucket, idle-before time in ISO 8601) to run the tiering rule instead."""
    asyncio.run(_run(spec, BucketMap.from_dict(target), Path(journal), grace_s, report, tiers))


async def _run(
    spec: dict[str, Any],
    target: BucketMap,
    journal: Path,
    grace_s: float,
    report: Connection,
    tiers: tuple[str, str] | None,
) -> None:
    metadata, blobs = await open_stores(spec)
    try:
        rule = None
        if tiers is not None:
            rule = TierDestinations(target, tiers[0], datetime.fromisoformat(tiers[1]))
        # Small pages, few at a time: a kill lands among many steps.
        mover = BucketMover(
            metadata, blobs, target, journal, grace_s=grace_s, concurrency=2, page_size=4, rule=rule
        )
        report.send("ready")
        report.send((await mover.run()).to_dict())
    finally:
        await blobs.close()
        await metadata.close()


def start_mover(
    spec: dict[str, Any],
    target: BucketMap,
    journal: Path,
    grace_s: float,
    tiers: tuple[str, datetime] | None = None,
) -> tuple[BaseProcess, Connection]:
    """A child moving the library of ``spec`` towards ``target`` (or, with ``tiers`` = (cold
    bucket, idle before), between tiers), returned once it has started."""
    receive, send = _forkserver.Pipe(duplex=False)
    tier_args = None if tiers is None else (tiers[0], tiers[1].isoformat())
    child = _forkserver.Process(
        target=run_mover, args=(spec, target.to_dict(), str(journal), grace_s, send, tier_args), daemon=True
    )
    child.start()
    send.close()
    if not receive.poll(READY_TIMEOUT_S) or receive.recv() != "ready":
        child.kill()
        raise AssertionError(f"the mover did not start (exit code {child.exitcode})")
    return child, receive
