"""The routing view: overrides win, moving ranges, staleness and the on-the-spot refresh."""

from __future__ import annotations

import time

import pytest

from photostore.errors import ShardMoveInProgress
from photostore.placement.shard_map import ShardMap
from photostore.rebalance import routing as routing_module
from photostore.rebalance.routing import Routing, RoutingHolder

MAP = ShardMap.create(4, partition_power=8)


def test_an_override_wins_over_the_map_and_only_for_its_key() -> None:
    key = 123_456
    other = (MAP.shard_for_key(key) + 1) % 4
    view = Routing(MAP, {key: other}, (), 1)
    assert view.shard_for_key(key) == other
    assert view.shard_for_key(key + 1) == MAP.shard_for_key(key + 1)
    assert view.shard_ids() == {0, 1, 2, 3}


def test_is_moving_covers_exactly_the_half_open_ranges() -> None:
    view = Routing(MAP, {}, ((100, 200), (500, 501)), 1)
    assert [view.is_moving(k) for k in (99, 100, 199, 200, 499, 500, 501)] == [
        False,
        True,
        True,
        False,
        False,
        True,
        False,
    ]
    assert not Routing(MAP).is_moving(100)


def test_fences_are_checked_for_moving_keys_and_for_every_key_of_a_stale_view(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    holder = RoutingHolder(Routing(MAP, {}, ((100, 200),), 1))
    assert holder.needs_fence_check(150)
    assert not holder.needs_fence_check(300)
    monkeypatch.setattr(routing_module, "STALE_AFTER_S", 0.0)
    time.sleep(0.01)
    assert holder.is_stale()
    assert holder.needs_fence_check(300)


def test_a_stale_view_is_refreshed_before_it_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    newer = Routing(MAP, {7: 3}, (), 2)
    loads: list[int] = []

    def load() -> Routing:
        loads.append(1)
        return newer

    holder = RoutingHolder(
        Routing(MAP, {}, (), 1), version=lambda: 2, load=load, open_shards=lambda: {0, 1, 2, 3}
    )
    assert holder.shard_for_key(7) == MAP.shard_for_key(7)  # fresh: no refresh, no load
    monkeypatch.setattr(routing_module, "STALE_AFTER_S", 0.0)
    time.sleep(0.01)
    assert holder.shard_for_key(7) == 3
    assert loads == [1]
    assert holder.routing is newer


def test_a_view_naming_a_shard_not_yet_open_answers_retry_later(monkeypatch: pytest.MonkeyPatch) -> None:
    bigger = MAP.with_shard_added(4)
    holder = RoutingHolder(
        Routing(MAP, {}, (), 1),
        version=lambda: 2,
        load=lambda: Routing(bigger, {}, (), 2),
        open_shards=lambda: {0, 1, 2, 3},
    )
    monkeypatch.setattr(routing_module, "STALE_AFTER_S", 0.0)
    time.sleep(0.01)
    with pytest.raises(ShardMoveInProgress):
        holder.shard_for_key(1)
