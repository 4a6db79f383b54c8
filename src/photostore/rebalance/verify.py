"""``photostore verify`` for shards: every user on the shard routing names, and on that one only."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from photostore.rebalance.preview import KeyLoad
from photostore.rebalance.routing import Routing


@dataclass(frozen=True, slots=True)
class Misplaced:
    placement_key: int
    found_on: tuple[int, ...]
    expected: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "problem": "misplaced_user",
            "placement_key": self.placement_key,
            "found_on": list(self.found_on),
            "expected": self.expected,
        }


def check_shards(
    routing: Routing, loads_by_shard: Iterable[tuple[int, list[KeyLoad]]]
) -> tuple[int, list[Misplaced]]:
    """(users checked, problems): a key found anywhere but where routing says, or on two shards."""
    found: dict[int, list[int]] = {}
    users = 0
    for shard_id, loads in loads_by_shard:
        for load in loads:
            users += load.users
            found.setdefault(load.placement_key, []).append(shard_id)
    problems = [
        Misplaced(key, tuple(sorted(shards)), routing.shard_for_key(key))
        for key, shards in sorted(found.items())
        if shards != [routing.shard_for_key(key)]
    ]
    return users, problems
