"""The shard map: users to shards by placement key, versioned changes, serialisation."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections import Counter

import pytest

from photostore.ids import make_id, new_photo_id, new_user_id, placement_key_of
from photostore.placement.shard_map import KeyRangeMove, ShardMap


def _user_ids(count: int, seed: int = 1) -> list[uuid.UUID]:
    """Reproducible user ids (the random bits come from a seeded generator)."""
    rng = random.Random(seed)
    return [make_id(rng.getrandbits(32), 1_700_000_000_000, rng.getrandbits(42)) for _ in range(count)]


def test_create_numbers_shards_from_zero_at_version_one() -> None:
    shard_map = ShardMap.create(4, partition_power=10)
    assert shard_map.version == 1
    assert shard_map.shard_ids == (0, 1, 2, 3)
    assert shard_map.next_shard_id == 4
    assert sum(shard_map.share(s) for s in shard_map.shard_ids) == pytest.approx(1.0)


def test_a_users_photos_live_on_the_users_shard() -> None:
    shard_map = ShardMap.create(16, partition_power=12)
    for _ in range(200):
        user = new_user_id()
        shard = shard_map.shard_for_id(user)
        assert shard == shard_map.shard_for_key(placement_key_of(user))
        assert all(shard_map.shard_for_id(new_photo_id(user)) == shard for _ in range(5))


def test_users_spread_evenly() -> None:
    shard_map = ShardMap.create(8, partition_power=16)
    counts = Counter(shard_map.shard_for_id(u) for u in _user_ids(80_000))
    assert max(counts.values()) / (80_000 / 8) < 1.05


def test_adding_a_shard_moves_about_one_over_n_plus_one_of_users_all_to_it() -> None:
    before = ShardMap.create(8, partition_power=16)
    after = before.with_shard_added(before.next_shard_id)
    assert after.version == 2
    assert after.shard_ids == tuple(range(9))
    users = _user_ids(50_000)
    moved = [u for u in users if before.shard_for_id(u) != after.shard_for_id(u)]
    assert {after.shard_for_id(u) for u in moved} == {8}
    assert len(moved) / len(users) == pytest.approx(1 / 9, rel=0.10)
    assert before.moved_keys_fraction(after) == pytest.approx(1 / 9, rel=0.01)


def test_removing_a_shard_moves_only_its_users() -> None:
    before = ShardMap.create(5, partition_power=12)
    after = before.with_shard_removed(2)
    assert after.version == 2
    assert after.shard_ids == (0, 1, 3, 4)
    for user in _user_ids(5000):
        if before.shard_for_id(user) != 2:
            assert after.shard_for_id(user) == before.shard_for_id(user)
    with pytest.raises(KeyError):
        after.with_shard_removed(2)


def test_changes_bump_the_version_and_refuse_nonsense() -> None:
    shard_map = ShardMap.create(2, partition_power=8)
    assert shard_map.with_shard_weight(0, 2.0).version == 2
    assert shard_map.with_shard_added(7).with_shard_removed(7).version == 3
    with pytest.raises(ValueError, match="already"):
        shard_map.with_shard_added(1)
    with pytest.raises(ValueError, match="shard ids"):
        shard_map.with_shard_added(-1)
    with pytest.raises(ValueError, match="last node"):
        shard_map.with_shard_removed(0).with_shard_removed(1)
    with pytest.raises(ValueError, match="at least one"):
        ShardMap.create(0)


def test_moved_key_ranges_describe_exactly_the_moved_users() -> None:
    before = ShardMap.create(3, partition_power=10)
    after = before.with_shard_added(3)
    ranges = before.moved_key_ranges(after)
    assert all(r.target == 3 and r.lo < r.hi for r in ranges)
    assert all(a.hi <= b.lo for a, b in itertools.pairwise(ranges))
    covered = sum(r.hi - r.lo for r in ranges)
    assert covered / 2**32 == pytest.approx(before.moved_keys_fraction(after))

    def in_ranges(key: int) -> KeyRangeMove | None:
        return next((r for r in ranges if r.lo <= key < r.hi), None)

    rng = random.Random(3)
    for key in (rng.getrandbits(32) for _ in range(5000)):
        move = in_ranges(key)
        if move is None:
            assert before.shard_for_key(key) == after.shard_for_key(key)
        else:
            assert (before.shard_for_key(key), after.shard_for_key(key)) == (move.source, move.target)


def test_round_trip_keeps_version_and_lookups() -> None:
    shard_map = ShardMap.create(6, partition_power=12).with_shard_added(6, weight=2.0)
    back = ShardMap.from_dict(json.loads(json.dumps(shard_map.to_dict())))
    assert back == shard_map
    assert back.version == 2
    assert [back.shard_for_id(u) for u in _user_ids(500)] == [
        shard_map.shard_for_id(u) for u in _user_ids(500)
    ]
    with pytest.raises(ValueError, match="not a shard map"):
        ShardMap.from_dict({**shard_map.to_dict(), "kind": "bucket_map"})
    with pytest.raises(ValueError, match="version"):
        ShardMap.from_dict({**shard_map.to_dict(), "version": 0})


def test_a_blended_map_routes_the_given_ranges_like_the_target_and_the_rest_like_itself() -> None:
    current = ShardMap.create(4, partition_power=8)
    target = current.with_shard_added(4)
    moves = current.moved_key_ranges(target)
    half = moves[: len(moves) // 2]
    blended = current.blended(target, [(m.lo, m.hi) for m in half])
    assert blended.version == current.version + 1
    for move in moves:
        for key in (move.lo, move.hi - 1):
            expected = target if move in half else current
            assert blended.shard_for_key(key) == expected.shard_for_key(key)
    everything = current.blended(target, [(m.lo, m.hi) for m in moves])
    assert everything.routes_like(target)
    assert not current.routes_like(target)
