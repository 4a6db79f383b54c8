"""Validation of the regions, geo, edge health and CDN sections of the settings."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import ValidationError

from photostore.errors import ConfigError
from photostore.settings import (
    CdnProviderSettings,
    CdnSettings,
    GeoSettings,
    NetworkLocation,
    RegionSettings,
    RegionsSettings,
    SigningKey,
    load_settings,
)

KEY_A = {"id": "key-a", "secret": "a-secret-of-16-chars-or-more"}
KEY_B = {"id": "key-b", "secret": "b-secret-of-16-chars-or-more"}
REPLICA_DSN = "postgresql://reader:hunter2@replica.eu/photo_shard_{shard}"
PROVIDER = {"name": "fastly", "regions": ["eu-west-1"], "endpoints": {"eu-west-1": "https://eu.cdn.example"}}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings reads PHOTOSTORE_* variables: none of the caller's may leak in."""
    for name in list(os.environ):
        if name.upper().startswith("PHOTOSTORE_"):
            monkeypatch.delenv(name)


def _region(name: str, role: str = "secondary", **extra: Any) -> dict[str, Any]:
    return {"name": name, "lat": 10.0, "lon": 20.0, "role": role, "api_endpoints": ["http://r:1"], **extra}


def _cdn(**extra: Any) -> dict[str, Any]:
    return {"providers": [PROVIDER], "signing_keys": [KEY_A], "active_key": "key-a", **extra}


# --- regions ---------------------------------------------------------------------------------------


def test_a_valid_regions_section_loads() -> None:
    settings = load_settings(
        regions={"local": "eu-west-1", "regions": [_region("us-west-2", "primary"), _region("eu-west-1")]}
    )
    assert settings.regions.local == "eu-west-1"
    assert settings.regions.primary is not None
    assert settings.regions.primary.name == "us-west-2"
    assert settings.regions.named("eu-west-1").role == "secondary"


def test_no_regions_is_a_single_region_deployment() -> None:
    regions = load_settings().regions
    assert regions.regions == ()
    assert regions.local is None
    assert regions.primary is None


def test_region_names_must_be_unique() -> None:
    with pytest.raises(ConfigError, match=r"regions: .*region names must be unique"):
        load_settings(regions={"regions": [_region("eu-west-1", "primary"), _region("eu-west-1")]})


@pytest.mark.parametrize("roles", [("secondary", "secondary"), ("primary", "primary")])
def test_exactly_one_region_is_primary(roles: tuple[str, str]) -> None:
    with pytest.raises(ValidationError, match="exactly one region must have role 'primary'"):
        RegionsSettings.model_validate(
            {"regions": [_region("us-west-2", roles[0]), _region("eu-west-1", roles[1])]}
        )


def test_local_must_name_a_region() -> None:
    with pytest.raises(
        ConfigError, match=r"regions: .*regions\.local 'eu-central-1' is not one of the regions"
    ):
        load_settings(regions={"local": "eu-central-1", "regions": [_region("eu-west-1", "primary")]})


def test_local_without_regions_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"regions\.local"):
        RegionsSettings(local="eu-west-1")


def test_named_raises_key_error_for_an_unknown_region() -> None:
    regions = RegionsSettings.model_validate({"regions": [_region("eu-west-1", "primary")]})
    with pytest.raises(KeyError):
        regions.named("us-west-2")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "EU_West"),
        ("name", "1eu"),
        ("lat", 91),
        ("lon", -181),
        ("api_endpoints", []),
        ("role", "main"),
    ],
)
def test_a_region_refuses_bad_fields(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=field):
        RegionSettings.model_validate({**_region("eu-west-1"), field: value})


def test_a_bad_region_field_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"regions\.regions\.0\.lat"):
        load_settings(regions={"regions": [_region("eu-west-1", "primary", lat=123)]})


# --- geo -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "not-a-cidr", "10.0.0", "2001:db8::/129"])
def test_a_network_location_needs_a_cidr_block(cidr: str) -> None:
    with pytest.raises(ValidationError, match="not a CIDR block"):
        NetworkLocation(cidr=cidr, lat=0, lon=0)


def test_a_network_location_accepts_host_bits_and_ipv6() -> None:
    assert NetworkLocation(cidr="10.20.3.4/16", lat=1, lon=2).cidr == "10.20.3.4/16"
    assert NetworkLocation(cidr="2001:db8::/32", lat=1, lon=2).cidr == "2001:db8::/32"


