"""Where a client is: X-Forwarded-For through trusted proxies, then the CIDR table and GeoLite2."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from photostore.errors import ConfigError
from photostore.regions.geo import GeoLocator, client_address, parse_networks
from photostore.regions.geometry import GeoPoint
from photostore.settings import GeoSettings, NetworkLocation

TRUSTED = parse_networks(("10.0.0.0/8", "2001:db8::/32"))


@pytest.fixture(scope="module")
def locator() -> Iterator[GeoLocator]:
    """The packaged GeoLite2 database, no table."""
    geo = GeoLocator(GeoSettings())
    yield geo
    geo.close()


def _locator(**settings: object) -> GeoLocator:
    return GeoLocator(GeoSettings.model_validate(settings))


def _near(point: GeoPoint | None, lat: float, lon: float, within_deg: float = 0.5) -> bool:
    return point is not None and abs(point.lat - lat) <= within_deg and abs(point.lon - lon) <= within_deg


# --- client_address -------------------------------------------------------------------------------


def test_an_untrusted_peer_is_the_client_whatever_its_forwarded_for_says() -> None:
    assert client_address("203.0.113.9", "1.2.3.4", TRUSTED) == "203.0.113.9"


def test_a_trusted_peer_passes_on_the_address_it_saw() -> None:
    assert client_address("10.0.0.1", "203.0.113.9", TRUSTED) == "203.0.113.9"


def test_forwarded_for_is_read_right_to_left_through_trusted_hops() -> None:
    assert client_address("10.0.0.1", "203.0.113.9, 10.1.1.1, 10.2.2.2", TRUSTED) == "203.0.113.9"


def test_entries_left_of_the_first_untrusted_hop_are_ignored() -> None:
    """The client wrote those itself: 6.6.6.6 is a spoof, 203.0.113.9 is who the proxy saw."""
    assert client_address("10.0.0.1", "6.6.6.6, 203.0.113.9, 10.1.1.1", TRUSTED) == "203.0.113.9"


def test_when_every_hop_is_trusted_the_leftmost_is_the_client() -> None:
    assert client_address("10.0.0.1", "10.9.9.9, 10.1.1.1", TRUSTED) == "10.9.9.9"


def test_garbage_as_the_last_entry_leaves_the_peer_as_all_we_know() -> None:
    assert client_address("10.0.0.1", "203.0.113.9, not-an-ip", TRUSTED) == "10.0.0.1"


def test_garbage_after_a_trusted_hop_stops_at_that_hop() -> None:
    assert client_address("10.0.0.1", "203.0.113.9, unknown, 10.1.1.1", TRUSTED) == "10.1.1.1"


def test_garbage_left_of_the_client_does_not_matter() -> None:
    assert client_address("10.0.0.1", "<script>, 203.0.113.9", TRUSTED) == "203.0.113.9"


def test_spaces_around_entries_are_ignored() -> None:
    assert client_address("10.0.0.1", "   203.0.113.9  ,\t10.1.1.1 ", TRUSTED) == "203.0.113.9"


def test_ipv6_hops_and_peer_are_understood_and_normalised() -> None:
    assert client_address("2001:db8::1", "2A00:1450:0:0::5, 2001:db8::7", TRUSTED) == "2a00:1450::5"


def test_an_untrusted_ipv6_peer_is_the_client() -> None:
    assert client_address("2a00:1450::5", "203.0.113.9", TRUSTED) == "2a00:1450::5"


@pytest.mark.parametrize("forwarded_for", [None, ""])
def test_no_forwarded_for_gives_the_peer(forwarded_for: str | None) -> None:
    assert client_address("10.0.0.1", forwarded_for, TRUSTED) == "10.0.0.1"


def test_nothing_is_trusted_by_default() -> None:
    assert client_address("10.0.0.1", "203.0.113.9", ()) == "10.0.0.1"


@pytest.mark.parametrize("peer", [None, "", "not-an-ip", "unix:/tmp/socket"])
def test_no_usable_peer_gives_no_address(peer: str | None) -> None:
    assert client_address(peer, "203.0.113.9", TRUSTED) is None


# --- parse_networks --------------------------------------------------------------------------------


def test_parse_networks_accepts_v4_v6_and_host_bits() -> None:
    networks = parse_networks(("10.0.0.0/8", "2001:db8::/32", "192.168.1.7/24"))
    assert networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("192.168.1.0/24"),
    )


def test_parse_networks_refuses_a_bad_block() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        parse_networks(("10.0.0.0/33",))


# --- GeoLocator: the CIDR table --------------------------------------------------------------------


@pytest.mark.parametrize("wide_first", [True, False])
def test_the_longest_prefix_in_the_table_wins(wide_first: bool) -> None:
    wide = NetworkLocation(cidr="81.0.0.0/8", lat=10, lon=10)
    narrow = NetworkLocation(cidr="81.2.69.0/24", lat=20, lon=20)
    geo = GeoLocator(GeoSettings(networks=(wide, narrow) if wide_first else (narrow, wide)))
    try:
        assert geo.locate("81.2.69.142") == GeoPoint(20, 20)
        assert geo.locate("81.9.9.9") == GeoPoint(10, 10)
    finally:
        geo.close()


def test_the_table_wins_over_the_database() -> None:
    geo = GeoLocator(GeoSettings(networks=(NetworkLocation(cidr="8.8.8.0/24", lat=-33.9, lon=151.2),)))
    try:
        assert geo.locate("8.8.8.8") == GeoPoint(-33.9, 151.2)
    finally:
        geo.close()


def test_the_table_places_private_networks() -> None:
    office = NetworkLocation(cidr="10.20.0.0/16", lat=53.35, lon=-6.26, label="dublin office")
    v6 = NetworkLocation(cidr="fd00:1::/32", lat=1.29, lon=103.85)
    geo = GeoLocator(GeoSettings(networks=(office, v6)))
    try:
        assert geo.locate("10.20.3.4") == GeoPoint(53.35, -6.26)
        assert geo.locate("fd00:1::9") == GeoPoint(1.29, 103.85)
        assert geo.locate("10.21.0.1") is None  # private, and outside the table
    finally:
        geo.close()


@pytest.mark.parametrize(
    "address", ["10.0.0.1", "172.16.5.5", "192.168.1.1", "127.0.0.1", "::1", "fe80::1", "fd00::1"]
)
def test_private_and_loopback_addresses_outside_the_table_are_nowhere(
    locator: GeoLocator, address: str
) -> None:
    assert locator.locate(address) is None


# --- GeoLocator: the packaged database -------------------------------------------------------------


def test_google_dns_is_in_the_united_states(locator: GeoLocator) -> None:
    assert _near(locator.locate("8.8.8.8"), 37.75, -97.8)


def test_a_london_address_is_in_london(locator: GeoLocator) -> None:
    assert _near(locator.locate("81.2.69.142"), 51.5, -0.23)


def test_a_tokyo_address_is_in_tokyo(locator: GeoLocator) -> None:
    assert _near(locator.locate("202.12.27.33"), 35.69, 139.69)


def test_an_ipv6_address_is_placed(locator: GeoLocator) -> None:
    point = locator.locate("2001:4860:4860::8888")
    assert point is not None
    assert 24 < point.lat < 50  # the contiguous United States
    assert -125 < point.lon < -66


def test_surrounding_spaces_do_not_matter(locator: GeoLocator) -> None:
    assert locator.locate(" 8.8.8.8 ") == locator.locate("8.8.8.8")


@pytest.mark.parametrize("address", [None, "", "garbage", "999.1.1.1", "1.2.3", "240.0.0.1"])
def test_an_address_nobody_knows_is_nowhere(locator: GeoLocator, address: str | None) -> None:
    assert locator.locate(address) is None


def test_database_point_is_the_bare_lookup_without_the_table() -> None:
    geo = GeoLocator(GeoSettings(networks=(NetworkLocation(cidr="8.8.8.0/24", lat=0, lon=0),)))
    try:
        assert geo.locate("8.8.8.8") == GeoPoint(0, 0)
        assert _near(geo.database_point("8.8.8.8"), 37.75, -97.8)
        assert _near(geo.database_point(ipaddress.ip_address("81.2.69.142")), 51.5, -0.23)
        assert geo.database_point("10.0.0.1") is None
    finally:
        geo.close()


# --- GeoLocator: the cache -------------------------------------------------------------------------


def _table_locator(cache_entries: int) -> GeoLocator:
    networks = tuple(NetworkLocation(cidr=f"10.{n}.0.0/16", lat=n, lon=-n) for n in range(1, 4))
    return GeoLocator(GeoSettings(networks=networks, cache_entries=cache_entries))


@pytest.mark.parametrize("cache_entries", [2, 0])
def test_results_stay_right_while_the_cache_evicts(cache_entries: int) -> None:
    """With room for two, every third address evicts one: answers must never mix up."""
    geo = _table_locator(cache_entries)
    expected = {
        "10.1.0.1": GeoPoint(1, -1),
        "10.2.0.1": GeoPoint(2, -2),
        "10.3.0.1": GeoPoint(3, -3),
        "10.9.0.1": None,
    }
    order = ["10.1.0.1", "10.2.0.1", "10.3.0.1", "10.1.0.1", "10.9.0.1", "10.2.0.1", "10.2.0.1"]
    try:
        for address in order * 3:
            assert geo.locate(address) == expected[address], address
    finally:
        geo.close()


def test_a_cache_of_two_still_answers_for_database_addresses() -> None:
    geo = _locator(cache_entries=2)
    try:
        for _ in range(2):
            assert _near(geo.locate("8.8.8.8"), 37.75, -97.8)
            assert _near(geo.locate("81.2.69.142"), 51.5, -0.23)
            assert _near(geo.locate("202.12.27.33"), 35.69, 139.69)  # evicts 8.8.8.8
            assert geo.locate("10.0.0.1") is None
    finally:
        geo.close()


# --- GeoLocator: the database file -----------------------------------------------------------------


def test_a_missing_database_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        GeoLocator(GeoSettings(database=tmp_path / "nope.mmdb"))


def test_a_folder_as_database_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        GeoLocator(GeoSettings(database=tmp_path))


@pytest.mark.parametrize("content", [b"this is not a MaxMind database\n", b""])
def test_a_file_that_is_not_a_maxmind_database_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.mmdb"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="not a MaxMind database"):
        GeoLocator(GeoSettings(database=path))


def test_a_dual_stack_peer_is_matched_as_the_ipv4_address_it_is() -> None:
    trusted = parse_networks(("10.0.0.0/8",))
    assert client_address("::ffff:10.0.0.5", "81.2.69.142", trusted) == "81.2.69.142"
    assert client_address("::ffff:81.2.69.142", None, trusted) == "81.2.69.142"
