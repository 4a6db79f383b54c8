"""Placement at the spec's target scale, on paper: the real ring and ids, a sample, and scaling laws.

``photostore simulate placement`` answers: with N users (the spec's 1e9), S metadata shards and B buckets,
how uneven is the load, and what does adding a shard move? Nothing is stubbed. The shard map, the bucket
map and the rebuilt ring after ``AddShard`` are the service's own (:class:`ShardMap`, :class:`BucketMap`,
:meth:`ShardMap.with_shard_added`, version 1 built as the service builds it at first start), and every
sampled user and photo gets a real id from :func:`photostore.ids.make_id`.

Method
    1. Sample ``sample`` users. Each gets a seeded random placement key and a user id that carries it,
       and a photo count from a Zipf law truncated to ``1 .. max_photos`` (P(k) ~ k**-zipf). A user's
       shard, before and after one shard is added, is looked up from the id. Every photo row lives on
       its owner's shard, so a shard's rows are the sum of its users' photo counts.
    2. Sample as many photos as users: each picks an owner in proportion to the owner's photo count,
       gets a photo id from the owner's placement key (as at upload) and is placed on the bucket map.
    3. Count, per shard, users and rows; per bucket, objects. Bytes are rows or objects times the mean
       photo size: sizes vary, but over the millions of photos of one shard or bucket only the mean is
       left.
    4. Scale to N. A sample of 200,000 users over 1024 shards puts ~200 users on each, so its max/mean
       is mostly sampling noise; with 1e9 users each shard holds ~1e6 and the noise shrinks by
       sqrt(N / sample). A node's load is a sum of many independent placements, so at full scale it is
       normal with mean ``total * share`` (``share`` from the real ring table) and variance
       ``dispersion * total * share * (1 - share)``. The dispersion index is measured on the sample,
       per load kind: about 1 for users and objects (independent, uniform placements), and about
       E[k**2] / E[k] for rows, because a user's photos all land on one shard. Measuring it, rather
       than assuming it, means a placement that clumped (say, all of a user's photos in one bucket)
       would show at full scale too. One seeded draw per node gives the full-scale loads.
    5. Adding a shard: the sample gives the fraction of users and rows whose shard changed. At full
       scale users are uniform over the key space, so the expected fraction is the key space the
       rebuilt ring moves; the draw of step 4 adds the noise, with the same dispersions.

Every figure "at scale" is an estimate from the sample; the sample's own figures are kept beside them.
When ``sample == users`` the sampled users are the whole population: their shard figures are not
extrapolated (bucket figures still are, from the photo sample).
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from photostore.ids import make_id, placement_key_of
from photostore.placement.bucket_map import BucketMap
from photostore.placement.shard_map import ShardMap
from photostore.settings import PlacementSettings

DEFAULT_SAMPLE = 200_000
DEFAULT_ZIPF = 1.1
DEFAULT_MAX_PHOTOS = 100_000
DEFAULT_MEAN_PHOTO_BYTES = 3_000_000
MAX_SAMPLE = 5_000_000  # about a minute and a few hundred MB; more adds nothing to the estimates
MAX_PHOTOS_LIMIT = 1_000_000  # the Zipf table holds one float per possible count
# Ids carry their creation time; a fixed ten-year window keeps runs reproducible (2016-01-01 onwards).
_EPOCH_MS = 1_451_606_400_000
_SPAN_MS = 10 * 365 * 86_400_000
_PROGRESS_EVERY = 4096

Progress = Callable[[int, int], None]
"""Called with (items done, items in all) as the sample is drawn."""


@dataclass(frozen=True)
class Params:
    """What was simulated (placement settings as the service's defaults)."""

    users: int
    shards: int
    buckets: int
    sample: int
    zipf: float
    max_photos: int
    mean_photo_bytes: int
    seed: int
    partition_power: int

    @property
    def scale(self) -> float:
        """Real users per sampled user."""
        return self.users / self.sample


@dataclass(frozen=True)
class Spread:
    """One kind of load (users, rows or objects) over the nodes of one map, in node order."""

    sample: tuple[int, ...]
    at_scale: tuple[float, ...]  # estimated for the full population
    dispersion: float  # per-node variance over its expected load, relative to independent placement

    @property
    def sample_max_over_mean(self) -> float:
        return max_over_mean(self.sample)

    @property
    def max_over_mean(self) -> float:
        return max_over_mean(self.at_scale)

    @property
    def mean(self) -> float:
        return sum(self.at_scale) / len(self.at_scale)

    def to_dict(self, unit: float = 1.0) -> dict[str, float]:
        """Summary figures; ``unit`` converts counts (rows, objects) to bytes."""
        return {
            "mean": self.mean * unit,
            "max_over_mean": self.max_over_mean,
            "sample_mean": sum(self.sample) / len(self.sample) * unit,
            "sample_max_over_mean": self.sample_max_over_mean,
            "dispersion": self.dispersion,
        }


@dataclass(frozen=True)
class ShardAdded:
    """What adding one shard (S -> S + 1) moves, as fractions of all users and of all rows."""

    shard_id: int
    ideal: float  # 1 / (S + 1)
    key_space: float  # the part of the key space the rebuilt ring gives the new shard (exact)
    users_sample: float
    rows_sample: float
    users: float  # estimated at full scale
    rows: float
    only_to_new_shard: bool  # every sampled user that moved went to the new shard

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "users_over_ideal": self.users / self.ideal,
            "rows_over_ideal": self.rows / self.ideal,
            "users_sample_over_ideal": self.users_sample / self.ideal,
            "rows_sample_over_ideal": self.rows_sample / self.ideal,
        }


