"""The pure parts of the event log: key -> partition, partition assignment, fair fetch plans."""

from __future__ import annotations

import pytest

from photostore.events.partitioning import assigned_partitions, partition_for, plan_fetch


def test_partition_for_is_a_fixed_function_of_the_key() -> None:
    # Pinned values: a change here would send existing keys to new partitions (reordering them).
    assert partition_for("user-1", 256) == 201
    assert [partition_for(f"k{i}", 128) for i in range(5)] == [51, 69, 1, 58, 91]
    assert all(0 <= partition_for(f"k{i}", 64) < 64 for i in range(1000))


def test_partition_for_spreads_keys_evenly() -> None:
    counts = [0] * 64
    for i in range(64_000):
        counts[partition_for(f"photo-{i}", 64)] += 1
    assert min(counts) > 800
    assert max(counts) < 1200


@pytest.mark.parametrize("members", [1, 2, 3, 5, 300])
def test_assignment_is_disjoint_and_covers_every_partition(members: int) -> None:
    ids = [f"member-{i}" for i in range(members)]
    owned = [assigned_partitions(list(reversed(ids)), 256, m) for m in ids]
    flat = [p for parts in owned for p in parts]
    assert sorted(flat) == list(range(256))
    sizes = [len(parts) for parts in owned]
    assert max(sizes) - min(sizes) <= 1


def test_a_non_member_owns_nothing() -> None:
    assert assigned_partitions(["a", "b"], 8, "c") == []


def test_plan_fetch_shares_the_budget_between_waiting_partitions() -> None:
    # One partition with a big backlog must not starve the others.
    pending = [(0, 0, 1000), (1, 10, 12), (2, 5, 5), (3, 0, 3)]
    plan = plan_fetch(pending, 10)
    assert plan == [(0, 0, 5), (1, 10, 12), (3, 0, 3)]  # 2 has nothing waiting; 0 gets what is left
    assert sum(hi - lo for _, lo, hi in plan) == 10


def test_plan_fetch_with_fewer_records_than_partitions_serves_them_in_order() -> None:
    pending = [(p, 0, 10) for p in range(8)]
    assert plan_fetch(pending, 3) == [(0, 0, 1), (1, 0, 1), (2, 0, 1)]


def test_plan_fetch_takes_everything_when_it_fits() -> None:
    assert plan_fetch([(4, 2, 5), (9, 0, 1)], 100) == [(4, 2, 5), (9, 0, 1)]
    assert plan_fetch([(4, 5, 5)], 100) == []


def test_plan_fetch_needs_a_positive_budget() -> None:
    with pytest.raises(ValueError, match="max_records"):
        plan_fetch([(0, 0, 1)], 0)