def test_a_bad_network_in_the_geo_table_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"geo\.networks\.0\.cidr: .*not a CIDR block"):
        load_settings(geo={"networks": [{"cidr": "10.0.0.0/40", "lat": 0, "lon": 0}]})


def test_a_bad_trusted_proxy_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"trusted proxy 'edge\.internal' is not a CIDR block"):
        GeoSettings(trusted_proxies=("10.0.0.0/8", "edge.internal"))


def test_a_bad_trusted_proxy_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"geo\.trusted_proxies: .*'10\.0\.0\.0/99'"):
        load_settings(geo={"trusted_proxies": ["10.0.0.0/99"]})


def test_good_trusted_proxies_load() -> None:
    geo = load_settings(geo={"trusted_proxies": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]}).geo
    assert geo.trusted_proxies == ("10.0.0.0/8", "2001:db8::/32", "192.0.2.1")


def test_geo_cache_entries_cannot_be_negative() -> None:
    with pytest.raises(ValidationError, match="cache_entries"):
        GeoSettings(cache_entries=-1)


@pytest.mark.parametrize(
    ("field", "value"),
    [("fall", 0), ("rise", 0), ("error_rate", 0), ("error_rate", 1.5), ("min_requests", 0)],
)
def test_edge_health_refuses_impossible_thresholds(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"edge\.health\.{field}"):
        load_settings(edge={"health": {field: value}})


# --- CDN -------------------------------------------------------------------------------------------


def test_a_cdn_provider_needs_an_endpoint_for_each_region() -> None:
    with pytest.raises(ValidationError, match=r"has no endpoint for region\(s\) \['us-west-2'\]"):
        CdnProviderSettings.model_validate({**PROVIDER, "regions": ["eu-west-1", "us-west-2"]})


def test_a_cdn_provider_needs_a_region() -> None:
    with pytest.raises(ValidationError, match="regions"):
        CdnProviderSettings.model_validate({**PROVIDER, "regions": []})


def test_a_valid_cdn_section_loads() -> None:
    settings = load_settings(regions={"regions": [_region("eu-west-1", "primary")]}, cdn=_cdn())
    assert settings.cdn.enabled
    assert settings.cdn.active_key == "key-a"


def test_cdn_active_key_must_be_one_of_the_keys() -> None:
    with pytest.raises(ValidationError, match=r"cdn\.active_key 'key-c' is not one of the signing keys"):
        CdnSettings.model_validate({"signing_keys": [KEY_A, KEY_B], "active_key": "key-c"})


def test_cdn_providers_need_an_active_key() -> None:
    with pytest.raises(ValidationError, match=r"cdn\.active_key and cdn\.signing_keys are needed"):
        CdnSettings.model_validate({"providers": [PROVIDER]})
    with pytest.raises(ValidationError, match=r"cdn\.active_key and cdn\.signing_keys are needed"):
        CdnSettings.model_validate({"providers": [PROVIDER], "signing_keys": [KEY_A]})


def test_cdn_refuses_more_than_two_signing_keys() -> None:
    third = {"id": "key-c", "secret": "c-secret-of-16-chars-or-more"}
    with pytest.raises(ValidationError, match="signing_keys"):
        CdnSettings.model_validate({"signing_keys": [KEY_A, KEY_B, third], "active_key": "key-a"})


def test_cdn_signing_key_ids_must_be_unique() -> None:
    twin = {**KEY_B, "id": "key-a"}
    with pytest.raises(ValidationError, match="signing key ids must be unique"):
        CdnSettings.model_validate({"signing_keys": [KEY_A, twin], "active_key": "key-a"})


def test_a_short_signing_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="secret"):
        SigningKey.model_validate({"id": "key-a", "secret": "too-short"})


@pytest.mark.parametrize(("full", "none"), [(1500.0, 1500.0), (3000.0, 2000.0)])
def test_no_coverage_km_must_exceed_full_coverage_km(full: float, none: float) -> None:
    with pytest.raises(ValidationError, match=r"no_coverage_km must be larger than cdn\.full_coverage_km"):
        CdnSettings(full_coverage_km=full, no_coverage_km=none)


