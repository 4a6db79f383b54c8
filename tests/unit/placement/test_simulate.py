"""The placement simulation: reproducible, sound at both ends of the scale, and strict about its input."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from photostore.placement.shard_map import ShardMap
from photostore.placement.simulate import PlacementSimulation, max_over_mean, simulate_placement


@functools.cache  # several tests read the same moderate run; it is immutable
def _moderate() -> PlacementSimulation:
    return simulate_placement(100_000_000, 16, 8, sample=50_000, seed=7)


def _spreads(result: PlacementSimulation) -> dict[str, tuple[float, float]]:
    return {
        name: (spread.sample_max_over_mean, spread.max_over_mean)
        for name, spread in (
            ("shard users", result.shard_users),
            ("shard rows", result.shard_rows),
            ("bucket objects", result.bucket_objects),
        )
    }


def test_the_same_seed_gives_the_same_figures() -> None:
    first = simulate_placement(10_000_000, 8, 4, sample=5_000, seed=3)
    assert simulate_placement(10_000_000, 8, 4, sample=5_000, seed=3) == first
    assert first.to_dict() == simulate_placement(10_000_000, 8, 4, sample=5_000, seed=3).to_dict()
    assert simulate_placement(10_000_000, 8, 4, sample=5_000, seed=4) != first


def test_every_max_over_mean_is_at_least_one() -> None:
    for name, (in_sample, at_scale) in _spreads(_moderate()).items():
        assert in_sample >= 1.0, name
        assert at_scale >= 1.0, name
    assert max_over_mean([0, 0]) == 1.0
    assert max_over_mean([1, 3]) == 1.5


def test_the_sample_is_counted_in_full() -> None:
    result = _moderate()
    assert len(result.shard_users.sample) == 16
    assert len(result.bucket_objects.sample) == 8
    assert sum(result.shard_users.sample) == 50_000
    assert sum(result.shard_rows.sample) == result.sample_photos
    assert sum(result.bucket_objects.sample) == 50_000  # as many photos as users
    assert result.total_photos == pytest.approx(result.sample_photos * 2_000)
    assert result.total_bytes == pytest.approx(result.total_photos * 3_000_000)


def test_adding_a_shard_moves_about_one_over_s_plus_one_all_to_it() -> None:
    added = _moderate().added
    assert added.shard_id == 16
    assert added.ideal == pytest.approx(1 / 17)
    assert added.key_space == ShardMap.create(16).moved_keys_fraction(
        ShardMap.create(16).with_shard_added(16)
    )
    assert added.only_to_new_shard
    # ~2,900 sampled users move: their count is within a few per cent of the ideal, their rows
    # (heavy-tailed) within a few tens; at 100 million users both are within a per cent.
    assert 0.9 < added.users_sample / added.ideal < 1.1
    assert 0.8 < added.rows_sample / added.ideal < 1.2
    assert added.users / added.ideal == pytest.approx(1, abs=0.01)
    assert added.rows / added.ideal == pytest.approx(1, abs=0.02)


def test_zipf_skew_makes_rows_less_even_than_users() -> None:
    # Enough nodes that each dispersion (a chi-square over its degrees of freedom) is measured to ~0.2.
    result = simulate_placement(100_000_000, 256, 64, sample=50_000, seed=7)
    # A user's photos all land on its shard, so rows vary about E[k^2]/E[k] times as much as users.
    assert result.shard_users.dispersion == pytest.approx(1, abs=0.5)
    assert result.shard_rows.dispersion > 100 * result.shard_users.dispersion
    assert result.shard_rows.sample_max_over_mean > result.shard_users.sample_max_over_mean
    assert result.shard_rows.max_over_mean > result.shard_users.max_over_mean
    # A photo's bucket hashes its whole id, so photos land independently: no such clumping.
    assert result.bucket_objects.dispersion == pytest.approx(1, abs=0.5)


def test_one_photo_per_user_makes_rows_follow_users() -> None:
    result = simulate_placement(1_000_000, 8, 4, sample=5_000, max_photos=1, seed=1)
    assert result.shard_rows.sample == result.shard_users.sample
    assert result.sample_photos == 5_000
    assert result.photos_per_user.max == 1


def test_the_photo_counts_follow_the_truncated_zipf_law() -> None:
    result = _moderate()
    weights = [k**-1.1 for k in range(1, 100_001)]
    exact_mean = sum(k * w for k, w in enumerate(weights, start=1)) / sum(weights)
    # Per-user sd is ~3x the mean, so 50,000 users give the mean to ~1.3 %.
    assert result.photos_per_user.mean == pytest.approx(exact_mean, rel=0.06)
    assert 1 <= result.photos_per_user.median <= result.photos_per_user.p99 <= result.photos_per_user.max
    assert result.photos_per_user.max <= 100_000


def test_a_larger_population_is_more_even_than_its_sample() -> None:
    result = simulate_placement(1_000_000_000, 64, 16, sample=20_000, seed=2)
    for name, (in_sample, at_scale) in _spreads(result).items():
        assert at_scale < in_sample, name
    assert result.shard_users.max_over_mean < 1.01
    assert result.bucket_objects.max_over_mean < 1.001


def test_a_sample_of_everyone_is_not_extrapolated() -> None:
    result = simulate_placement(3_000, 4, 4, sample=3_000, seed=5)
    assert result.shard_users.at_scale == tuple(map(float, result.shard_users.sample))
    assert result.shard_rows.at_scale == tuple(map(float, result.shard_rows.sample))
    assert result.total_photos == result.sample_photos
    assert (result.added.users, result.added.rows) == (result.added.users_sample, result.added.rows_sample)


def test_progress_is_reported_up_to_the_end() -> None:
    seen: list[tuple[int, int]] = []
    simulate_placement(20_000, 4, 4, sample=10_000, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (20_000, 20_000)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_to_dict_is_json_shaped() -> None:
    data = _moderate().to_dict()
    assert set(data) == {"params", "photos_per_user", "sample", "estimate", "shards", "buckets", "add_shard"}
    assert data["params"]["partition_power"] == 16
    assert data["shards"]["bytes"]["mean"] == pytest.approx(data["shards"]["rows"]["mean"] * 3_000_000)
    assert data["add_shard"]["users_moved"] == pytest.approx(data["add_shard"]["users"] * 100_000_000)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"users": 0, "sample": 1}, "users must be >= 1"),
        ({"shards": 0}, "shards must be"),
        ({"shards": 65_536}, "shards must be"),
        ({"buckets": 0}, "buckets must be"),
        ({"sample": 0}, "sample must be"),
        ({"users": 100, "sample": 101}, r"sample \(101\) cannot exceed users \(100\)"),
        ({"zipf": 0.0}, "zipf exponent"),
        ({"zipf": float("nan")}, "zipf exponent"),
        ({"max_photos": 0}, "max photos"),
        ({"mean_photo_bytes": 0}, "mean photo bytes"),
        ({"seed": -1}, "seed must be"),
    ],
)
def test_bad_input_is_refused_by_name(changes: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"users": 1_000, "shards": 4, "buckets": 4, "sample": 100} | changes
    with pytest.raises(ValueError, match=message):
        simulate_placement(**args)
