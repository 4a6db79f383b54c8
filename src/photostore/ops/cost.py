"""What ``photostore cost optimize`` recommends, and what each step saves a month: pure arithmetic.

Three kinds, each priced with ``ops/fleet.py``'s ``Pricing`` and ``FleetAssumptions``:

- ``compute``: replicas per service sized to a target CPU utilisation. One process is assumed to
  hold one core, so a replica costs ``server_hour / cores_per_server`` per hour.
- ``storage``: originals on the tier their last access suggests (band 0 hot, band 1 warm, band 2
  cold); variants stay hot. Raw bytes are logical bytes times the tier's redundancy.
- ``cdn``: the share of egress a CDN serves raised from now to a target, each GB it takes over
  billed at ``cdn_gb`` instead of ``egress_gb``.

Every area of the bill the recommendations touch is also priced whole (``Area``), so the total
saving equals the sum of the recommendations' savings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from photostore.domain import AccessBand
from photostore.errors import BadRequest
from photostore.ops.fleet import GB, HOURS_PER_MONTH, FleetAssumptions, Pricing

CORES_PER_PROCESS = 1  # one photostore process runs on one core (its event loop plus short bursts)
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
TIERS = ("hot", "warm", "cold")
TIER_OF_BAND = ("hot", "warm", "cold")  # the tier each access band suits, by band index


@dataclass(frozen=True, slots=True)
class ServiceUtilisation:
    service: str
    replicas: int  # processes answering for the service now
    cpu: float  # mean cores busy per process (photostore_resource_utilization{resource="cpu"})


@dataclass(frozen=True, slots=True)
class StorageProfile:
    bands: tuple[AccessBand, ...]  # originals over all shards, by (band, cold); see TIER_OF_BAND
    variant_bytes: int
    variants: int
    cold_bucket: str | None  # None: tiering is off
    warm_after: timedelta
    cold_after: timedelta


@dataclass(frozen=True, slots=True)
class EgressProfile:
    monthly_gb: float | None  # None: unknown, the CDN recommendation is skipped
    source: str  # where monthly_gb comes from, or why it is unknown
    offload_now: float  # share of egress bytes a CDN serves now
    offload_target: float


@dataclass(frozen=True, slots=True)
class Recommendation:
    kind: str  # compute | storage | cdn
    subject: str  # the service, the tier move, or "egress"
    action: str
    now: str
    recommended: str
    monthly_now: float  # dollars a month of what this recommendation changes, as it is
    monthly_after: float  # the same once it is followed
    figures: dict[str, float] = field(default_factory=dict)  # the numbers behind now/recommended
    needs: str | None = None  # what must be set up first

    @property
    def saving(self) -> float:
        """Dollars a month; negative when following it costs more (an under-provisioned service)."""
        return self.monthly_now - self.monthly_after


@dataclass(frozen=True, slots=True)
class Skipped:
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class Area:
    """The whole monthly cost of one kind, now and once its recommendations are followed."""

    kind: str
    monthly_now: float
    monthly_after: float


@dataclass(frozen=True, slots=True)
class Section:
    recommendations: list[Recommendation] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    area: Area | None = None


@dataclass(frozen=True, slots=True)
class CostReport:
    recommendations: list[Recommendation]
    skipped: list[Skipped]
    areas: list[Area]

    @property
    def monthly_now(self) -> float:
        return sum((area.monthly_now for area in self.areas), 0.0)

    @property
    def monthly_after(self) -> float:
        return sum((area.monthly_after for area in self.areas), 0.0)

    @property
    def monthly_saving(self) -> float:
        return sum((rec.saving for rec in self.recommendations), 0.0)


def combine(*sections: Section) -> CostReport:
    return CostReport(
        recommendations=[rec for section in sections for rec in section.recommendations],
        skipped=[skip for section in sections for skip in section.skipped],
        areas=[section.area for section in sections if section.area is not None],
    )


def check_pricing(pricing: Pricing) -> None:
    missing = [tier for tier in TIERS if tier not in pricing.storage_gb_month]
    if missing:
        raise BadRequest(f"pricing: storage_gb_month has no price for {', '.join(missing)}")
    if pricing.cores_per_server < 1:
        raise BadRequest("pricing: cores_per_server must be at least 1")


def _count(amount: int, noun: str) -> str:
    return f"{amount:,} {noun}" if amount == 1 else f"{amount:,} {noun}s"


# --- compute ----------------------------------------------------------------------------------


def process_month(pricing: Pricing) -> float:
    """Dollars a month of one process: its cores' share of a server."""
    return pricing.server_hour * CORES_PER_PROCESS / pricing.cores_per_server * HOURS_PER_MONTH


def replicas_for(replicas: int, cpu: float, target_cpu: float) -> int:
    """Replicas that carry today's busy cores at ``target_cpu`` each; at least one."""
    needed = replicas * cpu / (target_cpu * CORES_PER_PROCESS)
    return max(1, math.ceil(round(needed, 9)))  # round: 4 x 0.3 / 0.6 must give 2, not 3


