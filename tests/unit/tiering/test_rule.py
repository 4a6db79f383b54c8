"""The tier rule: which originals go cold, which come back, and that variants never move."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from photostore.domain import Photo, PhotoStatus, Variant
from photostore.ids import make_id
from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.destinations import Destination, MapDestinations, objects_to_move
from photostore.tiering.rule import TierDestinations, last_touched
from tests.support.photo_rows import jpeg_row

MAP = BucketMap.create(3, prefix="hot-")
NOW = datetime(2026, 11, 29, tzinfo=UTC)
IDLE_BEFORE = NOW - timedelta(days=90)


def photo(created: datetime, *, read: datetime | None = None, bucket: str | None = None) -> Photo:
    photo_id = make_id(7, int(created.timestamp() * 1000))
    return jpeg_row(
        photo_id,
        make_id(7, 0),
        created,
        bucket=bucket or MAP.bucket_for(photo_id),
        storage_path=f"photos/x/{photo_id}",
        sha256="0" * 64,
        status=PhotoStatus.READY,
        last_accessed_at=read,
    )


def thumb(of: Photo) -> Variant:
    return Variant(
        of.id,
        "thumb",
        of.bucket,
        f"{of.storage_path}.thumb.webp",
        "WEBP",
        "image/webp",
        5,
        5,
        10,
        "1" * 64,
        of.created_at,
    )


RULE = TierDestinations(MAP, "cold", IDLE_BEFORE)


def test_last_touched_is_the_later_of_upload_and_last_read() -> None:
    uploaded = NOW - timedelta(days=200)
    assert last_touched(photo(uploaded)) == uploaded
    assert last_touched(photo(uploaded, read=NOW)) == NOW
    assert last_touched(photo(uploaded, read=uploaded - timedelta(days=1))) == uploaded


def test_an_idle_original_goes_cold_without_its_variants() -> None:
    idle = photo(NOW - timedelta(days=100))
    destination = RULE.destination(idle)
    assert destination == Destination("cold", original=True, variants=False)
    assert [o.name for o in objects_to_move(idle, [thumb(idle)], destination)] == ["original"]


def test_a_recent_or_recently_read_original_stays_where_it_is() -> None:
    assert RULE.destination(photo(NOW - timedelta(days=10))) is None
    assert RULE.destination(photo(NOW - timedelta(days=400), read=NOW - timedelta(days=1))) is None
    # Hot but not in the map's bucket: placing it is a rebalance's work, not tiering's.
    assert RULE.destination(photo(NOW, bucket="hot-elsewhere")) is None


def test_a_cold_original_read_again_goes_back_to_its_map_bucket() -> None:
    cold = photo(NOW - timedelta(days=400), bucket="cold")
    assert objects_to_move(cold, [], RULE.destination(cold)) == []  # still idle: stays
    read = replace(cold, last_accessed_at=NOW - timedelta(hours=1))
    destination = RULE.destination(read)
    assert destination == Destination(MAP.bucket_for(read.id), original=True, variants=False)
    assert [o.bucket for o in objects_to_move(read, [thumb(photo(read.created_at))], destination)] == ["cold"]


def test_the_boundary_is_exclusive_and_the_rule_opens_every_bucket() -> None:
    assert RULE.destination(photo(IDLE_BEFORE)) is None  # touched exactly at the line: not idle
    assert RULE.destination(photo(IDLE_BEFORE - timedelta(milliseconds=1))) is not None
    assert set(RULE.buckets()) == {*MAP.buckets, "cold"}


def test_a_rebalance_leaves_cold_originals_and_moves_their_variants() -> None:
    rule = MapDestinations(MAP, pinned={"cold"})
    cold = photo(NOW, bucket="cold")
    stray = replace(thumb(cold), bucket="hot-old")
    moving = objects_to_move(cold, [stray], rule.destination(cold))
    assert [(o.name, o.bucket) for o in moving] == [("thumb", "hot-old")]
    hot = photo(NOW, bucket="hot-old")
    assert [
        o.name for o in objects_to_move(hot, [replace(thumb(hot), bucket="hot-old")], rule.destination(hot))
    ] == [
        "original",
        "thumb",
    ]