@dataclass(frozen=True)
class PhotosPerUser:
    """The sampled photo counts."""

    mean: float
    median: int
    p99: int
    max: int


@dataclass(frozen=True)
class PlacementSimulation:
    params: Params
    photos_per_user: PhotosPerUser
    sample_photos: int  # rows of the sampled users
    shard_users: Spread
    shard_rows: Spread
    bucket_objects: Spread  # over the photo sample (``params.sample`` photos)
    added: ShardAdded

    @property
    def total_photos(self) -> float:
        """Estimated photos of all ``users``."""
        return self.sample_photos * self.params.scale

    @property
    def total_bytes(self) -> float:
        return self.total_photos * self.params.mean_photo_bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON-able figures; ``estimate`` and every ``mean``/``max_over_mean`` are for the full scale."""
        unit = self.params.mean_photo_bytes
        return {
            "params": asdict(self.params),
            "photos_per_user": asdict(self.photos_per_user),
            "sample": {
                "users": self.params.sample,
                "photos": self.sample_photos,
                "bytes": self.sample_photos * unit,
            },
            "estimate": {"users": self.params.users, "photos": self.total_photos, "bytes": self.total_bytes},
            "shards": {
                "users": self.shard_users.to_dict(),
                "rows": self.shard_rows.to_dict(),
                "bytes": self.shard_rows.to_dict(unit),
            },
            "buckets": {"objects": self.bucket_objects.to_dict(), "bytes": self.bucket_objects.to_dict(unit)},
            "add_shard": {
                **self.added.to_dict(),
                "users_moved": self.added.users * self.params.users,
                "bytes_moved": self.added.rows * self.total_bytes,
            },
        }


def max_over_mean(loads: Sequence[float]) -> float:
    """The busiest node's load over the mean load (1.0 is perfect balance; 1.0 when all are empty)."""
    total = sum(loads)
    return max(loads) * len(loads) / total if total else 1.0


