"""A consistent-hash ring in the style of OpenStack Swift: a fixed partition space and a precomputed table.

The 32-bit key space is cut into ``2**power`` equal partitions (the ring's virtual nodes). A table maps
each partition to a node, so a lookup is a shift and two indexings, O(1) whatever the node count::

    node = nodes[table[key32 >> (32 - power)]]

Guarantees
    Balance
        Every node owns the floor or the ceiling of its quota ``2**power * weight / total_weight``
        (largest-remainder apportionment), so ``|owned - quota| < 1`` partition.
    Minimal movement
        ``add_node``, ``remove_node`` and ``set_weight`` take only the surplus partitions of nodes that
        now own more than their target and hand them to nodes that own fewer. No node both gains and
        loses, and no partition moves that the new targets do not require. When rounding leaves a
        choice, a node that already owns the extra partition keeps it. Adding one node of equal weight
        to N moves about 1/(N+1) of the partitions, every one of them to the new node.
    Determinism
        A built ring is a pure function of (power, seed, node set, weights); a changed ring is a pure
        function of the ring it came from and the change. Only xxhash and integer arithmetic decide,
        never ``random``, so tables agree across processes, Python versions and platforms.
    Immutability
        A ``Ring`` never changes; every change returns a new ``Ring``, which keeps versioning trivial.

Keys are hashed without a salt: the callers' keys (random placement keys, server-made photo ids) are not
chosen by clients, so nobody can aim at one partition.
"""

from __future__ import annotations

import base64
import math
import sys
import zlib
from array import array
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Any, Generic, TypeVar

from xxhash import xxh3_64_intdigest

NodeT = TypeVar("NodeT", str, int)

MIN_POWER = 1
MAX_POWER = 24  # 16M partitions: a 32 MiB table and ~20 s to build (power 16: ~50 ms)
_KEY_LIMIT = 1 << 32
_SEED_LIMIT = 1 << 64
_TYPECODE = "H"  # node indices: up to 65,535 nodes, 2 bytes a partition
_MAX_NODES = (1 << 16) - 1
FORMAT = "photostore.ring/1"

if array(_TYPECODE).itemsize != 2:  # pragma: no cover - every mainstream platform has 2-byte shorts
    raise ImportError("array('H') is not 2 bytes on this platform")


def hash_key(data: str | bytes) -> int:
    """The 32-bit ring key of ``data``: the top 32 bits of xxh3-64 (str is hashed as UTF-8)."""
    raw = data.encode() if isinstance(data, str) else data
    return xxh3_64_intdigest(raw) >> 32


@lru_cache(maxsize=4)  # the order is reused by every change of a ring
def _partition_order(power: int, seed: int) -> tuple[int, ...]:
    """A seeded permutation of the partitions: the order in which partitions are dealt and given up."""
    return tuple(sorted(range(1 << power), key=lambda p: xxh3_64_intdigest(p.to_bytes(4, "little"), seed)))


def _targets(partitions: int, weights: Sequence[float], counts: Sequence[int]) -> list[int]:
    """Partitions each node should own: floor or ceiling of its exact quota, summing to ``partitions``.

    Largest remainder decides who gets the ceiling, except that nodes already owning at least the
    ceiling come first: each such choice saves one move and balance is the same either way.
    """
    total = sum(Fraction(w) for w in weights)
    quotas = [partitions * Fraction(w) / total for w in weights]
    targets = [math.floor(q) for q in quotas]
    extra = partitions - sum(targets)
    candidates = [i for i, q in enumerate(quotas) if q != targets[i]]
    candidates.sort(key=lambda i: (counts[i] <= targets[i], targets[i] - quotas[i], i))
    for i in candidates[:extra]:
        targets[i] += 1
    return targets


def _owned(owners: Sequence[int], node_count: int) -> list[int]:
    """Partitions owned by each node index; negative owners (unowned partitions) are skipped."""
    counts = [0] * node_count
    for owner in owners:
        if owner >= 0:
            counts[owner] += 1
    return counts