def right_size(services: Sequence[ServiceUtilisation], target_cpu: float, pricing: Pricing) -> Section:
    each = process_month(pricing)
    found: list[Recommendation] = []
    for usage in sorted(services, key=lambda u: u.service):
        recommended = replicas_for(usage.replicas, usage.cpu, target_cpu)
        name, now = usage.service, usage.replicas
        if recommended < now:
            action = f"scale {name} down from {now} to {recommended} replicas"
        elif recommended > now:
            action = f"scale {name} up from {now} to {recommended} replicas (under-provisioned: costs more)"
        else:
            action = f"keep {name} at {_count(now, 'replica')}"
        found.append(
            Recommendation(
                kind="compute",
                subject=name,
                action=action,
                now=f"{now} x {usage.cpu:.0%} of a core",
                recommended=f"{recommended} x {now * usage.cpu / recommended:.0%} of a core",
                monthly_now=now * each,
                monthly_after=recommended * each,
                figures={"replicas": now, "cpu": usage.cpu, "recommended_replicas": recommended},
            )
        )
    area = Area("compute", sum(r.monthly_now for r in found), sum(r.monthly_after for r in found))
    return Section(found, [], area)


# --- storage ----------------------------------------------------------------------------------


def storage_month(logical_bytes: float, tier: str, pricing: Pricing, assume: FleetAssumptions) -> float:
    """Dollars a month of ``logical_bytes`` on ``tier``: raw bytes (times redundancy) per GB-month."""
    raw = logical_bytes * assume.tier_redundancy.get(tier, 1.0)
    return raw / GB * pricing.storage_gb_month[tier]


def _current_tier(band: AccessBand) -> str:
    return "cold" if band.cold else "hot"  # photostore has hot buckets and, with tiering, a cold one


def _suited_tier(band: AccessBand) -> str:
    return TIER_OF_BAND[min(band.band, len(TIER_OF_BAND) - 1)]


def _days(span: timedelta) -> str:
    return f"{span / timedelta(days=1):g} days"


def _move_text(source: str, target: str, profile: StorageProfile) -> tuple[str, str | None]:
    """What a move of originals from ``source`` to ``target`` means, and what it needs first."""
    if target == "cold":
        needs = None if profile.cold_bucket else "tiering.cold_bucket set, then `photostore tier run`"
        return f"move originals idle {_days(profile.cold_after)}+ to cold", needs
    if target == "warm":
        idle = f"{_days(profile.warm_after)} to {_days(profile.cold_after)}"
        needs = "a warm (erasure-coded) bucket: tiering moves originals only between hot and cold"
        return f"move originals idle {idle} from {source} to warm", needs
    return f"bring originals read in the last {_days(profile.warm_after)} back to hot", None


def tier_storage(profile: StorageProfile, pricing: Pricing, assume: FleetAssumptions) -> Section:
    variants_now = storage_month(profile.variant_bytes, "hot", pricing, assume)  # variants stay hot
    monthly_now = variants_now + sum(
        storage_month(band.bytes, _current_tier(band), pricing, assume) for band in profile.bands
    )
    moves: dict[tuple[str, str], tuple[int, int]] = {}  # (from, to) -> (photos, bytes)
    for band in profile.bands:
        key = (_current_tier(band), _suited_tier(band))
        if key[0] != key[1] and band.photos:
            photos, size = moves.get(key, (0, 0))
            moves[key] = (photos + band.photos, size + band.bytes)
    found: list[Recommendation] = []
    order = [("hot", "warm"), ("hot", "cold"), ("cold", "warm"), ("cold", "hot")]
    for source, target in sorted(moves, key=order.index):
        photos, size = moves[(source, target)]
        action, needs = _move_text(source, target, profile)
        found.append(
            Recommendation(
                kind="storage",
                subject=f"{source}->{target}",
                action=action,
                now=f"{source}: {_count(photos, 'original')}, {size / GB:,.3f} GB",
                recommended=target,
                monthly_now=storage_month(size, source, pricing, assume),
                monthly_after=storage_month(size, target, pricing, assume),
                figures={"photos": photos, "bytes": size},
                needs=needs,
            )
        )
    skipped = (
        [] if profile.bands or profile.variant_bytes else [Skipped("storage", "no ready originals stored")]
    )
    monthly_after = monthly_now - sum(rec.saving for rec in found)
    return Section(found, skipped, Area("storage", monthly_now, monthly_after))


# --- CDN offload ------------------------------------------------------------------------------


def monthly_egress_gb(request_rate: float, assume: FleetAssumptions) -> float:
    """GB a month served at ``request_rate`` reads per second of ``assume.read_bytes`` each."""
    return request_rate * SECONDS_PER_MONTH * assume.read_bytes / GB


def egress_month(gb: float, offload: float, pricing: Pricing) -> float:
    return gb * ((1 - offload) * pricing.egress_gb + offload * pricing.cdn_gb)


def cdn_offload(egress: EgressProfile, pricing: Pricing) -> Section:
    gb = egress.monthly_gb
    if gb is None:
        return Section(skipped=[Skipped("cdn", f"egress unknown ({egress.source}): CDN offload skipped")])
    now, target = egress.offload_now, egress.offload_target
    monthly_now = egress_month(gb, now, pricing)
    if target <= now:
        reason = f"the CDN already serves {now:.0%} of egress, at or above the {target:.0%} target"
        return Section(skipped=[Skipped("cdn", reason)], area=Area("cdn", monthly_now, monthly_now))
    recommendation = Recommendation(
        kind="cdn",
        subject="egress",
        action=f"serve {target:.0%} of {gb:,.1f} GB/month egress from a CDN",
        now=f"{now:.0%} by CDN",
        recommended=f"{target:.0%} by CDN",
        monthly_now=monthly_now,
        monthly_after=egress_month(gb, target, pricing),
        figures={"egress_gb": gb, "offload_now": now, "offload_target": target},
        needs=None if now > 0 else "cdn.providers configured",
    )
    return Section(
        [recommendation], [], Area("cdn", recommendation.monthly_now, recommendation.monthly_after)
    )
