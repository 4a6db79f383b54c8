"""RegionRouter: the nearest healthy region, failover when one is down, and clients nobody can place."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from photostore.errors import NoHealthyRegion
from photostore.regions.geo import GeoLocator
from photostore.regions.geometry import GeoPoint, great_circle_km
from photostore.regions.router import RegionRouter
from photostore.settings import GeoSettings, HealthSettings, RegionSettings, RegionsSettings

US_WEST = RegionSettings(
    name="us-west-2", lat=45.52, lon=-122.68, role="primary", api_endpoints=("http://127.0.0.1:1",)
)
EU_WEST = RegionSettings(name="eu-west-1", lat=53.35, lon=-6.26, api_endpoints=("http://127.0.0.1:2",))
AP_SOUTHEAST = RegionSettings(
    name="ap-southeast-1", lat=1.29, lon=103.85, api_endpoints=("http://127.0.0.1:3",)
)
REGIONS = RegionsSettings(regions=(US_WEST, EU_WEST, AP_SOUTHEAST))
HEALTH = HealthSettings()

US_CLIENT = "8.8.8.8"  # Kansas in GeoLite2
LONDON_CLIENT = "81.2.69.142"
TOKYO_CLIENT = "202.12.27.33"


@pytest.fixture(scope="module")
def locator() -> Iterator[GeoLocator]:
    geo = GeoLocator(GeoSettings())
    yield geo
    geo.close()


@pytest.fixture
def router(locator: GeoLocator) -> RegionRouter:
    return RegionRouter(REGIONS, locator, HEALTH)


def _take_down(router: RegionRouter, name: str) -> None:
    for endpoint in router.by_name(name).health.endpoints:
        endpoint.unreachable("connection refused")


@pytest.mark.parametrize(
    ("address", "region"),
    [(US_CLIENT, "us-west-2"), (LONDON_CLIENT, "eu-west-1"), (TOKYO_CLIENT, "ap-southeast-1")],
)
def test_a_client_goes_to_its_nearest_region(router: RegionRouter, address: str, region: str) -> None:
    assert router.route_address(address).region.name == region


@pytest.mark.parametrize(
    ("point", "region"),
    [
        (GeoPoint(37.77, -122.42), "us-west-2"),  # San Francisco
        (GeoPoint(40.71, -74.01), "us-west-2"),  # New York: 3,900 km to Portland, 5,100 to Dublin
        (GeoPoint(64.15, -21.94), "eu-west-1"),  # Reykjavik
        (GeoPoint(-1.29, 36.82), "eu-west-1"),  # Nairobi: 7,260 km to Dublin, 7,460 to Singapore
        (GeoPoint(-33.87, 151.21), "ap-southeast-1"),  # Sydney
        (GeoPoint(28.61, 77.21), "ap-southeast-1"),  # Delhi
        (GeoPoint(21.31, -157.86), "us-west-2"),  # Honolulu, across the date line from Singapore
    ],
)
def test_route_picks_the_nearest_region_for_a_point(
    router: RegionRouter, point: GeoPoint, region: str
) -> None:
    route = router.route(point)
    assert route.region.name == region
    assert route.location == point


def test_route_distance_is_the_great_circle_to_the_region(router: RegionRouter) -> None:
    route = router.route_address(LONDON_CLIENT)
    assert route.location is not None
    assert 350 < route.distance_km < 600  # London to Dublin
    assert route.distance_km == pytest.approx(great_circle_km(route.location, route.region.point))


def test_with_eu_down_london_goes_to_the_us_and_tokyo_stays_in_asia(router: RegionRouter) -> None:
    _take_down(router, "eu-west-1")
    assert router.route_address(LONDON_CLIENT).region.name == "us-west-2"
    assert router.route_address(TOKYO_CLIENT).region.name == "ap-southeast-1"


def test_a_region_comes_back_into_routing_when_its_endpoint_rises(router: RegionRouter) -> None:
    _take_down(router, "eu-west-1")
    assert router.route_address(LONDON_CLIENT).region.name == "us-west-2"
    for endpoint in router.by_name("eu-west-1").health.endpoints:
        for _ in range(HEALTH.rise):
            endpoint.probe_ok(0.01)
    assert router.route_address(LONDON_CLIENT).region.name == "eu-west-1"


def test_a_region_with_one_endpoint_left_still_takes_traffic(locator: GeoLocator) -> None:
    eu = EU_WEST.model_copy(update={"api_endpoints": ("http://127.0.0.1:2", "http://127.0.0.1:4")})
    router = RegionRouter(RegionsSettings(regions=(US_WEST, eu, AP_SOUTHEAST)), locator, HEALTH)
    router.by_name("eu-west-1").health.endpoints[0].unreachable("connection refused")
    route = router.route_address(LONDON_CLIENT)
    assert route.region.name == "eu-west-1"
    assert route.region.health.pick() is route.region.health.endpoints[1]


def test_excluded_regions_are_skipped(router: RegionRouter) -> None:
    assert router.route_address(LONDON_CLIENT, exclude={"eu-west-1"}).region.name == "us-west-2"
    assert router.route_address(LONDON_CLIENT, exclude=("eu-west-1", "us-west-2")).region.name == (
        "ap-southeast-1"
    )


def test_every_region_down_is_no_healthy_region(router: RegionRouter) -> None:
    for region in router.regions:
        _take_down(router, region.name)
    with pytest.raises(NoHealthyRegion, match="unreachable: connection refused") as caught:
        router.route_address(LONDON_CLIENT)
    assert caught.value.status == 503
    assert caught.value.code == "no_healthy_region"


def test_every_region_excluded_is_no_healthy_region(router: RegionRouter) -> None:
    with pytest.raises(NoHealthyRegion):
        router.route(GeoPoint(0, 0), exclude=[region.name for region in router.regions])


def test_the_last_region_up_takes_everyone(router: RegionRouter) -> None:
    _take_down(router, "us-west-2")
    _take_down(router, "eu-west-1")
    for address in (US_CLIENT, LONDON_CLIENT, TOKYO_CLIENT, None):
        assert router.route_address(address).region.name == "ap-southeast-1"


@pytest.mark.parametrize("address", [None, "10.0.0.1", "garbage"])
def test_a_client_nobody_can_place_goes_to_the_primary(router: RegionRouter, address: str | None) -> None:
    route = router.route_address(address)
    assert route.region.name == "us-west-2"
    assert route.region.is_primary
    assert route.location is None
    assert route.distance_km == 0.0


@pytest.mark.parametrize("address", [None, "10.0.0.1"])
def test_with_the_primary_down_an_unplaced_client_goes_nearest_the_primary(
    router: RegionRouter, address: str | None
) -> None:
    _take_down(router, "us-west-2")
    route = router.route_address(address)
    assert route.region.name == "eu-west-1"  # 7,500 km from Portland; Singapore is 13,100
    assert route.location is None
    assert route.distance_km == pytest.approx(
        great_circle_km(GeoPoint(45.52, -122.68), GeoPoint(53.35, -6.26))
    )


def test_the_primary_is_nearest_the_primary_even_when_it_is_not_listed_first(locator: GeoLocator) -> None:
    eu_primary = EU_WEST.model_copy(update={"role": "primary"})
    us_secondary = US_WEST.model_copy(update={"role": "secondary"})
    router = RegionRouter(RegionsSettings(regions=(us_secondary, AP_SOUTHEAST, eu_primary)), locator, HEALTH)
    assert router.route(None).region.name == "eu-west-1"


def test_a_router_needs_regions(locator: GeoLocator) -> None:
    with pytest.raises(ValueError, match=r"regions\.regions"):
        RegionRouter(RegionsSettings(), locator, HEALTH)


def test_by_name_finds_a_region_or_raises_key_error(router: RegionRouter) -> None:
    region = router.by_name("ap-southeast-1")
    assert region.name == "ap-southeast-1"
    assert region.point == GeoPoint(1.29, 103.85)
    assert not region.is_primary
    assert region.health.endpoints[0].url == "http://127.0.0.1:3"
    with pytest.raises(KeyError):
        router.by_name("mars-north-1")


def test_regions_keep_the_settings_order(router: RegionRouter) -> None:
    assert [region.name for region in router.regions] == ["us-west-2", "eu-west-1", "ap-southeast-1"]
