"""The spec's RegionRouter: the nearest healthy region to a client, by great-circle distance."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from photostore.errors import NoHealthyRegion
from photostore.regions.geo import GeoLocator
from photostore.regions.geometry import GeoPoint, great_circle_km, unit_vector
from photostore.regions.health import EndpointHealth, RegionHealth
from photostore.settings import HealthSettings, RegionSettings, RegionsSettings


@dataclass(frozen=True, slots=True)
class Region:
    """A region as the router sees it: settings, place and health."""

    settings: RegionSettings
    point: GeoPoint
    health: RegionHealth
    vector: tuple[float, float, float]  # on the unit sphere, to compare distances without trigonometry

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def is_primary(self) -> bool:
        return self.settings.role == "primary"


@dataclass(frozen=True, slots=True)
class Route:
    region: Region
    location: GeoPoint | None  # None: the client could not be placed, so it went to the primary's side
    distance_km: float


class RegionRouter:
    def __init__(self, regions: RegionsSettings, locator: GeoLocator, health: HealthSettings) -> None:
        if not regions.regions:
            raise ValueError("the router needs regions: set regions.regions in the settings")
        self.locator = locator
        self.regions = tuple(
            Region(
                settings=region,
                point=GeoPoint(region.lat, region.lon),
                health=RegionHealth(
                    region.name, (EndpointHealth(url, health) for url in region.api_endpoints)
                ),
                vector=unit_vector(GeoPoint(region.lat, region.lon)),
            )
            for region in regions.regions
        )
        primary = next(region for region in self.regions if region.is_primary)
        # A client nobody can place is treated as standing at the primary: it gets the primary
        # while that is up, then whichever region is nearest to it.
        self._unplaced_point = primary.point

    def route_address(self, address: str | None, exclude: Collection[str] = ()) -> Route:
        return self.route(self.locator.locate(address), exclude)

    def route(self, location: GeoPoint | None, exclude: Collection[str] = ()) -> Route:
        """The nearest healthy region not in ``exclude``; NoHealthyRegion when there is none."""
        origin = location or self._unplaced_point
        x, y, z = unit_vector(origin)
        best: Region | None = None
        best_dot = -2.0
        for region in self.regions:
            if region.name in exclude or not region.health.healthy:
                continue
            rx, ry, rz = region.vector
            dot = x * rx + y * ry + z * rz  # the cosine of the angle between them: larger is nearer
            if dot > best_dot:
                best, best_dot = region, dot
        if best is None:
            down = ", ".join(f"{r.name} ({r.health.status().reason})" for r in self.regions)
            raise NoHealthyRegion(f"every region is down or was tried: {down}")
        return Route(best, location, great_circle_km(origin, best.point))

    def by_name(self, name: str) -> Region:
        for region in self.regions:
            if region.name == name:
                return region
        raise KeyError(name)
