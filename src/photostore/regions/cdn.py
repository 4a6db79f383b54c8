"""The spec's CDNManager: which CDN provider serves a client, and from which of its regions.

A provider covers a client by the great-circle distance to the provider's nearest region: fully
within ``full_coverage_km``, not at all beyond ``no_coverage_km``, linearly in between. Providers are
tried by priority (highest first, then by name, so the order never depends on the config's order);
the first whose coverage reaches the threshold serves. When none does, or the client's location is
unknown, the highest-priority provider serves anyway: a far edge still beats no CDN.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from photostore.regions.geometry import GeoPoint, great_circle_km
from photostore.settings import CdnSettings, RegionsSettings


@dataclass(frozen=True, slots=True)
class CdnProvider:
    """The spec's CDNProvider: its regions (first preferred), a base URL per region, a priority."""

    name: str
    regions: tuple[str, ...]
    endpoints: dict[str, str] = field(hash=False)  # region name -> base URL
    priority: int = 0  # higher wins


class CdnManager:
    """Picks the provider and endpoint for a client location. Immutable, so safe to share."""

    def __init__(
        self,
        providers: Iterable[CdnProvider],
        locations: Mapping[str, GeoPoint],
        *,
        coverage_threshold: float = 0.8,
        full_coverage_km: float = 1500.0,
        no_coverage_km: float = 8000.0,
    ) -> None:
        # Highest priority first; the name breaks ties so the choice is the same in every process.
        ordered = tuple(sorted(providers, key=lambda p: (-p.priority, p.name)))
        if not ordered:
            raise ValueError("a CdnManager needs at least one CDN provider")
        if no_coverage_km <= full_coverage_km:
            raise ValueError("no_coverage_km must be larger than full_coverage_km")
        if not 0 <= coverage_threshold <= 1:
            raise ValueError(f"coverage_threshold must be within [0, 1], got {coverage_threshold}")
        for provider in ordered:
            _check_provider(provider, locations)
        self._providers = ordered
        self._locations = dict(locations)
        # Endpoints are joined with paths by the caller: one form, no trailing slash.
        self._endpoints = {
            p.name: {region: url.rstrip("/") for region, url in p.endpoints.items()} for p in ordered
        }
        self.coverage_threshold = coverage_threshold
        self.full_coverage_km = full_coverage_km
        self.no_coverage_km = no_coverage_km

    @classmethod
    def from_settings(cls, cdn: CdnSettings, regions: RegionsSettings) -> CdnManager:
        """Providers from ``cdn.providers``; regions are placed by ``regions``, else by ``cdn.locations``."""
        locations = {name: GeoPoint(loc.lat, loc.lon) for name, loc in cdn.locations.items()}
        locations.update({r.name: GeoPoint(r.lat, r.lon) for r in regions.regions})
        providers = [
            CdnProvider(name=p.name, regions=p.regions, endpoints=dict(p.endpoints), priority=p.priority)
            for p in cdn.providers
        ]
        return cls(
            providers,
            locations,
            coverage_threshold=cdn.coverage_threshold,
            full_coverage_km=cdn.full_coverage_km,
            no_coverage_km=cdn.no_coverage_km,
        )

    @property
    def providers(self) -> tuple[CdnProvider, ...]:
        """All providers, in the order they are tried."""
        return self._providers

    def coverage(self, provider: CdnProvider, location: GeoPoint) -> float:
        """How well ``provider`` covers ``location``, in [0, 1], by the distance to its nearest region."""
        _, distance = self._nearest_region(provider, location)
        if distance <= self.full_coverage_km:
            return 1.0
        if distance >= self.no_coverage_km:
            return 0.0
        return (self.no_coverage_km - distance) / (self.no_coverage_km - self.full_coverage_km)

    def select_provider(self, location: GeoPoint | None) -> CdnProvider:
        """The first provider by priority that covers ``location`` enough, else the highest-priority one."""
        if location is not None:
            for provider in self._providers:
                if self.coverage(provider, location) >= self.coverage_threshold:
                    return provider
        return self._providers[0]

    def endpoint_for(self, location: GeoPoint | None) -> str:
        """Base URL (no trailing slash) of the chosen provider in its region closest to ``location``.

        With no location, the provider's first region serves.
        """
        provider = self.select_provider(location)
        if location is None:
            region = provider.regions[0]
        else:
            region, _ = self._nearest_region(provider, location)
        return self._endpoints[provider.name][region]

    def _nearest_region(self, provider: CdnProvider, location: GeoPoint) -> tuple[str, float]:
        # min() keeps the first of equally near regions, so the config's order breaks ties.
        distances = ((r, great_circle_km(self._locations[r], location)) for r in provider.regions)
        return min(distances, key=lambda pair: pair[1])


def _check_provider(provider: CdnProvider, locations: Mapping[str, GeoPoint]) -> None:
    if not provider.regions:
        raise ValueError(f"CDN provider {provider.name!r} has no regions")
    unplaced = sorted(set(provider.regions) - set(locations))
    if unplaced:
        raise ValueError(f"CDN provider {provider.name!r}: no location for region(s) {unplaced}")
    missing = sorted(set(provider.regions) - set(provider.endpoints))
    if missing:
        raise ValueError(f"CDN provider {provider.name!r} has no endpoint for region(s) {missing}")
