"""Access tracking: what recording reads of originals costs, batched, beside one UPDATE per read.

The peer is the naive design: every read of an original writes its photo's ``last_accessed_at``
with one UPDATE (one transaction). photostore notes a read in memory (``original_read``) and
writes what it noted as one batch per shard per flush. Both run on the same embedded SQLite shards
over the same photos, and both write every photo's time (no read falls within the resolution), so
the figure is the cost of the writes themselves. Reported as reads recorded per second and the
ratio batched / per-read, plus the in-memory cost of ``original_read`` per call.

    .venv/bin/python -m bench.access [--photos 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.report import write_result
from photostore.pipeline.access import AccessTracker
from photostore.placement.bucket_map import BucketMap
from tests.support.photo_library import Library, embedded_spec, open_library, seed_library

MAP = BucketMap.create(1, prefix="bench-")


async def per_read(library: Library, ids: list[str]) -> float:
    """Reads recorded per second, one UPDATE per read."""
    started = time.perf_counter()
    for text in ids:
        await library.metadata.record_accesses({uuid.UUID(text): datetime.now(UTC)})
    return len(ids) / (time.perf_counter() - started)


async def batched(library: Library, ids: list[str]) -> float:
    """Reads recorded per second: noted in memory, then one flush."""
    tracker = AccessTracker(library.metadata, resolution_s=3600, flush_s=3600)
    started = time.perf_counter()
    for text in ids:
        tracker.original_read(text)
    await tracker.flush()
    return len(ids) / (time.perf_counter() - started)


def note_ns(library: Library, ids: list[str], repeat: int = 20) -> tuple[float, float]:
    """ns per ``original_read`` call (nothing flushed): a first read of each photo, and a repeat
    within the resolution."""
    tracker = AccessTracker(library.metadata, resolution_s=3600, flush_s=3600)
    started = time.perf_counter_ns()
    for text in ids:
        tracker.original_read(text)
    first = (time.perf_counter_ns() - started) / len(ids)
    started = time.perf_counter_ns()
    for _ in range(repeat):
        for text in ids:
            tracker.original_read(text)
    again = (time.perf_counter_ns() - started) / (len(ids) * repeat)
    return first, again


async def measure(photos: int, runs: int) -> str:
    rows: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        async with open_library(embedded_spec(Path(folder), MAP.buckets), MAP) as library:
            seeded = await seed_library(library, users=20, photos_per_user=photos // 20)
            ids = [str(photo.id) for photo, _ in seeded]
            for _ in range(runs):
                rows.append((await per_read(library, ids), await batched(library, ids)))
            first, again = note_ns(library, ids)
    naive = statistics.median(r[0] for r in rows)
    ours = statistics.median(r[1] for r in rows)
    ratios = [r[1] / r[0] for r in rows]
    return "\n".join(
        [
            f"access tracking, {len(ids)} photos on 2 SQLite shards, median of {runs} runs",
            "",
            "| recording reads of originals | reads recorded/s |",
            "|---|---:|",
            f"| one UPDATE per read (peer) | {naive:,.0f} |",
            f"| photostore: noted, one batch per shard | {ours:,.0f} |",
            f"| ratio photostore / peer | {statistics.median(ratios):.1f} "
            f"(range {min(ratios):.1f}-{max(ratios):.1f}) |",
            "",
            f"`original_read` in memory: {first:.0f} ns for a first read, {again:.0f} ns for a repeat "
            "within the resolution",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    table = asyncio.run(measure(args.photos, args.runs))
    print(table)
    write_result("access", table)


if __name__ == "__main__":
    main()
