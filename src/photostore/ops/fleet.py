"""From a month's projected load to servers per role, raw storage per tier, and a monthly bill.

Servers come from per-core throughput measured by ``bench/`` (``ops/throughput.json``: uploads,
derivatives and cached reads per core per second), sized for the peak with headroom: a server is
planned to run at ``1 - headroom`` of what it can do. Storage is the logical bytes split over
tiers, each multiplied by its redundancy (3 copies hot, erasure coding warm and cold). The bill is
servers x hours + stored GB-months per tier + egress, with the CDN serving ``cdn_offload`` of the
bytes read at its own price.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from photostore.errors import BadRequest
from photostore.ops.growth import MonthProjection

HOURS_PER_MONTH = 730.0
DEFAULT_THROUGHPUT = Path(__file__).with_name("throughput.json")
DEFAULT_PRICING = Path(__file__).with_name("pricing.json")
GB = 10**9


@dataclass(frozen=True, slots=True)
class Throughput:
    uploads_per_core_s: float
    derivatives_per_core_s: float  # photos per core per second, every variant made
    reads_per_core_s: float


@dataclass(frozen=True, slots=True)
class Pricing:
    server_hour: float
    cores_per_server: int
    storage_gb_month: dict[str, float]
    egress_gb: float
    cdn_gb: float


@dataclass(frozen=True, slots=True)
class FleetAssumptions:
    headroom: float = 0.3  # plan servers at 70 % of their measured capacity
    peak_to_average_uploads: float = 3.0
    tier_shares: dict[str, float] = field(default_factory=lambda: {"hot": 0.2, "warm": 0.5, "cold": 0.3})
    tier_redundancy: dict[str, float] = field(default_factory=lambda: {"hot": 3.0, "warm": 1.5, "cold": 1.25})
    read_bytes: float = 150_000  # a mean read: mostly thumbnails and previews
    average_to_peak_qps: float = 0.4
    cdn_offload: float = 0.9  # share of read bytes the CDN serves


def _load(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise BadRequest(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"{path} must hold a JSON object")
    return data


def _number(data: dict[str, object], key: str, path: Path) -> float:
    value = data.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise BadRequest(f"{path}: {key} must be a number, got {value!r}")
    return float(value)


def load_throughput(path: Path) -> Throughput:
    data = _load(path)
    figures = Throughput(*(_number(data, key, path) for key in Throughput.__dataclass_fields__))
    if min(figures.uploads_per_core_s, figures.derivatives_per_core_s, figures.reads_per_core_s) <= 0:
        raise BadRequest(f"{path}: every throughput must be above 0")
    return figures


def load_pricing(path: Path) -> Pricing:
    data = _load(path)
    storage = data.get("storage_gb_month")
    if not isinstance(storage, dict) or not storage:
        raise BadRequest(f"{path}: storage_gb_month must map each tier to a price per GB-month")
    return Pricing(
        server_hour=_number(data, "server_hour", path),
        cores_per_server=int(_number(data, "cores_per_server", path)),
        storage_gb_month={str(tier): _number(storage, tier, path) for tier in storage},
        egress_gb=_number(data, "egress_gb", path),
        cdn_gb=_number(data, "cdn_gb", path),
    )


@dataclass(frozen=True, slots=True)
class MonthFleet:
    month: int
    servers: dict[str, int]  # role -> servers
    raw_storage_bytes: dict[str, float]  # tier -> bytes on disk
    monthly_cost: dict[str, float]  # compute, storage, egress, cdn, total

    @property
    def total_servers(self) -> int:
        return sum(self.servers.values())


def plan_fleet(
    month: MonthProjection, throughput: Throughput, pricing: Pricing, assume: FleetAssumptions
) -> MonthFleet:
    usable = pricing.cores_per_server * (1 - assume.headroom)
    peak_uploads_s = month.uploads_per_day / 86400 * assume.peak_to_average_uploads
    servers = {
        "upload": math.ceil(peak_uploads_s / (throughput.uploads_per_core_s * usable)),
        "worker": math.ceil(peak_uploads_s / (throughput.derivatives_per_core_s * usable)),
        "api": math.ceil(month.peak_qps / (throughput.reads_per_core_s * usable)),
    }
    raw = {
        tier: month.storage_bytes * share * assume.tier_redundancy.get(tier, 1.0)
        for tier, share in assume.tier_shares.items()
    }
    read_gb = month.peak_qps * assume.average_to_peak_qps * HOURS_PER_MONTH * 3600 * assume.read_bytes / GB
    cost = {
        "compute": sum(servers.values()) * pricing.server_hour * HOURS_PER_MONTH,
        "storage": sum(raw[tier] / GB * pricing.storage_gb_month.get(tier, 0.0) for tier in raw),
        "egress": read_gb * (1 - assume.cdn_offload) * pricing.egress_gb,
        "cdn": read_gb * assume.cdn_offload * pricing.cdn_gb,
    }
    cost["total"] = sum(cost.values())
    return MonthFleet(month.month, servers, raw, cost)
