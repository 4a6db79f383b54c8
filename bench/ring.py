"""Placement: our partition ring beside ``uhashring.HashRing`` (md5, 160 vnodes a node), 1024 shards.

Reports, in one run on the same nodes and the same keys: lookups per second (median of several runs)
and their ratio; max/mean share of the hash space; max/mean users per shard for 1,000,000 random user
ids, beside the limit of exact 1/N key ranges (random keys alone give ~1.10); and the users moved by
adding one shard, over the ideal 1/(N+1).

    .venv/bin/python -m bench.ring [--shards 1024] [--users 1000000] [--lookups 200000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from uhashring import HashRing

from bench.report import write_result
from photostore.ids import new_user_id, placement_key_of
from photostore.placement.ring import Ring
from photostore.placement.shard_map import ShardMap
from photostore.settings import PlacementSettings

POWER = PlacementSettings().partition_power


def _lookups_per_s(lookup: Callable[[Any], object], keys: Sequence[Any], runs: int) -> float:
    """The median over ``runs`` of keys looked up per second, one plain loop per run."""
    rates = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        for key in keys:
            lookup(key)
        rates.append(len(keys) / (time.perf_counter() - start))
    return statistics.median(rates)


def _max_over_mean(counts: Sequence[float]) -> float:
    return max(counts) / (sum(counts) / len(counts))


def _uhashring_shares(peer: HashRing) -> list[float]:
    """Each node's share of md5's 2**128 circle: a point owns the arc that ends at it."""
    points = peer.get_points()
    owned: Counter[str] = Counter()
    previous = points[-1][0] - 2**128
    for position, node in points:
        owned[node] += position - previous
        previous = position
    return [float(v) for v in owned.values()]


def _moved(before: Sequence[object], after: Sequence[object], new_node: object) -> tuple[float, float]:
    """(fraction of keys whose node changed, fraction of those that went to ``new_node``)."""
    moved = [b for a, b in zip(before, after, strict=True) if a != b]
    return len(moved) / len(before), sum(1 for b in moved if b == new_node) / max(1, len(moved))


def run(shards: int, users: int, lookups: int, runs: int) -> str:
    names = [f"shard-{i}" for i in range(shards)]
    t0 = time.perf_counter()
    ring = Ring.build(names, partition_power=POWER)
    t1 = time.perf_counter()
    peer = HashRing(nodes=names)
    t2 = time.perf_counter()
    ours_build_ms, peer_build_ms = (t1 - t0) * 1000, (t2 - t1) * 1000

    user_ids = [new_user_id() for _ in range(users)]
    keys = [str(u) for u in user_ids[:lookups]]
    ours_rate = _lookups_per_s(ring.node_for, keys, runs)
    peer_rate = _lookups_per_s(peer.get_node, keys, runs)
    shard_map = ShardMap.create(shards, partition_power=POWER)
    id_rate = _lookups_per_s(shard_map.shard_for_id, user_ids[:lookups], runs)

    ours_space = _max_over_mean([ring.share(n) for n in ring.nodes()])
    peer_space = _max_over_mean(_uhashring_shares(peer))

    # Users per shard. Ours places by the id's placement key; the peer hashes the id's text; the
    # limit cuts the same placement keys into exact 1/N ranges (perfect ranges, random keys).
    ours_before = [shard_map.shard_for_id(u) for u in user_ids]
    peer_before = [peer.get_node(str(u)) for u in user_ids]
    exact = Counter(placement_key_of(u) * shards >> 32 for u in user_ids)
    ours_users = _max_over_mean(list(Counter(ours_before).values()))
    peer_users = _max_over_mean(list(Counter(peer_before).values()))
    limit_users = _max_over_mean(list(exact.values()))

    grown = shard_map.with_shard_added(shards)
    peer.add_node(f"shard-{shards}")
    ideal = 1 / (shards + 1)
    ours_moved, ours_to_new = _moved(ours_before, [grown.shard_for_id(u) for u in user_ids], shards)
    peer_moved, peer_to_new = _moved(
        peer_before, [peer.get_node(str(u)) for u in user_ids], f"shard-{shards}"
    )

    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    rows = [
        ("lookups/s, str key (median)", f"{ours_rate:,.0f}", f"{peer_rate:,.0f}", ""),
        ("lookup speed, ours / uhashring", f"{ours_rate / peer_rate:.1f}x", "1.0x", ">= 5x"),
        ("lookups/s, user id -> shard (ShardMap)", f"{id_rate:,.0f}", "", ""),
        ("max/mean share of hash space", f"{ours_space:.3f}", f"{peer_space:.3f}", "<= 1.05"),
        (f"max/mean users per shard ({users:,} users)", f"{ours_users:.3f}", f"{peer_users:.3f}", "<= 1.12"),
        ("  limit: exact 1/N key ranges, same users", f"{limit_users:.3f}", "", ""),
        (
            "users moved by adding a shard / (1/(N+1))",
            f"{ours_moved / ideal:.3f}",
            f"{peer_moved / ideal:.3f}",
            "<= 1.1",
        ),
        ("  of the moved users, share to the new shard", f"{ours_to_new:.1%}", f"{peer_to_new:.1%}", "100%"),
        ("build time (ms)", f"{ours_build_ms:,.0f}", f"{peer_build_ms:,.0f}", ""),
    ]
    verdicts = {
        1: ours_rate / peer_rate >= 5,
        3: ours_space <= 1.05,
        4: ours_users <= 1.12,
        6: ours_moved / ideal <= 1.1,
        7: ours_to_new == 1.0,
    }
    lines = [
        f"Placement ring, {shards} shards, partition power {POWER} ({1 << POWER:,} partitions), "
        f"{lookups:,} lookup keys x {runs} runs, {users:,} user ids. `.venv/bin/python -m bench.ring`",
        "",
        "| metric | photostore Ring | uhashring.HashRing | goal | met |",
        "|---|---:|---:|---:|:---:|",
    ]
    for i, (metric, ours, theirs, goal) in enumerate(rows):
        verdict = met(verdicts[i]) if i in verdicts else ""
        lines.append(f"| {metric} | {ours} | {theirs} | {goal} | {verdict} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shards", type=int, default=1024)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    table = run(args.shards, args.users, min(args.lookups, args.users), args.runs)
    print(table)
    print(f"\nwritten to {write_result('ring', table)}")


if __name__ == "__main__":
    main()