def simulate_placement(
    users: int,
    shards: int,
    buckets: int,
    *,
    sample: int = DEFAULT_SAMPLE,
    zipf: float = DEFAULT_ZIPF,
    max_photos: int = DEFAULT_MAX_PHOTOS,
    mean_photo_bytes: int = DEFAULT_MEAN_PHOTO_BYTES,
    seed: int = 0,
    progress: Progress | None = None,
) -> PlacementSimulation:
    """Simulate ``users`` users on ``shards`` shards and ``buckets`` buckets (see the module docstring).

    A pure function of its arguments (``progress`` only reports). ValueError names a bad argument.
    """
    defaults = PlacementSettings()
    params = Params(
        users, shards, buckets, sample, zipf, max_photos, mean_photo_bytes, seed, defaults.partition_power
    )
    _check(params)
    # The maps come first: a ring that cannot hold the nodes fails before any sampling.
    shard_map = ShardMap.create(shards, partition_power=params.partition_power)
    grown = shard_map.with_shard_added(shard_map.next_shard_id)
    bucket_map = BucketMap.create(
        buckets, prefix=defaults.bucket_prefix, partition_power=params.partition_power
    )
    rng = random.Random(seed)
    report = progress or (lambda done, total: None)

    keys, photos, before, after = _sample_users(params, shard_map, grown, rng, report)
    objects = _sample_photos(params, bucket_map, keys, photos, rng, report)
    sample_photos = sum(photos)

    shard_shares = [shard_map.share(s) for s in shard_map.shard_ids]
    shard_users = _spread(_counts(before, shards), shard_shares, params.scale, rng)
    shard_rows = _spread(_counts(before, shards, photos), shard_shares, params.scale, rng)
    bucket_shares = [bucket_map.share(b) for b in bucket_map.buckets]
    bucket_objects = _spread(objects, bucket_shares, sample_photos * params.scale / sample, rng)

    new_shard = grown.shard_ids[-1]
    moved = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]
    users_sample = len(moved) / sample
    rows_sample = sum(photos[i] for i in moved) / sample_photos
    key_space = shard_map.moved_keys_fraction(grown)
    added = ShardAdded(
        shard_id=new_shard,
        ideal=1 / (shards + 1),
        key_space=key_space,
        users_sample=users_sample,
        rows_sample=rows_sample,
        # A sample of everyone is the answer itself; otherwise draw the full-scale share that moves.
        users=users_sample if params.scale == 1 else _moved_at_scale(shard_users, key_space, rng),
        rows=rows_sample if params.scale == 1 else _moved_at_scale(shard_rows, key_space, rng),
        only_to_new_shard=all(after[i] == new_shard for i in moved),
    )
    return PlacementSimulation(
        params, _photo_stats(photos), sample_photos, shard_users, shard_rows, bucket_objects, added
    )


