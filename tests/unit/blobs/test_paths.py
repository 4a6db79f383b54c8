"""Object keys: the spec's ``photos/YYYY/MM/DD/<photo_id>`` from the id's UTC date, variants beside."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from photostore import ids
from photostore.blobs.paths import date_prefix, original_key, parse_object_key, storage_url, variant_key


def id_at(moment: datetime, key: int = 0x1234_5678) -> uuid.UUID:
    return ids.make_id(key, unix_ms=int(moment.timestamp() * 1000))


@pytest.fixture(params=["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
def local_zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run under a local time zone far from UTC (+14 h, -11 h): the key must not follow it."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_zone")
@pytest.mark.parametrize(
    ("moment", "folder"),
    [
        (datetime(2024, 2, 29, 23, 59, 59, 999_000, tzinfo=UTC), "photos/2024/02/29"),
        (datetime(2024, 3, 1, 0, 0, 0, tzinfo=UTC), "photos/2024/03/01"),
        (datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC), "photos/2023/12/31"),
        (datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC), "photos/2024/01/01"),
        (datetime(1970, 1, 1, tzinfo=UTC), "photos/1970/01/01"),
        (datetime(2009, 7, 5, 12, 0, tzinfo=UTC), "photos/2009/07/05"),
    ],
)
def test_original_key_is_the_specs_layout_by_utc_date(moment: datetime, folder: str) -> None:
    photo_id = id_at(moment)
    assert date_prefix(photo_id) == folder
    assert original_key(photo_id) == f"{folder}/{photo_id}"


def test_key_of_a_photo_made_now_has_todays_utc_date() -> None:
    before = datetime.now(UTC)
    photo_id = ids.new_photo_id(ids.new_user_id())
    after = datetime.now(UTC)
    folders = {f"photos/{d:%Y/%m/%d}/{photo_id}" for d in (before, after)}
    assert original_key(photo_id) in folders


def test_the_id_in_the_key_is_its_canonical_text() -> None:
    photo_id = id_at(datetime(2024, 5, 6, tzinfo=UTC))
    name = original_key(photo_id).rsplit("/", 1)[1]
    assert name == str(photo_id)
    assert ids.parse_id(name) == photo_id


@pytest.mark.parametrize(
    ("image_format", "extension"),
    [
        ("WEBP", "webp"),
        ("JPEG", "jpg"),
        ("jpeg", "jpg"),
        ("AVIF", "avif"),
        ("PNG", "png"),
        ("GIF", "gif"),  # not a variant format today: its name, lower-cased
    ],
)
def test_variant_keys_sit_beside_the_original(image_format: str, extension: str) -> None:
    photo_id = id_at(datetime(2024, 2, 29, 23, 30, tzinfo=UTC))
    key = variant_key(photo_id, "thumb", image_format)
    assert key == f"photos/2024/02/29/{photo_id}.thumb.{extension}"
    assert key.startswith(original_key(photo_id) + ".")


def test_variant_keys_differ_by_variant_name() -> None:
    photo_id = id_at(datetime(2024, 2, 29, tzinfo=UTC))
    keys = {variant_key(photo_id, name, "JPEG") for name in ("thumb", "preview", "large")}
    assert len(keys) == 3
    assert original_key(photo_id) not in keys


def test_storage_url() -> None:
    photo_id = id_at(datetime(2024, 2, 29, tzinfo=UTC))
    assert storage_url("photos-3", original_key(photo_id)) == f"s3://photos-3/photos/2024/02/29/{photo_id}"


def test_object_keys_parse_back_to_their_photo_and_object() -> None:
    photo_id = id_at(datetime(2024, 2, 29, tzinfo=UTC))
    assert parse_object_key(original_key(photo_id)) == (photo_id, "original")
    assert parse_object_key(variant_key(photo_id, "thumb", "WEBP")) == (photo_id, "thumb")
    assert parse_object_key(variant_key(photo_id, "preview_2x", "JPEG")) == (photo_id, "preview_2x")
    for foreign in (
        "",
        "README",
        "photos/2024/02/29/not-a-uuid",
        f"photos/{photo_id}x",
        f"{photo_id}.",
        "a/b/",
    ):
        assert parse_object_key(foreign) is None, foreign
