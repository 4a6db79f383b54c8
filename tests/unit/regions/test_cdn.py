"""CdnManager: coverage by distance, the threshold and its fallback, the closest endpoint, tie order."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from photostore.regions.cdn import CdnManager, CdnProvider
from photostore.regions.geometry import GeoPoint, great_circle_km
from photostore.settings import (
    CdnProviderSettings,
    CdnSettings,
    Location,
    RegionSettings,
    RegionsSettings,
    SigningKey,
)

PORTLAND = GeoPoint(45.52, -122.68)  # us-west-2
DUBLIN = GeoPoint(53.35, -6.26)  # eu-west-1
ASHBURN = GeoPoint(39.04, -77.49)  # us-east-1
TOKYO = GeoPoint(35.68, 139.69)  # ap-northeast-1
LONDON = GeoPoint(51.51, -0.13)
NEW_YORK = GeoPoint(40.71, -74.01)
SYDNEY = GeoPoint(-33.87, 151.21)

REGIONS = RegionsSettings(
    regions=(
        RegionSettings(
            name="us-west-2",
            lat=PORTLAND.lat,
            lon=PORTLAND.lon,
            role="primary",
            api_endpoints=("http://127.0.0.1:1",),
        ),
        RegionSettings(
            name="eu-west-1", lat=DUBLIN.lat, lon=DUBLIN.lon, api_endpoints=("http://127.0.0.1:2",)
        ),
    )
)
# Provider regions that are not photostore regions.
LOCATIONS = {
    "us-east-1": Location(lat=ASHBURN.lat, lon=ASHBURN.lon),
    "ap-northeast-1": Location(lat=TOKYO.lat, lon=TOKYO.lon),
}


def provider(name: str, regions: tuple[str, ...], priority: int = 0) -> CdnProviderSettings:
    endpoints = {region: f"https://{region}.{name}.example/" for region in regions}
    return CdnProviderSettings(name=name, regions=regions, endpoints=endpoints, priority=priority)


def manager(*providers: CdnProviderSettings, **overrides: float) -> CdnManager:
    cdn = CdnSettings(
        providers=providers,
        locations=LOCATIONS,
        signing_keys=(SigningKey(id="k1", secret=SecretStr("x" * 32)),),
        active_key="k1",
        **overrides,
    )
    return CdnManager.from_settings(cdn, REGIONS)


EUROPE = provider("europe", ("eu-west-1",), priority=10)
GLOBAL = provider("global", ("us-west-2", "us-east-1", "ap-northeast-1"), priority=5)
WEST = provider("west", ("us-west-2",), priority=1)


def by_name(cdn: CdnManager, name: str) -> CdnProvider:
    return next(p for p in cdn.providers if p.name == name)


def test_a_client_near_a_region_is_fully_covered() -> None:
    cdn = manager(EUROPE)
    assert 400 < great_circle_km(LONDON, DUBLIN) < 500
    assert cdn.coverage(by_name(cdn, "europe"), LONDON) == 1.0


def test_a_client_across_the_pacific_is_barely_covered() -> None:
    cdn = manager(WEST)
    coverage = cdn.coverage(by_name(cdn, "west"), TOKYO)  # ~7800 km
    assert 0.0 < coverage < 0.05


def test_coverage_falls_linearly_between_full_and_none() -> None:
    cdn = manager(EUROPE)
    europe = by_name(cdn, "europe")
    distance = great_circle_km(NEW_YORK, DUBLIN)  # ~5100 km
    assert 1500 < distance < 8000
    assert cdn.coverage(europe, NEW_YORK) == pytest.approx((8000 - distance) / (8000 - 1500))
    assert cdn.coverage(europe, SYDNEY) == 0.0  # ~17000 km


def test_coverage_counts_the_nearest_region_of_the_provider() -> None:
    cdn = manager(GLOBAL)
    global_ = by_name(cdn, "global")
    assert cdn.coverage(global_, TOKYO) == 1.0
    assert cdn.coverage(global_, NEW_YORK) == 1.0  # Ashburn, not Portland


def test_coverage_follows_the_configured_distances() -> None:
    cdn = manager(EUROPE, full_coverage_km=100.0, no_coverage_km=900.0)
    distance = great_circle_km(LONDON, DUBLIN)
    assert cdn.coverage(by_name(cdn, "europe"), LONDON) == pytest.approx((900 - distance) / 800)


def test_the_highest_priority_provider_that_covers_the_client_serves() -> None:
    cdn = manager(WEST, GLOBAL, EUROPE)
    assert cdn.select_provider(LONDON).name == "europe"
    assert cdn.select_provider(NEW_YORK).name == "global"  # europe covers New York only ~0.44
    assert cdn.select_provider(TOKYO).name == "global"
    assert cdn.select_provider(PORTLAND).name == "global"  # west covers it too, at a lower priority


def test_the_threshold_decides_whether_partial_coverage_is_enough() -> None:
    coverage = manager(EUROPE).coverage(by_name(manager(EUROPE), "europe"), NEW_YORK)
    assert 0.4 < coverage < 0.5
    assert manager(EUROPE, GLOBAL).select_provider(NEW_YORK).name == "global"
    assert manager(EUROPE, GLOBAL, coverage_threshold=0.4).select_provider(NEW_YORK).name == "europe"


def test_coverage_exactly_at_the_threshold_is_enough() -> None:
    cdn = manager(EUROPE, GLOBAL)
    europe = by_name(cdn, "europe")
    exact = manager(EUROPE, GLOBAL, coverage_threshold=cdn.coverage(europe, NEW_YORK))
    assert exact.select_provider(NEW_YORK).name == "europe"


def test_when_no_provider_covers_the_client_the_highest_priority_serves() -> None:
    cdn = manager(WEST, EUROPE)
    assert cdn.select_provider(TOKYO).name == "europe"
    assert cdn.select_provider(SYDNEY).name == "europe"


def test_an_unknown_location_gets_the_highest_priority_provider() -> None:
    assert manager(WEST, GLOBAL, EUROPE).select_provider(None).name == "europe"


def test_equal_priorities_are_ordered_by_name_not_by_config_order() -> None:
    bravo = provider("bravo", ("eu-west-1",), priority=3)
    alpha = provider("alpha", ("eu-west-1",), priority=3)
    cdn = manager(bravo, alpha)
    assert [p.name for p in cdn.providers] == ["alpha", "bravo"]
    assert cdn.select_provider(LONDON).name == "alpha"
    assert cdn.select_provider(None).name == "alpha"


def test_providers_are_tried_highest_priority_first() -> None:
    cdn = manager(WEST, EUROPE, GLOBAL)
    assert [p.name for p in cdn.providers] == ["europe", "global", "west"]


def test_the_endpoint_is_the_chosen_providers_region_closest_to_the_client() -> None:
    cdn = manager(GLOBAL, EUROPE)
    assert cdn.endpoint_for(NEW_YORK) == "https://us-east-1.global.example"
    assert cdn.endpoint_for(TOKYO) == "https://ap-northeast-1.global.example"
    assert cdn.endpoint_for(PORTLAND) == "https://us-west-2.global.example"
    assert cdn.endpoint_for(LONDON) == "https://eu-west-1.europe.example"


def test_the_fallback_provider_serves_from_its_closest_region() -> None:
    cdn = manager(GLOBAL, provider("tiny", ("eu-west-1",), priority=0), coverage_threshold=1.0)
    # Nothing covers Sydney fully: global is the fallback, and Tokyo is its closest region.
    assert cdn.endpoint_for(SYDNEY) == "https://ap-northeast-1.global.example"


def test_without_a_location_the_providers_first_region_serves() -> None:
    cdn = manager(GLOBAL)
    assert cdn.endpoint_for(None) == "https://us-west-2.global.example"


def test_endpoints_lose_any_trailing_slash() -> None:
    settings = CdnProviderSettings(
        name="slashy",
        regions=("eu-west-1",),
        endpoints={"eu-west-1": "https://cdn.example/photos//"},
    )
    assert manager(settings).endpoint_for(LONDON) == "https://cdn.example/photos"


def test_cdn_regions_may_be_placed_by_cdn_locations_only() -> None:
    cdn = CdnManager.from_settings(
        CdnSettings(
            providers=(provider("global", ("us-east-1",)),),
            locations=LOCATIONS,
            signing_keys=(SigningKey(id="k1", secret=SecretStr("x" * 32)),),
            active_key="k1",
        ),
        RegionsSettings(),
    )
    assert cdn.endpoint_for(NEW_YORK) == "https://us-east-1.global.example"


def test_no_providers_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one CDN provider"):
        CdnManager.from_settings(CdnSettings(), REGIONS)


def test_a_region_without_a_location_is_refused() -> None:
    lost = CdnProvider(name="lost", regions=("mars-1",), endpoints={"mars-1": "https://mars.example"})
    with pytest.raises(ValueError, match="mars-1"):
        CdnManager([lost], {"eu-west-1": DUBLIN})


def test_a_region_without_an_endpoint_is_refused() -> None:
    partial = CdnProvider(name="partial", regions=("eu-west-1",), endpoints={})
    with pytest.raises(ValueError, match="no endpoint"):
        CdnManager([partial], {"eu-west-1": DUBLIN})


def test_providers_are_hashable_values() -> None:
    one = CdnProvider(name="a", regions=("eu-west-1",), endpoints={"eu-west-1": "https://a.example"})
    same = CdnProvider(name="a", regions=("eu-west-1",), endpoints={"eu-west-1": "https://a.example"})
    assert one == same
    assert len({one, same}) == 1
