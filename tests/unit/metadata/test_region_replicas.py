"""The read replicas of this process's region replace each shard's own replicas."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import URL

from photostore.errors import ConfigError
from photostore.metadata.factory import region_replica_templates, shard_targets
from photostore.settings import PostgresSettings, PostgresShardSettings, load_settings

PRIMARY_TEMPLATE = "postgresql://app:pw@primary.us/photo_shard_{shard}"
EU_REPLICAS = (
    "postgresql://reader:pw@replica-a.eu/photo_shard_{shard}",
    "postgres://reader:pw@replica-b.eu:5433/photo_shard_{shard}",
)
AP_REPLICAS = ("postgresql://reader:pw@replica.ap/photo_shard_{shard}",)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings reads PHOTOSTORE_* variables: none of the caller's may leak in."""
    for name in list(os.environ):
        if name.upper().startswith("PHOTOSTORE_"):
            monkeypatch.delenv(name)


def _text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def _regions(local: str | None) -> dict[str, Any]:
    def region(name: str, lat: float, lon: float, role: str, replicas: tuple[str, ...]) -> dict[str, Any]:
        return {
            "name": name,
            "lat": lat,
            "lon": lon,
            "role": role,
            "api_endpoints": [f"http://{name}.example"],
            "replica_dsn_templates": list(replicas),
        }

    return {
        "local": local,
        "regions": [
            region("us-west-2", 45.52, -122.68, "primary", ()),
            region("eu-west-1", 53.35, -6.26, "secondary", EU_REPLICAS),
            region("ap-southeast-1", 1.29, 103.85, "secondary", AP_REPLICAS),
        ],
    }


def _pg(**extra: Any) -> PostgresSettings:
    return PostgresSettings(dsn_template=SecretStr(PRIMARY_TEMPLATE), **extra)


# --- shard_targets ---------------------------------------------------------------------------------


def test_region_templates_become_every_shards_replicas_formatted_per_shard() -> None:
    targets = shard_targets(_pg(), [0, 1, 2], EU_REPLICAS)
    assert sorted(targets) == [0, 1, 2]
    for shard_id, target in targets.items():
        assert _text(target.primary) == f"postgresql+asyncpg://app:pw@primary.us/photo_shard_{shard_id}"
        assert [_text(url) for url in target.replicas] == [
            f"postgresql+asyncpg://reader:pw@replica-a.eu/photo_shard_{shard_id}",
            f"postgresql+asyncpg://reader:pw@replica-b.eu:5433/photo_shard_{shard_id}",
        ]


def test_region_templates_replace_the_replicas_a_shard_entry_lists() -> None:
    own = PostgresShardSettings(
        id=1,
        dsn=SecretStr("postgresql://app:pw@own-primary/photo_shard_1"),
        replicas=(SecretStr("postgresql://reader:pw@us-replica/photo_shard_1"),),
    )
    targets = shard_targets(_pg(shards=(own,)), [0, 1], AP_REPLICAS)
    assert _text(targets[1].primary) == "postgresql+asyncpg://app:pw@own-primary/photo_shard_1"
    assert [_text(url) for url in targets[1].replicas] == [
        "postgresql+asyncpg://reader:pw@replica.ap/photo_shard_1"
    ]
    assert [_text(url) for url in targets[0].replicas] == [
        "postgresql+asyncpg://reader:pw@replica.ap/photo_shard_0"
    ]


def test_without_region_templates_a_shard_keeps_its_own_replicas() -> None:
    own = PostgresShardSettings(
        id=0,
        dsn=SecretStr("postgresql://app:pw@own-primary/photo_shard_0"),
        replicas=(SecretStr("postgresql://reader:pw@us-replica/photo_shard_0"),),
    )
    targets = shard_targets(_pg(shards=(own,)), [0, 1], ())
    assert [_text(url) for url in targets[0].replicas] == [
        "postgresql+asyncpg://reader:pw@us-replica/photo_shard_0"
    ]
    assert targets[1].replicas == ()


def test_a_region_template_that_is_not_postgres_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a PostgreSQL DSN"):
        shard_targets(_pg(), [0], ("mysql://reader:pw@replica.eu/photo_shard_{shard}",))


def test_a_region_template_without_shard_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="same replica"):
        shard_targets(_pg(), [0, 1], ("postgresql://reader:pw@replica.eu/photos",))


# --- region_replica_templates ----------------------------------------------------------------------


def test_outside_a_region_there_are_no_region_templates() -> None:
    assert region_replica_templates(load_settings()) == ()


def test_regions_without_a_local_one_give_no_templates() -> None:
    assert region_replica_templates(load_settings(regions=_regions(local=None))) == ()


@pytest.mark.parametrize(
    ("local", "templates"),
    [("eu-west-1", EU_REPLICAS), ("ap-southeast-1", AP_REPLICAS), ("us-west-2", ())],
)
def test_inside_a_region_its_own_templates_are_given(local: str, templates: tuple[str, ...]) -> None:
    assert region_replica_templates(load_settings(regions=_regions(local))) == templates


def test_a_region_process_reads_its_regions_replicas_of_every_shard() -> None:
    settings = load_settings(
        regions=_regions("ap-southeast-1"),
        metadata={"backend": "postgres", "postgres": {"dsn_template": PRIMARY_TEMPLATE}},
    )
    targets = shard_targets(settings.metadata.postgres, [0, 3], region_replica_templates(settings))
    assert [_text(url) for url in targets[3].replicas] == [
        "postgresql+asyncpg://reader:pw@replica.ap/photo_shard_3"
    ]
    assert _text(targets[3].primary) == "postgresql+asyncpg://app:pw@primary.us/photo_shard_3"
