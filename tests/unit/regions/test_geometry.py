"""great_circle_km against known distances, and GeoPoint refusing places that are not on earth."""

from __future__ import annotations

import math

import pytest

from photostore.regions.geometry import GeoPoint, great_circle_km

LONDON = GeoPoint(51.5074, -0.1278)
PARIS = GeoPoint(48.8566, 2.3522)
DUBLIN = GeoPoint(53.3498, -6.2603)
SINGAPORE = GeoPoint(1.3521, 103.8198)
HALF_CIRCUMFERENCE_KM = 20_015.1


def test_london_to_paris_is_about_344_km() -> None:
    assert great_circle_km(LONDON, PARIS) == pytest.approx(344, rel=0.01)


def test_dublin_to_singapore_is_about_11200_km() -> None:
    assert great_circle_km(DUBLIN, SINGAPORE) == pytest.approx(11_200, rel=0.01)


def test_distance_is_symmetric() -> None:
    assert great_circle_km(DUBLIN, SINGAPORE) == pytest.approx(great_circle_km(SINGAPORE, DUBLIN))


def test_same_point_is_zero() -> None:
    assert great_circle_km(LONDON, LONDON) == 0.0


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (GeoPoint(0, 0), GeoPoint(0, 180)),
        (GeoPoint(40, -74), GeoPoint(-40, 106)),
        (GeoPoint(90, 0), GeoPoint(-90, 0)),
    ],
)
def test_antipodes_are_half_the_circumference_apart(a: GeoPoint, b: GeoPoint) -> None:
    assert great_circle_km(a, b) == pytest.approx(HALF_CIRCUMFERENCE_KM, rel=0.001)


def test_distance_across_the_date_line_takes_the_short_way() -> None:
    # 2 degrees of longitude on the equator, not 358.
    assert great_circle_km(GeoPoint(0, 179), GeoPoint(0, -179)) == pytest.approx(222.4, rel=0.01)


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(90.0001, 0), (-91, 0), (0, 180.5), (0, -181), (math.nan, 0), (0, math.nan), (math.inf, 0)],
)
def test_geopoint_rejects_impossible_coordinates(lat: float, lon: float) -> None:
    with pytest.raises(ValueError, match="not a place on earth"):
        GeoPoint(lat, lon)


@pytest.mark.parametrize(("lat", "lon"), [(90, 180), (-90, -180), (0, 0)])
def test_geopoint_accepts_the_edges_of_the_map(lat: float, lon: float) -> None:
    point = GeoPoint(lat, lon)
    assert (point.lat, point.lon) == (lat, lon)