def _deal(
    power: int, seed: int, owners: list[int], counts: Sequence[int], targets: Sequence[int]
) -> array[int]:
    """Move the fewest partitions so that node ``i`` owns ``targets[i]``; ``owners[p] < 0`` is unowned.

    Over-target nodes give up their partitions that come first in the seeded order; the freed
    partitions, still in that order, fill the under-target nodes in node order.
    """
    surplus = [max(0, c - t) for c, t in zip(counts, targets, strict=True)]
    freed: list[int] = []
    for p in _partition_order(power, seed):
        owner = owners[p]
        if owner < 0:
            freed.append(p)
        elif surplus[owner]:
            surplus[owner] -= 1
            freed.append(p)
    it = iter(freed)
    for node, (count, target) in enumerate(zip(counts, targets, strict=True)):
        for _ in range(target - count):
            owners[next(it)] = node
    return array(_TYPECODE, owners)


def _check_weight(weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise TypeError(f"weight must be a number, got {weight!r}")
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"weight must be finite and >= 0, got {weight!r}")
    return float(weight)


def _check_shape(power: int, seed: int, node_count: int) -> None:
    if not MIN_POWER <= power <= MAX_POWER:
        raise ValueError(f"partition power must be in [{MIN_POWER}, {MAX_POWER}], got {power}")
    if not 0 <= seed < _SEED_LIMIT:
        raise ValueError(f"seed must be an unsigned 64-bit integer, got {seed}")
    if node_count < 1:
        raise ValueError("a ring needs at least one node")
    if node_count > min(_MAX_NODES, 1 << power):
        raise ValueError(f"{node_count} nodes do not fit {1 << power} partitions; raise the partition power")


def _check_nodes(nodes: Sequence[Any]) -> None:
    kinds = {type(n) for n in nodes}
    if not kinds <= {str, int} or len(kinds) > 1:
        raise TypeError(f"node ids must be all str or all int, got types {sorted(k.__name__ for k in kinds)}")
    if len(set(nodes)) != len(nodes):
        raise ValueError("node ids must be unique")


