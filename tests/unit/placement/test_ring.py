"""The ring: balance, minimal movement, determinism, handoffs, serialisation."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from photostore.placement.ring import Ring, hash_key


def _quota_ok(ring: Ring[int] | Ring[str]) -> bool:
    """Every node owns floor or ceil of its exact quota, and the counts add up."""
    weights = ring.weights()
    total = sum(weights.values())
    counts = ring.partition_counts()
    assert sum(counts.values()) == ring.partition_count
    return all(abs(counts[n] - ring.partition_count * w / total) < 1 + 1e-9 for n, w in weights.items())


def _fewest_moves(before: Ring[int], after: Ring[int]) -> int:
    """The fewest moves any balanced ``after`` could need, derived independently of the ring's code.

    Each node must own floor(q) or, if q is fractional, ceil(q) of its quota q. Start from the floors;
    each of the k leftover partitions saves a move only when given to a node that owns more than its floor.
    """
    old, weights = before.partition_counts(), after.weights()
    total = sum(Fraction(w) for w in weights.values())
    quotas = {n: after.partition_count * Fraction(w) / total for n, w in weights.items()}
    floors = {n: math.floor(q) for n, q in quotas.items()}
    leftover = after.partition_count - sum(floors.values())
    keepers = sum(1 for n, q in quotas.items() if q != floors[n] and old.get(n, 0) > floors[n])
    gone = sum(c for n, c in old.items() if n not in weights)
    return gone + sum(max(0, old.get(n, 0) - f) for n, f in floors.items()) - min(leftover, keepers)


def _assert_minimal_change(before: Ring[int], after: Ring[int]) -> None:
    """No node both gains and loses, and no more partitions move than balance requires."""
    old, new = before.partition_counts(), after.partition_counts()
    moved = before.moved_partitions(after)
    for p in moved:
        source, target = before.node_for_partition(p), after.node_for_partition(p)
        assert new.get(source, 0) < old[source], f"{source} gave partition {p} but did not shrink"
        assert new[target] > old.get(target, 0), f"{target} took partition {p} but did not grow"
    assert len(moved) == sum(max(0, old[n] - new.get(n, 0)) for n in old)
    assert len(moved) == _fewest_moves(before, after)


# --- balance ---------------------------------------------------------------------------------------


def test_1024_equal_nodes_own_equal_shares() -> None:
    ring = Ring.build(range(1024), partition_power=16)
    shares = [ring.share(n) for n in ring.nodes()]
    assert max(shares) / (sum(shares) / len(shares)) <= 1.05
    assert set(ring.partition_counts().values()) == {64}


def test_uneven_division_uses_floor_or_ceiling() -> None:
    ring = Ring.build(range(7), partition_power=10)  # 1024 / 7 = 146.3
    assert sorted(Counter(ring.partition_counts().values()).items()) == [(146, 5), (147, 2)]


def test_weights_are_respected() -> None:
    weights = {"a": 1.0, "b": 2.0, "c": 3.5, "d": 0.5}
    ring = Ring.build(weights, partition_power=12)
    assert _quota_ok(ring)
    assert ring.share("c") / ring.share("a") == pytest.approx(3.5, rel=0.01)


def test_zero_weight_node_owns_nothing_but_is_listed() -> None:
    ring = Ring.build({"a": 1.0, "b": 0.0}, partition_power=8)
    assert ring.nodes() == ("a", "b")
    assert ring.share("b") == 0.0
    assert ring.nodes_for("x", 2) == ["a"]


def test_partitions_are_spread_not_contiguous() -> None:
    ring = Ring.build(range(4), partition_power=12)
    owners = [ring.node_for_partition(p) for p in range(ring.partition_count)]
    runs = 1 + sum(1 for a, b in itertools.pairwise(owners) if a != b)
    assert runs > ring.partition_count // 2  # a seeded shuffle, not four blocks


def test_string_keys_spread_evenly() -> None:
    ring = Ring.build([f"node-{i}" for i in range(8)], partition_power=12)
    counts = Counter(ring.node_for(f"key-{i}") for i in range(80_000))
    assert max(counts.values()) / min(counts.values()) < 1.15


# --- movement --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 10, 100, 1024])
def test_adding_a_node_moves_about_one_over_n_plus_one_all_to_it(n: int) -> None:
    before = Ring.build(range(n), partition_power=16)
    after = before.add_node(n)
    moved = before.moved_partitions(after)
    assert {after.node_for_partition(p) for p in moved} == {n}
    fraction = len(moved) / before.partition_count
    assert fraction == pytest.approx(1 / (n + 1), rel=0.10)
    assert _quota_ok(after)


def test_removing_a_node_moves_only_its_partitions_spread_over_the_rest() -> None:
    before = Ring.build(range(10), partition_power=14)
    after = before.remove_node(3)
    moved = before.moved_partitions(after)
    assert len(moved) == before.partition_counts()[3]
    assert {before.node_for_partition(p) for p in moved} == {3}
    assert {after.node_for_partition(p) for p in moved} == set(range(10)) - {3}
    assert 3 not in after
    assert _quota_ok(after)


def test_reweighting_moves_only_to_or_from_that_node() -> None:
    before = Ring.build(range(6), partition_power=12)
    heavier = before.set_weight(2, 2.0)
    assert {heavier.node_for_partition(p) for p in before.moved_partitions(heavier)} == {2}
    drained = heavier.set_weight(2, 0.0)
    assert {heavier.node_for_partition(p) for p in heavier.moved_partitions(drained)} == {2}
    assert drained.share(2) == 0.0
    assert _quota_ok(heavier)
    assert _quota_ok(drained)


def test_mutations_return_new_rings_and_leave_the_old_one_alone() -> None:
    before = Ring.build(range(3), partition_power=8)
    snapshot = before.to_dict()
    before.add_node(3)
    before.remove_node(0)
    before.set_weight(1, 3.0)
    assert before.to_dict() == snapshot


def test_bad_changes_are_refused() -> None:
    ring = Ring.build(["a", "b"], partition_power=4)
    with pytest.raises(ValueError, match="already"):
        ring.add_node("a")
    with pytest.raises(KeyError):
        ring.remove_node("zz")
    with pytest.raises(ValueError, match="last node"):
        ring.remove_node("a").remove_node("b")
    with pytest.raises(TypeError):
        ring.add_node(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weight"):
        ring.set_weight("a", math.nan)
    with pytest.raises(ValueError, match="do not fit"):
        Ring.build(range(17), partition_power=4)


# --- lookups ---------------------------------------------------------------------------------------


def test_key_lookup_uses_the_top_bits() -> None:
    ring = Ring.build(range(5), partition_power=8)
    assert ring.partition_for_key(0) == 0
    assert ring.partition_for_key(2**32 - 1) == 255
    assert ring.partition_for_key(0x01FF_FFFF) == 1
    lo, hi = ring.key_range(7)
    assert (lo, hi) == (7 << 24, 8 << 24)
    assert ring.node_for_key(lo) == ring.node_for_key(hi - 1) == ring.node_for_partition(7)
    for bad in (-1, 2**32):
        with pytest.raises(ValueError, match="32-bit"):
            ring.node_for_key(bad)


def test_data_lookup_hashes_str_as_utf8() -> None:
    ring = Ring.build(range(50), partition_power=12)
    for text in ("", "a", "ünïcode", "photo/123"):
        assert ring.node_for(text) == ring.node_for(text.encode())
        assert ring.node_for(text) == ring.node_for_key(hash_key(text))
        assert ring.partition_for(text) == ring.partition_for_key(hash_key(text))


def test_handoff_nodes_are_distinct_primary_first_and_stable() -> None:
    ring = Ring.build([f"cache-{i}" for i in range(10)], partition_power=10)
    for i in range(300):
        key = f"k{i}"
        three = ring.nodes_for(key, 3)
        assert len(three) == len(set(three)) == 3
        assert three[0] == ring.node_for(key)
        assert ring.nodes_for(key, 5)[:3] == three
    assert sorted(ring.nodes_for("x", 99)) == sorted(ring.nodes())
    assert ring.nodes_for("x", 0) == []


def test_handoffs_of_a_removed_node_spread_over_many_nodes() -> None:
    ring = Ring.build(range(20), partition_power=12)
    mine = [p for p in range(ring.partition_count) if ring.node_for_partition(p) == 0]
    seconds = Counter(ring.nodes_for_partition(p, 2)[1] for p in mine)
    assert len(seconds) == 19  # every other node takes part of node 0's load
    assert max(seconds.values()) < 3 * len(mine) / 19


# --- determinism and serialisation -----------------------------------------------------------------


def test_same_inputs_give_the_same_table_regardless_of_node_order() -> None:
    a = Ring.build({"x": 1.0, "y": 2.0, "z": 1.0}, partition_power=10, seed=7)
    b = Ring.build({"z": 1.0, "y": 2.0, "x": 1.0}, partition_power=10, seed=7)
    assert a == b
    assert hash(a) == hash(b)
    assert a.add_node("w") == b.add_node("w")
    assert a != Ring.build({"x": 1.0, "y": 2.0, "z": 1.0}, partition_power=10, seed=8)


def test_round_trip_through_json() -> None:
    ring = Ring.build({f"n{i}": 1.0 + i / 3 for i in range(40)}, partition_power=14, seed=99)
    ring = ring.remove_node("n5").add_node("n99", 0.25)
    back = Ring.from_dict(json.loads(json.dumps(ring.to_dict())))
    assert back == ring
    assert back.weights() == ring.weights()
    assert [back.node_for(str(i)) for i in range(1000)] == [ring.node_for(str(i)) for i in range(1000)]
    assert back.add_node("n100") == ring.add_node("n100")


def test_stored_table_is_compact() -> None:
    ring = Ring.build(range(4), partition_power=16)
    assert len(json.dumps(ring.to_dict())) < 2 * ring.partition_count // 4


def test_malformed_dicts_are_refused() -> None:
    good = Ring.build(["a", "b"], partition_power=4).to_dict()
    small = Ring.build(["a", "b", "c", "d"], partition_power=4).to_dict()
    cases = [
        {**good, "format": "other"},
        {**good, "table": "not base64!"},
        {**good, "partition_power": 5},
        {**good, "nodes": ["a"], "weights": [1.0]},  # the table names node index 1
        {**good, "nodes": ["b", "a"]},
        {**good, "nodes": ["a", 2]},
        {**good, "weights": [1.0, "x"]},
        {**small, "nodes": ["a", "b"], "weights": [1.0, 1.0]},
        {k: v for k, v in good.items() if k != "seed"},
    ]
    for case in cases:
        with pytest.raises(ValueError, match=r"ring|table|node|weight|format"):
            Ring.from_dict(case)


# --- properties ------------------------------------------------------------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "weight"]), st.integers(0, 40), st.sampled_from([0.5, 1, 2, 3])
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None, database=None)
@given(
    power=st.integers(6, 10),
    weights=st.dictionaries(
        st.integers(0, 40), st.sampled_from([0.5, 1.0, 2.0, 3.0]), min_size=1, max_size=30
    ),
    seed=st.integers(0, 2**64 - 1),
    ops=_ops,
)
def test_any_history_stays_balanced_minimal_and_serialisable(
    power: int, weights: dict[int, float], seed: int, ops: list[tuple[str, int, float]]
) -> None:
    ring = Ring.build(weights, partition_power=power, seed=seed)
    assert _quota_ok(ring)
    for op, node, weight in ops:
        if op == "add" and node not in ring:
            after = ring.add_node(node, weight)
        elif op == "remove" and node in ring and len(ring.nodes()) > 1:
            after = ring.remove_node(node)
        elif op == "weight" and node in ring:
            after = ring.set_weight(node, weight)
        else:
            continue
        assert _quota_ok(after)
        _assert_minimal_change(ring, after)
        ring = after
    assert Ring.from_dict(json.loads(json.dumps(ring.to_dict()))) == ring


@settings(max_examples=100, deadline=None, database=None)
@given(key=st.integers(0, 2**32 - 1), n=st.integers(0, 12))
def test_any_key_maps_to_its_partition_owner_and_distinct_handoffs(key: int, n: int) -> None:
    ring = _SMALL
    partition = ring.partition_for_key(key)
    lo, hi = ring.key_range(partition)
    assert lo <= key < hi
    assert ring.node_for_key(key) == ring.node_for_partition(partition)
    handoffs = ring.nodes_for_partition(partition, n)
    assert len(handoffs) == len(set(handoffs)) == min(n, len(ring.nodes()))
    assert handoffs[:1] == [ring.node_for_key(key)][: min(n, 1)]


_SMALL = Ring.build(range(9), partition_power=8)