def _check(p: Params) -> None:
    partitions = 1 << p.partition_power
    checks = [
        (p.users >= 1, f"users must be >= 1, got {p.users}"),
        (1 <= p.shards < partitions, f"shards must be 1 .. {partitions - 1} (one is added), got {p.shards}"),
        (1 <= p.buckets <= partitions, f"buckets must be 1 .. {partitions}, got {p.buckets}"),
        (1 <= p.sample <= MAX_SAMPLE, f"sample must be 1 .. {MAX_SAMPLE:,}, got {p.sample}"),
        (p.sample <= p.users, f"sample ({p.sample}) cannot exceed users ({p.users})"),
        (math.isfinite(p.zipf) and p.zipf > 0, f"zipf exponent must be a finite number > 0, got {p.zipf}"),
        (
            1 <= p.max_photos <= MAX_PHOTOS_LIMIT,
            f"max photos must be 1 .. {MAX_PHOTOS_LIMIT:,}, got {p.max_photos}",
        ),
        (p.mean_photo_bytes >= 1, f"mean photo bytes must be >= 1, got {p.mean_photo_bytes}"),
        (p.seed >= 0, f"seed must be >= 0, got {p.seed}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def _new_id(placement_key: int, rng: random.Random) -> uuid.UUID:
    """An id as the service makes one, with the clock and the random bits drawn from ``rng``."""
    return make_id(placement_key, _EPOCH_MS + rng.randrange(_SPAN_MS), rng.getrandbits(42))


def _sample_users(
    p: Params, shard_map: ShardMap, grown: ShardMap, rng: random.Random, report: Progress
) -> tuple[list[int], list[int], list[int], list[int]]:
    """Per sampled user: placement key, photo count, shard now, shard after one is added."""
    total = 2 * p.sample  # users, then as many photos
    cdf = list(itertools.accumulate(k**-p.zipf for k in range(1, p.max_photos + 1)))
    keys, photos, before, after = [], [], [], []
    for i in range(p.sample):
        user_id = _new_id(rng.getrandbits(32), rng)
        keys.append(placement_key_of(user_id))
        photos.append(bisect.bisect_left(cdf, rng.random() * cdf[-1]) + 1)
        before.append(shard_map.shard_for_id(user_id))
        after.append(grown.shard_for_id(user_id))
        if i % _PROGRESS_EVERY == 0:
            report(i, total)
    return keys, photos, before, after


def _sample_photos(
    p: Params, bucket_map: BucketMap, keys: list[int], photos: list[int], rng: random.Random, report: Progress
) -> list[int]:
    """Objects per bucket (in bucket order) of ``p.sample`` photos of the sampled users."""
    index = {name: i for i, name in enumerate(bucket_map.buckets)}
    objects = [0] * len(index)
    owners = rng.choices(keys, cum_weights=list(itertools.accumulate(photos)), k=p.sample)
    for i, key in enumerate(owners):
        objects[index[bucket_map.bucket_for(_new_id(key, rng))]] += 1
        if i % _PROGRESS_EVERY == 0:
            report(p.sample + i, 2 * p.sample)
    report(2 * p.sample, 2 * p.sample)
    return objects


def _counts(nodes: list[int], size: int, weights: list[int] | None = None) -> list[int]:
    """Per node ``0 .. size - 1``: how many items (or how much ``weights``) it got."""
    counts = [0] * size
    for i, node in enumerate(nodes):
        counts[node] += 1 if weights is None else weights[i]
    return counts


def _dispersion(counts: Sequence[int], shares: Sequence[float]) -> float:
    """Pearson's chi-square over its degrees of freedom: 1 for independent placements in ``shares``."""
    total = sum(counts)
    if len(counts) < 2 or not total:
        return 0.0
    chi2 = sum((c - total * s) ** 2 / (total * s) for c, s in zip(counts, shares, strict=True) if s)
    return chi2 / (len(counts) - 1)


def _draw(expected: float, share: float, dispersion: float, rng: random.Random) -> float:
    """One node's load at full scale: normal by the central limit theorem, never below zero."""
    return max(0.0, rng.gauss(expected, math.sqrt(dispersion * expected * (1 - share))))


def _spread(counts: list[int], shares: list[float], scale: float, rng: random.Random) -> Spread:
    """Sample counts and their full-scale estimate, ``scale`` times as many placements in all."""
    dispersion = _dispersion(counts, shares)
    if scale == 1:  # the sample is the whole population
        return Spread(tuple(counts), tuple(map(float, counts)), dispersion)
    total = sum(counts) * scale
    at_scale = tuple(_draw(total * s, s, dispersion, rng) for s in shares)
    return Spread(tuple(counts), at_scale, dispersion)


def _moved_at_scale(spread: Spread, key_space: float, rng: random.Random) -> float:
    """The fraction of a full-scale load on the ``key_space`` that moves, drawn as in :func:`_spread`."""
    total = sum(spread.at_scale)
    return _draw(total * key_space, key_space, spread.dispersion, rng) / total if total else 0.0


def _photo_stats(photos: list[int]) -> PhotosPerUser:
    ordered = sorted(photos)
    n = len(ordered)
    return PhotosPerUser(sum(ordered) / n, ordered[n // 2], ordered[min(n - 1, int(0.99 * n))], ordered[-1])


def write_chart(result: PlacementSimulation, path: Path) -> None:
    """A PNG: sorted per-shard rows and per-bucket bytes over their mean, at full scale and in the sample."""
    # Imported here: matplotlib takes most of a second to import, and only --chart needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    p = result.params
    fig = Figure(figsize=(12, 7), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(
        f"photostore placement: {p.users:,} users, {p.shards} shards, {p.buckets} buckets "
        f"(sample {p.sample:,}, Zipf {p.zipf:g} up to {p.max_photos:,} photos/user, seed {p.seed})"
    )
    panels = (("shard", "rows (= bytes)", result.shard_rows), ("bucket", "bytes", result.bucket_objects))
    axes = fig.subplots(2, 2, sharex="col")
    for column, (node, what, spread) in enumerate(panels):
        for row, (label, loads, ratio) in enumerate(
            (
                (f"estimate at {p.users:,} users", spread.at_scale, spread.max_over_mean),
                (f"sample of {p.sample:,} users", spread.sample, spread.sample_max_over_mean),
            )
        ):
            ax = axes[row][column]
            mean = sum(loads) / len(loads) or 1.0
            ranked = sorted((load / mean for load in loads), reverse=True)
            ax.plot(range(1, len(ranked) + 1), ranked, drawstyle="steps-post", color=f"C{row}")
            ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
            ax.set_title(f"per-{node} {what}, {label}", fontsize=10)
            ax.set_ylabel("load / mean")
            ax.ticklabel_format(axis="y", useOffset=False)  # at full scale the spread is in the 5th digit
            ax.annotate(f"max/mean {ratio:.3f}", xy=(0.98, 0.92), xycoords="axes fraction", ha="right")
        axes[1][column].set_xlabel(f"{node}s, busiest first")
    fig.savefig(path, format="png", dpi=100)
