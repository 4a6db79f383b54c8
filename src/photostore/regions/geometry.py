"""Points on the globe and the great-circle distance between them (haversine, spherical earth)."""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088  # the IUGG mean radius


@dataclass(frozen=True, slots=True)
class GeoPoint:
    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not -90 <= self.lat <= 90 or not -180 <= self.lon <= 180:
            raise ValueError(f"not a place on earth: lat {self.lat}, lon {self.lon}")


def great_circle_km(a: GeoPoint, b: GeoPoint) -> float:
    """Distance along the earth's surface; accurate to about 0.5 % (the earth is not a sphere)."""
    lat_a, lat_b = math.radians(a.lat), math.radians(b.lat)
    d_lat = lat_b - lat_a
    d_lon = math.radians(b.lon - a.lon)
    h = math.sin(d_lat / 2) ** 2 + math.cos(lat_a) * math.cos(lat_b) * math.sin(d_lon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def unit_vector(point: GeoPoint) -> tuple[float, float, float]:
    """The point on the unit sphere: the nearer of two places has the larger dot product with it."""
    lat, lon = math.radians(point.lat), math.radians(point.lon)
    return (math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat))
