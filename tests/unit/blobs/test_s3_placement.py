"""Bucket placement from settings: which endpoint holds which bucket, and the ConfigErrors."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from photostore.blobs.buckets import place_buckets
from photostore.blobs.s3 import S3BlobStore
from photostore.errors import BackendUnavailable, ConfigError
from photostore.settings import S3BucketSettings, S3EndpointSettings, S3Settings


def _endpoint(name: str, region: str = "us-east-1") -> S3EndpointSettings:
    return S3EndpointSettings(
        name=name,
        url=f"http://{name}.example:8333",
        region=region,
        access_key_id="k",
        secret_access_key=SecretStr("s"),
        allow_http=True,
    )


def test_without_configured_buckets_every_bucket_lives_on_the_first_endpoint() -> None:
    settings = S3Settings(endpoints=(_endpoint("a", "eu-west-1"), _endpoint("b")))
    placed = place_buckets(settings, ["photos-0", "photos-1"])
    assert [(p.name, p.endpoint.name, p.region, p.capacity) for p in placed] == [
        ("photos-0", "a", "eu-west-1", 0),
        ("photos-1", "a", "eu-west-1", 0),
    ]
    assert placed[0].url == "http://a.example:8333/photos-0"


def test_configured_buckets_go_to_their_endpoint_in_placement_order() -> None:
    settings = S3Settings(
        endpoints=(_endpoint("a", "eu-west-1"), _endpoint("b")),
        buckets=(
            S3BucketSettings(name="photos-1", endpoint="a", capacity_bytes=100),
            S3BucketSettings(name="photos-0", endpoint="b", region="ap-south-1"),
        ),
    )
    placed = place_buckets(settings, ["photos-0", "photos-1"])
    assert [(p.name, p.endpoint.name, p.region, p.capacity) for p in placed] == [
        ("photos-0", "b", "ap-south-1", 0),
        ("photos-1", "a", "eu-west-1", 100),
    ]


@pytest.mark.parametrize(
    ("settings", "names", "message"),
    [
        (S3Settings(), ["photos-0"], "endpoints is empty"),
        (S3Settings(endpoints=(_endpoint("a"), _endpoint("a"))), ["photos-0"], "duplicate endpoint"),
        (S3Settings(endpoints=(_endpoint("a"),)), [], "at least one bucket"),
        (S3Settings(endpoints=(_endpoint("a"),)), ["photos-0", "photos-0"], "duplicate bucket"),
        (S3Settings(endpoints=(_endpoint("a"),)), ["Photos_0"], "invalid S3 bucket name"),
        (
            S3Settings(
                endpoints=(_endpoint("a"),), buckets=(S3BucketSettings(name="photos-0", endpoint="a"),)
            ),
            ["photos-0", "photos-1"],
            r"missing \['photos-1'\]",
        ),
        (
            S3Settings(
                endpoints=(_endpoint("a"),),
                buckets=(
                    S3BucketSettings(name="photos-0", endpoint="a"),
                    S3BucketSettings(name="photos-9", endpoint="a"),
                ),
            ),
            ["photos-0"],
            r"not in the placement \['photos-9'\]",
        ),
        (
            S3Settings(
                endpoints=(_endpoint("a"),), buckets=(S3BucketSettings(name="photos-0", endpoint="b"),)
            ),
            ["photos-0"],
            "names endpoint 'b'",
        ),
    ],
)
def test_mismatches_are_config_errors(settings: S3Settings, names: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        place_buckets(settings, names)


async def test_from_settings_keeps_the_order_and_refuses_use_before_start() -> None:
    store = S3BlobStore.from_settings(S3Settings(endpoints=(_endpoint("a"),)), ["photos-1", "photos-0"])
    assert store.buckets() == ["photos-1", "photos-0"]
    with pytest.raises(BackendUnavailable, match="not started"):
        await store.get("photos-1", "k")
    with pytest.raises(ConfigError, match="unknown bucket"):
        await store.get("photos-9", "k")