def test_a_cdn_error_names_the_cdn_section() -> None:
    with pytest.raises(ConfigError, match=r"\n  cdn: .*cdn\.active_key and cdn\.signing_keys are needed"):
        load_settings(cdn={"providers": [PROVIDER]})


def test_a_cdn_region_that_is_neither_a_region_nor_a_location_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"CDN provider 'fastly': region\(s\) \['eu-west-1'\] are neither"):
        load_settings(cdn=_cdn())


def test_a_cdn_region_may_be_a_photostore_region() -> None:
    settings = load_settings(regions={"regions": [_region("eu-west-1", "primary")]}, cdn=_cdn())
    assert settings.cdn.providers[0].regions == ("eu-west-1",)


def test_a_cdn_region_may_be_placed_in_cdn_locations() -> None:
    settings = load_settings(cdn=_cdn(locations={"eu-west-1": {"lat": 53.35, "lon": -6.26}}))
    assert settings.cdn.locations["eu-west-1"].lat == 53.35


def test_only_the_unplaced_cdn_regions_are_named() -> None:
    provider = {
        "name": "fastly",
        "regions": ["eu-west-1", "sa-east-1", "af-south-1"],
        "endpoints": {
            name: f"https://{name}.cdn.example" for name in ("eu-west-1", "sa-east-1", "af-south-1")
        },
    }
    with pytest.raises(ConfigError, match=r"region\(s\) \['af-south-1', 'sa-east-1'\]"):
        load_settings(
            regions={"regions": [_region("eu-west-1", "primary")]},
            cdn={"providers": [provider], "signing_keys": [KEY_A], "active_key": "key-a"},
        )


@pytest.mark.parametrize(
    ("overrides", "secret"),
    [
        ({"cdn": {"providers": [PROVIDER], "signing_keys": [KEY_A]}}, KEY_A["secret"]),  # cdn section
        ({"cdn": _cdn()}, KEY_A["secret"]),  # root: eu-west-1 is not placed
        (
            {
                "regions": {
                    "regions": [
                        _region("eu-west-1", "primary", replica_dsn_templates=[REPLICA_DSN]),
                        _region("eu-west-1"),
                    ]
                }
            },
            "hunter2",
        ),  # regions section: the names repeat
    ],
)
def test_a_settings_error_does_not_print_secrets(overrides: dict[str, Any], secret: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    assert secret not in str(caught.value)


def test_api_endpoints_are_base_urls_without_a_trailing_slash() -> None:
    region = RegionSettings(**_region("us-west-2", "primary", api_endpoints=["https://api.example.com/"]))
    assert region.api_endpoints == ("https://api.example.com",)
    with pytest.raises(ValidationError, match="http:// or https://"):
        RegionSettings(**_region("us-west-2", "primary", api_endpoints=["api.example.com"]))


S3_ENDPOINT = {"name": "home", "url": "http://127.0.0.1:1", "access_key_id": "a", "secret_access_key": "b"}
REGION_COPY = {"name": "eu-copy", "url": "http://127.0.0.1:2", "access_key_id": "a", "secret_access_key": "b"}


def test_a_region_read_endpoint_must_be_a_configured_s3_endpoint() -> None:
    regions = {"regions": [_region("us-west-2", "primary", s3_read_endpoint="eu-copy")]}
    with pytest.raises(ConfigError, match="s3_read_endpoint 'eu-copy'"):
        load_settings(regions=regions, blobs={"backend": "s3", "s3": {"endpoints": [S3_ENDPOINT]}})


def test_a_process_in_a_region_with_a_bucket_replica_reads_through_it() -> None:
    from photostore.blobs.regional import RegionalReads
    from photostore.blobs.s3 import S3BlobStore
    from photostore.runtime import build_blobs

    blobs = {"backend": "s3", "s3": {"endpoints": [S3_ENDPOINT, REGION_COPY]}}
    regions = [_region("us-west-2", "primary"), _region("eu-west-1", s3_read_endpoint="eu-copy")]
    in_europe = load_settings(regions={"regions": regions, "local": "eu-west-1"}, blobs=blobs)
    assert isinstance(build_blobs(in_europe, ["photos-0"]), RegionalReads)
    at_home = load_settings(regions={"regions": regions, "local": "us-west-2"}, blobs=blobs)
    assert isinstance(build_blobs(at_home, ["photos-0"]), S3BlobStore)
