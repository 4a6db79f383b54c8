"""The bucket map: photos to buckets by their whole id, versioned changes, serialisation."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter

import pytest

from photostore.ids import make_id, new_photo_id, new_user_id
from photostore.placement.bucket_map import BucketMap


def test_create_names_buckets_from_the_prefix() -> None:
    bucket_map = BucketMap.create(4, prefix="photos-", partition_power=10)
    assert bucket_map.version == 1
    assert bucket_map.buckets == ("photos-0", "photos-1", "photos-2", "photos-3")


def test_one_users_photos_spread_over_every_bucket() -> None:
    bucket_map = BucketMap.create(4, partition_power=12)
    owner = new_user_id()
    counts = Counter(bucket_map.bucket_for(new_photo_id(owner)) for _ in range(4000))
    assert set(counts) == set(bucket_map.buckets)
    assert max(counts.values()) / min(counts.values()) < 1.25


def test_bucket_depends_on_the_whole_id() -> None:
    bucket_map = BucketMap.create(8, partition_power=12)
    same_key = [make_id(0xDEADBEEF, 1_700_000_000_000, r) for r in range(64)]
    assert len({bucket_map.bucket_for(photo) for photo in same_key}) > 4


def test_adding_a_bucket_moves_about_one_over_n_plus_one_all_to_it() -> None:
    before = BucketMap.create(4, partition_power=16)
    after = before.with_bucket_added("photos-4")
    assert after.version == 2
    rng = random.Random(5)
    photos = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(40_000)]
    moved = [p for p in photos if before.bucket_for(p) != after.bucket_for(p)]
    assert {after.bucket_for(p) for p in moved} == {"photos-4"}
    assert len(moved) / len(photos) == pytest.approx(1 / 5, rel=0.10)
    assert before.moved_keys_fraction(after) == pytest.approx(1 / 5, rel=0.01)


def test_remove_reweight_and_refusals() -> None:
    bucket_map = BucketMap.create(3, partition_power=8)
    removed = bucket_map.with_bucket_removed("photos-1")
    assert removed.buckets == ("photos-0", "photos-2")
    assert removed.version == 2
    assert bucket_map.with_bucket_weight("photos-0", 0.0).share("photos-0") == 0.0
    for bad in ("Photos-9", "a", "photos-9-", "x" * 64):
        with pytest.raises(ValueError, match="bucket name"):
            bucket_map.with_bucket_added(bad)
    with pytest.raises(ValueError, match="already"):
        bucket_map.with_bucket_added("photos-0")
    with pytest.raises(KeyError):
        bucket_map.with_bucket_removed("photos-7")


def test_round_trip_keeps_version_and_lookups() -> None:
    bucket_map = BucketMap.create(5, prefix="media.", partition_power=12).with_bucket_removed("media.0")
    back = BucketMap.from_dict(json.loads(json.dumps(bucket_map.to_dict())))
    assert back == bucket_map
    assert back.version == 2
    photos = [uuid.UUID(int=i * 7919) for i in range(500)]
    assert [back.bucket_for(p) for p in photos] == [bucket_map.bucket_for(p) for p in photos]
    with pytest.raises(ValueError, match="not a bucket map"):
        BucketMap.from_dict({**bucket_map.to_dict(), "kind": "shard_map"})
