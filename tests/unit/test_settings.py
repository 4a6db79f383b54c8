"""Settings: defaults, the TOML file, ``PHOTOSTORE_*`` variables, and errors that name the bad key."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from photostore.errors import ConfigError, PhotostoreError
from photostore.settings import CONFIG_ENV, SECRET_MASK, load_settings, masked_dump

DAY_MS = 86_400_000


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No PHOTOSTORE_* variable of the caller leaks in; none of ours leaks out."""
    for name in list(os.environ):
        if name.upper().startswith("PHOTOSTORE_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    yield
    # load_settings(file) sets PHOTOSTORE_CONFIG itself, behind monkeypatch's back: a delenv here
    # would be recorded and then undone by monkeypatch, so drop it directly (an original value,
    # if the caller had one, is still restored by monkeypatch's undo).
    os.environ.pop(CONFIG_ENV, None)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "photostore.toml"
    path.write_text(text)
    return path


def config_error(config_file: Path | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file)
    assert isinstance(caught.value, PhotostoreError)
    assert caught.value.code == "config_error"
    return caught.value.detail


# --- defaults ---------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = load_settings()
    assert settings.data_dir == Path("./data")
    assert settings.admin_token is None
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8000)
    assert (settings.placement.shards, settings.placement.buckets) == (4, 4)


def test_default_topics_are_the_specs() -> None:
    topics = load_settings().events.topics
    assert {name: (t.partitions, t.retention_ms) for name, t in topics.items()} == {
        "photo-upload": (128, 7 * DAY_MS),
        "photo-processing": (256, 3 * DAY_MS),
        "thumbnail-generation": (64, 1 * DAY_MS),
    }


def test_default_variants_are_the_specs() -> None:
    variants = load_settings().imaging.variants
    assert [(v.name, v.max_px, v.format) for v in variants] == [
        ("thumb", 256, "WEBP"),
        ("preview", 1440, "JPEG"),
    ]


# --- the TOML file ----------------------------------------------------------------------------


