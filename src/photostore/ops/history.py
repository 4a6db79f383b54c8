"""The service's own history for the growth fit: one row per ``photostore capacity record``.

Each row is what ``read_history`` fits: timestamp, users, storage (bytes of live originals, from
every shard) and requests (the api's request rate over a short window, read from the processes'
``/metrics`` or Prometheus). Run it on a schedule (daily, at the daily peak for a peak series);
``photostore capacity plan --history FILE`` then grows from the deployment's own rates.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from photostore.errors import BadRequest
from photostore.metadata.port import MetadataStore
from photostore.ops.cost_inputs import read_utilisation
from photostore.settings import AutoscaleSettings

HEADER = ("timestamp", "users", "storage", "requests")


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    timestamp: datetime
    users: int
    storage_bytes: int
    requests_per_s: float


async def measure(
    metadata: MetadataStore, autoscale: AutoscaleSettings, client: httpx.AsyncClient, rate_window_s: float
) -> HistoryPoint:
    """Users and bytes from every shard now, and the api's request rate over ``rate_window_s``."""
    stats = await metadata.shard_stats()
    usage = await read_utilisation(autoscale, client, rate_window_s, want_rate=True)
    if usage.read_rate is None:
        raise BadRequest(
            f"no request rate measured ({usage.source}): start the api or point autoscale.service_urls "
            "(or autoscale.source = prometheus) at it, or pass --requests"
        )
    return HistoryPoint(
        datetime.now(UTC), sum(s.users for s in stats), sum(s.bytes for s in stats), usage.read_rate
    )


def append(path: Path, point: HistoryPoint) -> None:
    """Add ``point`` to the CSV at ``path``, writing the header when the file is new."""
    if point.users <= 0 or point.storage_bytes <= 0 or point.requests_per_s <= 0:
        raise BadRequest(
            f"users, storage and requests must be above 0 to fit growth on them (got {point.users} users, "
            f"{point.storage_bytes} bytes, {point.requests_per_s:g} requests/s)"
        )
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(HEADER)
        writer.writerow(
            [point.timestamp.isoformat(), point.users, point.storage_bytes, f"{point.requests_per_s:.6g}"]
        )
