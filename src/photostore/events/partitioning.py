"""Which partition a key goes to, and how a group shares a topic's partitions.

Both are pure functions so every process (and every EventLog backend that chooses to) computes the
same answer from the same inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import xxhash


def partition_for(key: str, partitions: int) -> int:
    """The partition of ``key``: a stable 64-bit hash (xxh3) of its UTF-8 bytes, modulo ``partitions``.

    Stable across processes, machines and Python versions (unlike ``hash()``), so one key always
    lands in one partition and its records keep their order.
    """
    return xxhash.xxh3_64_intdigest(key.encode("utf-8")) % partitions


def assigned_partitions(members: Sequence[str], partitions: int, member: str) -> list[int]:
    """The partitions ``member`` owns among ``members``: round-robin over the sorted member ids.

    Partition ``p`` goes to ``sorted(members)[p % len(members)]``. Every member that reads the same
    member list computes the same, disjoint assignment covering every partition.
    """
    ordered = sorted(set(members))
    if member not in ordered:
        return []
    index = ordered.index(member)
    return list(range(index, partitions, len(ordered)))


def plan_fetch(pending: Sequence[tuple[int, int, int]], max_records: int) -> list[tuple[int, int, int]]:
    """Split a fetch budget fairly between partitions that have records waiting.

    ``pending`` holds ``(partition, position, end_offset)`` in the order partitions should be
    served; the result holds ``(partition, first_offset, stop_offset)`` ranges totalling at most
    ``max_records`` records. Each partition first gets an equal share, then what is left goes to
    partitions with more waiting, in order: a busy partition cannot starve the others.
    """
    if max_records < 1:
        raise ValueError(f"max_records must be >= 1, got {max_records}")
    waiting = [(p, pos, end - pos) for p, pos, end in pending if end > pos]
    if not waiting:
        return []
    share = max(1, max_records // len(waiting))
    takes: list[int] = []
    budget = max_records
    for _, _, avail in waiting:
        take = min(avail, share, budget)
        takes.append(take)
        budget -= take
    for i, (_, _, avail) in enumerate(waiting):
        if budget == 0:
            break
        extra = min(avail - takes[i], budget)
        takes[i] += extra
        budget -= extra
    return [(p, pos, pos + take) for (p, pos, _), take in zip(waiting, takes, strict=True) if take > 0]