def test_toml_values(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        data_dir = "/srv/photos"
        admin_token = "from-the-file"
        log_level = "debug"

        [server]
        port = 9100
        host = "10.0.0.2"

        [placement]
        shards = 8

        [events.topics.photo-upload]
        partitions = 16
        retention_ms = 60000

        [[imaging.variants]]
        name = "small"
        max_px = 128
        format = "PNG"
        """,
    )
    settings = load_settings(path)
    assert settings.data_dir == Path("/srv/photos")
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "from-the-file"
    assert settings.log_level == "debug"
    assert (settings.server.host, settings.server.port) == ("10.0.0.2", 9100)
    assert (settings.placement.shards, settings.placement.buckets) == (8, 4)
    topics = settings.events.topics
    assert (topics["photo-upload"].partitions, topics["photo-upload"].retention_ms) == (16, 60000)
    # Topics the file does not name keep the spec's layout.
    assert topics["photo-processing"].partitions == 256
    assert topics["thumbnail-generation"].partitions == 64
    assert [(v.name, v.max_px, v.format, v.quality) for v in settings.imaging.variants] == [
        ("small", 128, "PNG", 82)
    ]


def test_the_file_can_be_named_by_photostore_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, "[server]\nport = 9101\n")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert load_settings().server.port == 9101


def test_environment_overrides_the_file_key_by_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, '[server]\nport = 9100\nhost = "10.0.0.1"\n')
    monkeypatch.setenv("PHOTOSTORE_SERVER__PORT", "9200")
    settings = load_settings(path)
    assert settings.server.port == 9200
    assert settings.server.host == "10.0.0.1"  # the section is merged, not replaced


def test_constructor_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOSTORE_LOG_LEVEL", "error")
    assert load_settings().log_level == "error"
    assert load_settings(log_level="debug").log_level == "debug"


def test_top_level_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PHOTOSTORE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("PHOTOSTORE_PLACEMENT__BUCKETS", "16")
    settings = load_settings()
    assert settings.data_dir == tmp_path / "d"
    assert settings.placement.buckets == 16


# --- topics from the environment: their names contain '-' ------------------------------------


def test_topic_from_environment_with_its_dashed_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not settable with a POSIX shell's `export`, but env(1), Docker and systemd pass such names.
    monkeypatch.setenv("PHOTOSTORE_EVENTS__TOPICS__PHOTO-UPLOAD__PARTITIONS", "5")
    monkeypatch.setenv("PHOTOSTORE_EVENTS__TOPICS__PHOTO-UPLOAD__RETENTION_MS", "5000")
    topics = load_settings().events.topics
    assert (topics["photo-upload"].partitions, topics["photo-upload"].retention_ms) == (5, 5000)
    assert topics["photo-processing"].partitions == 256


def test_one_field_of_a_topic_keeps_the_specs_other_fields(tmp_path: Path) -> None:
    config = write_toml(tmp_path, "[events.topics.photo-upload]\npartitions = 8\n")
    topic = load_settings(config).events.topics["photo-upload"]
    assert (topic.partitions, topic.retention_ms) == (8, 604_800_000)


def test_the_example_config_file_loads_with_the_defaults() -> None:
    example = Path(__file__).parents[2] / "config" / "embedded.example.toml"
    assert load_settings(example).model_dump() == load_settings().model_dump()


def test_topics_from_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    value = {"thumbnail-generation": {"partitions": 3, "retention_ms": 3000}}
    monkeypatch.setenv("PHOTOSTORE_EVENTS__TOPICS", json.dumps(value))
    topics = load_settings().events.topics
    assert (topics["thumbnail-generation"].partitions, topics["thumbnail-generation"].retention_ms) == (
        3,
        3000,
    )
    assert topics["photo-upload"].partitions == 128


def test_environment_topic_merges_with_the_files_topics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(tmp_path, "[events.topics.photo-upload]\npartitions = 7\nretention_ms = 5000\n")
    monkeypatch.setenv("PHOTOSTORE_EVENTS__TOPICS__PHOTO-UPLOAD__PARTITIONS", "9")
    topics = load_settings(path).events.topics
    assert (topics["photo-upload"].partitions, topics["photo-upload"].retention_ms) == (9, 5000)


def test_underscored_topic_name_is_refused_with_the_valid_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # PHOTO_UPLOAD does not become photo-upload: it is an unknown topic, and the error says so.
    monkeypatch.setenv("PHOTOSTORE_EVENTS__TOPICS__PHOTO_UPLOAD__PARTITIONS", "5")
    monkeypatch.setenv("PHOTOSTORE_EVENTS__TOPICS__PHOTO_UPLOAD__RETENTION_MS", "5000")
    detail = config_error()
    assert "events.topics" in detail
    assert "photo_upload" in detail
    assert "photo-upload" in detail


# --- errors name the bad key ------------------------------------------------------------------


def test_unknown_key_in_the_file(tmp_path: Path) -> None:
    detail = config_error(write_toml(tmp_path, "[server]\nprot = 9100\n"))
    assert "server.prot" in detail


def test_unknown_top_level_key_in_the_file(tmp_path: Path) -> None:
    detail = config_error(write_toml(tmp_path, 'colour = "red"\n'))
    assert "colour" in detail


def test_unknown_topic_in_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[events.topics.photo-uplod]\npartitions = 7\nretention_ms = 5000\n")
    detail = config_error(path)
    assert "events.topics" in detail
    assert "photo-uplod" in detail


def test_wrong_value_in_the_file(tmp_path: Path) -> None:
    detail = config_error(write_toml(tmp_path, '[server]\nport = "abc"\n'))
    assert "server.port" in detail
    assert "'abc'" in detail


def test_every_bad_key_is_named_at_once(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[server]\nport = 70000\n[placement]\nshards = 0\n[cache]\nttl_s = "x"\n')
    detail = config_error(path)
    for key in ("server.port", "placement.shards", "cache.ttl_s"):
        assert key in detail


def test_toml_syntax_error(tmp_path: Path) -> None:
    detail = config_error(write_toml(tmp_path, "[server\nport = 1\n"))
    assert "line 1" in detail


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    detail = config_error(missing)
    assert str(missing) in detail


def test_photostore_config_naming_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv(CONFIG_ENV, str(missing))
    detail = config_error()
    assert CONFIG_ENV in detail
    assert str(missing) in detail


def test_unknown_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOSTORE_FOO", "1")
    detail = config_error()
    assert "PHOTOSTORE_FOO" in detail
    assert "'foo'" in detail


def test_unknown_nested_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOSTORE_SERVER__PROT", "1")
    assert "server.prot" in config_error()


def test_wrong_value_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOSTORE_SERVER__PORT", "notaport")
    detail = config_error()
    assert "server.port" in detail
    assert "'notaport'" in detail


def test_wrong_literal_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOSTORE_SERVER__ROLE", "janitor")
    assert "server.role" in config_error()


def test_duplicate_variant_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    twice = [{"name": "a", "max_px": 100, "format": "PNG"}] * 2
    monkeypatch.setenv("PHOTOSTORE_IMAGING__VARIANTS", json.dumps(twice))
    detail = config_error()
    assert "imaging.variants" in detail
    assert "unique" in detail


def test_unknown_lower_case_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("photostore_server__port", "9400")
    assert load_settings().server.port == 9400  # lower-case names are read...
    monkeypatch.setenv("photostore_foo", "1")
    assert "photostore_foo" in config_error()  # ...so a lower-case typo must be refused too


# --- secrets ----------------------------------------------------------------------------------


def test_masked_dump_hides_the_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOSTORE_ADMIN_TOKEN", "s3cret-admin-token")
    settings = load_settings()
    assert isinstance(settings.admin_token, SecretStr)
    assert settings.admin_token.get_secret_value() == "s3cret-admin-token"
    dump = masked_dump(settings)
    assert dump["admin_token"] == SECRET_MASK
    assert "s3cret-admin-token" not in json.dumps(dump)
    assert "s3cret-admin-token" not in repr(settings)
    assert dump["server"]["port"] == 8000  # the rest is plain data


def test_masked_dump_without_admin_token() -> None:
    dump = masked_dump(load_settings())
    assert dump["admin_token"] is None
    json.dumps(dump)  # plain JSON-able data