class Ring(Generic[NodeT]):
    """An immutable partition ring; build one with :meth:`build`, change it with the ``*_node`` methods.

    Node ids are all ``str`` or all ``int`` (JSON-able). ``nodes()`` lists them sorted.
    """

    __slots__ = (
        "_counts",
        "_hash",
        "_index",
        "_nodes",
        "_owning",
        "_power",
        "_seed",
        "_shift",
        "_table",
        "_weights",
    )

    def __init__(
        self, power: int, seed: int, nodes: Sequence[NodeT], weights: Sequence[float], table: array[int]
    ) -> None:
        """Wrap a finished table. Prefer :meth:`build` and :meth:`from_dict`; this only validates."""
        _check_shape(power, seed, len(nodes))
        _check_nodes(nodes)
        if list(nodes) != sorted(nodes):
            raise ValueError("nodes must be sorted")
        if len(weights) != len(nodes):
            raise ValueError("one weight per node is required")
        checked = tuple(_check_weight(w) for w in weights)
        if sum(checked) <= 0:
            raise ValueError("at least one node needs a positive weight")
        if table.typecode != _TYPECODE or len(table) != 1 << power:
            raise ValueError(f"the table must be array('{_TYPECODE}') of {1 << power} entries")
        if max(table) >= len(nodes):
            raise ValueError("the table names a node index that does not exist")
        self._power = power
        self._shift = 32 - power
        self._seed = seed
        self._nodes: tuple[NodeT, ...] = tuple(nodes)
        self._weights = checked
        self._index: dict[NodeT, int] = {node: i for i, node in enumerate(self._nodes)}
        self._table = table
        counts = _owned(table, len(nodes))
        self._counts: tuple[int, ...] = tuple(counts)
        self._owning = sum(1 for c in counts if c)
        self._hash: int | None = None

    # --- construction -----------------------------------------------------------------------------

    @classmethod
    def build(
        cls, nodes: Mapping[NodeT, float] | Iterable[NodeT], *, partition_power: int = 16, seed: int = 0
    ) -> Ring[NodeT]:
        """A balanced ring over ``nodes`` (ids, or a mapping id -> weight; plain ids weigh 1.0).

        The partitions are spread over the nodes by a permutation seeded with ``seed``; the node order
        given does not matter.
        """
        weighted = dict(nodes) if isinstance(nodes, Mapping) else dict.fromkeys(nodes, 1.0)
        _check_nodes(list(weighted))
        ordered = sorted(weighted)
        return cls._dealt(partition_power, seed, ordered, [weighted[n] for n in ordered], None)

    @classmethod
    def _dealt(
        cls, power: int, seed: int, nodes: list[NodeT], weights: list[float], old: Ring[NodeT] | None
    ) -> Ring[NodeT]:
        """A ring over ``nodes`` dealt from ``old`` (or from nothing) with the fewest moves."""
        _check_shape(power, seed, len(nodes))
        checked = [_check_weight(w) for w in weights]
        if sum(checked) <= 0:
            raise ValueError("at least one node needs a positive weight")
        if old is None:
            owners = [-1] * (1 << power)
        else:
            new_index = {node: i for i, node in enumerate(nodes)}
            remap = [new_index.get(node, -1) for node in old._nodes]
            owners = [remap[o] for o in old._table]
        counts = _owned(owners, len(nodes))
        table = _deal(power, seed, owners, counts, _targets(1 << power, checked, counts))
        return cls(power, seed, nodes, checked, table)

    def _changed(self, weights: dict[NodeT, float]) -> Ring[NodeT]:
        ordered = sorted(weights)
        return self._dealt(self._power, self._seed, ordered, [weights[n] for n in ordered], self)

    def add_node(self, node: NodeT, weight: float = 1.0) -> Ring[NodeT]:
        """A new ring with ``node`` added; only partitions that go to ``node`` move.

        Raises ValueError if ``node`` is already on the ring.
        """
        if node in self._index:
            raise ValueError(f"node {node!r} is already on the ring")
        _check_nodes([*self._nodes[:1], node])
        return self._changed({**self.weights(), node: weight})

    def remove_node(self, node: NodeT) -> Ring[NodeT]:
        """A new ring without ``node``; only its partitions move. KeyError if unknown."""
        weights = self.weights()
        if node not in weights:
            raise KeyError(f"node {node!r} is not on the ring")
        del weights[node]
        if not weights:
            raise ValueError("cannot remove the last node")
        return self._changed(weights)

    def set_weight(self, node: NodeT, weight: float) -> Ring[NodeT]:
        """A new ring with ``node`` reweighted; a weight of 0 drains the node but keeps it listed."""
        weights = self.weights()
        if node not in weights:
            raise KeyError(f"node {node!r} is not on the ring")
        weights[node] = weight
        return self._changed(weights)

    # --- lookups ----------------------------------------------------------------------------------

    def partition_for_key(self, key32: int) -> int:
        """The partition of a 32-bit key: its top ``power`` bits."""
        if not 0 <= key32 < _KEY_LIMIT:
            raise ValueError(f"key {key32} is not a 32-bit unsigned integer")
        return key32 >> self._shift

    def partition_for(self, data: str | bytes) -> int:
        return hash_key(data) >> self._shift

    def node_for_key(self, key32: int) -> NodeT:
        """The node owning a 32-bit key (already uniform, e.g. a placement key): O(1)."""
        if not 0 <= key32 < _KEY_LIMIT:
            raise ValueError(f"key {key32} is not a 32-bit unsigned integer")
        return self._nodes[self._table[key32 >> self._shift]]

    def node_for(self, data: str | bytes) -> NodeT:
        """The node owning ``data``, hashed with xxh3-64 (str as UTF-8): O(1)."""
        raw = data.encode() if isinstance(data, str) else data
        # Top 32 bits, then top ``power`` of those: one shift of the 64-bit digest.
        return self._nodes[self._table[xxh3_64_intdigest(raw) >> (self._shift + 32)]]

    def node_for_partition(self, partition: int) -> NodeT:
        return self._nodes[self._table[partition]]

    def nodes_for(self, data: str | bytes, n: int) -> list[NodeT]:
        """Up to ``n`` distinct nodes for ``data``, primary first, then the handoff order.

        The handoff order walks the partitions after the primary one and takes each new owner, as
        Swift's handoffs do; since partitions are spread at random, a failed node's load spreads over
        many nodes instead of falling on one neighbour.
        """
        return self.nodes_for_partition(self.partition_for(data), n)

    def nodes_for_partition(self, partition: int, n: int) -> list[NodeT]:
        """Up to ``n`` distinct nodes: the owner of ``partition``, then the owners of the ones after it."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        table, size = self._table, len(self._table)
        if not 0 <= partition < size:
            raise ValueError(f"no partition {partition}")
        want = min(n, self._owning)
        found: dict[int, None] = {}  # insertion-ordered set
        p = partition
        while len(found) < want:
            found.setdefault(table[p])
            p = (p + 1) % size
        return [self._nodes[i] for i in found]

    def key_range(self, partition: int) -> tuple[int, int]:
        """The 32-bit keys of a partition, as a half-open range ``[lo, hi)``."""
        if not 0 <= partition < len(self._table):
            raise ValueError(f"no partition {partition}")
        return partition << self._shift, (partition + 1) << self._shift

    # --- description ------------------------------------------------------------------------------

    @property
    def partition_power(self) -> int:
        return self._power

    @property
    def partition_count(self) -> int:
        return len(self._table)

    @property
    def seed(self) -> int:
        return self._seed

    def nodes(self) -> tuple[NodeT, ...]:
        """Every node id on the ring, sorted (a node of weight 0 is listed but owns nothing)."""
        return self._nodes

    def weights(self) -> dict[NodeT, float]:
        return dict(zip(self._nodes, self._weights, strict=True))

    def partition_counts(self) -> dict[NodeT, int]:
        return dict(zip(self._nodes, self._counts, strict=True))

    def share(self, node: NodeT) -> float:
        """The fraction of partitions (and so of the key space) ``node`` owns. KeyError if unknown."""
        if node not in self._index:
            raise KeyError(f"node {node!r} is not on the ring")
        return self._counts[self._index[node]] / len(self._table)

    def __contains__(self, node: object) -> bool:
        return node in self._index

    def blend(self, target: Ring[NodeT], partitions: Iterable[int]) -> Ring[NodeT]:
        """This ring with ``partitions`` already handed to their owners in ``target``: the ring in
        force half-way through a rebalance. Nodes are both rings' (a node only this ring has weighs 0)."""
        if target._power != self._power or target._seed != self._seed:
            raise ValueError("only rings of one partition power and seed can be blended")
        nodes = sorted(set(self._nodes) | set(target._nodes))
        index = {node: i for i, node in enumerate(nodes)}
        weights = target.weights()
        owners = array(_TYPECODE, (index[self._nodes[o]] for o in self._table))
        for p in partitions:
            owners[p] = index[target._nodes[target._table[p]]]
        return Ring(self._power, self._seed, nodes, [weights.get(node, 0.0) for node in nodes], owners)

    def moved_partitions(self, other: Ring[NodeT]) -> list[int]:
        """Partitions whose owner differs between the two rings (same partition power required)."""
        if other._power != self._power:
            raise ValueError("rings of different partition powers cannot be compared")
        to_self = [self._index.get(node, -1) for node in other._nodes]
        return [p for p, (a, b) in enumerate(zip(self._table, other._table, strict=True)) if a != to_self[b]]

    # --- value semantics and serialisation --------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ring):
            return NotImplemented
        return (self._power, self._seed, self._nodes, self._weights, self._table) == (
            other._power,
            other._seed,
            other._nodes,
            other._weights,
            other._table,
        )

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash((self._power, self._seed, self._nodes, self._weights, self._table.tobytes()))
        return self._hash

    def __repr__(self) -> str:
        return f"Ring(power={self._power}, seed={self._seed}, nodes={len(self._nodes)})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; ``Ring.from_dict(r.to_dict()) == r``.

        The table is stored as base64 of zlib of little-endian uint16 node indices.
        """
        table = array(_TYPECODE, self._table)
        if sys.byteorder == "big":  # pragma: no cover - the stored form is little-endian everywhere
            table.byteswap()
        return {
            "format": FORMAT,
            "partition_power": self._power,
            "seed": self._seed,
            "nodes": list(self._nodes),
            "weights": list(self._weights),
            "table": base64.b64encode(zlib.compress(table.tobytes(), 9)).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ring[Any]:
        """Rebuild a ring from :meth:`to_dict` output; ValueError if it is malformed."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a ring of format {FORMAT!r}: {data.get('format')!r}")
        try:
            power, seed = int(data["partition_power"]), int(data["seed"])
            nodes, weights = list(data["nodes"]), list(data["weights"])
            raw = zlib.decompress(base64.b64decode(data["table"], validate=True))
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise ValueError(f"malformed ring: {exc}") from exc
        if not MIN_POWER <= power <= MAX_POWER or len(raw) != 2 << power:
            raise ValueError("the ring table does not match its partition power")
        table = array(_TYPECODE)
        table.frombytes(raw)
        if sys.byteorder == "big":  # pragma: no cover
            table.byteswap()
        try:
            return cls(power, seed, nodes, weights, table)
        except TypeError as exc:
            raise ValueError(f"malformed ring: {exc}") from exc
