"""The spec's growth model: compound growth per dimension, from the spec's rates or fitted to history.

Each dimension grows by a yearly rate, compounded continuously over months, so twelve months of
20 % give exactly 1.2 times the start (10M users -> 12M; 1 PB at 50 % -> 1.5 PB). Photos are the
starting library plus every upload since; uploads per day grow at their own rate, and the sum is
the exact integral of that exponential. ``years_to`` answers "when do we reach the target".

History (a CSV of ``timestamp, users, storage, requests``) gives each dimension's rate as the
least-squares slope of its logarithm over time: the rate that best explains the points.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from photostore.errors import BadRequest

DAYS_PER_YEAR = 365.25
MIN_HISTORY_SPAN = timedelta(days=1)
MAX_YEARLY_GROWTH = 1000.0  # a fitted rate beyond this is noise, not growth
PB = 10**15


@dataclass(frozen=True, slots=True)
class StartingPoint:
    """The spec's current scale. ``photos`` and ``peak_qps`` are not in the spec: assumptions."""

    users: float = 10_000_000
    storage_bytes: float = 1 * PB
    photos: float = 333_000_000  # 1 PB of 3 MB originals
    uploads_per_day: float = 10_000_000
    peak_qps: float = 100_000


@dataclass(frozen=True, slots=True)
class GrowthRates:
    """Yearly growth, as fractions: the spec's 20 % users and 50 % storage; uploads and requests
    follow the users."""

    users: float = 0.20
    storage: float = 0.50
    uploads: float = 0.20
    requests: float = 0.20


@dataclass(frozen=True, slots=True)
class MonthProjection:
    month: int
    users: float
    photos: float
    storage_bytes: float
    uploads_per_day: float
    peak_qps: float


def grow(start: float, yearly_rate: float, months: float) -> float:
    """``start`` after ``months`` of compound growth at ``yearly_rate``."""
    growth: float = (1 + yearly_rate) ** (months / 12)
    return start * growth


def years_to(target: float, start: float, yearly_rate: float) -> float | None:
    """Years until ``start`` growing at ``yearly_rate`` reaches ``target``; None if it never does."""
    if start >= target:
        return 0.0
    if yearly_rate <= 0 or start <= 0:
        return None
    return math.log(target / start) / math.log(1 + yearly_rate)


def uploads_between(uploads_per_day: float, yearly_rate: float, months: float) -> float:
    """Photos uploaded in the first ``months``: the integral of the growing daily rate."""
    days = months / 12 * DAYS_PER_YEAR
    if yearly_rate == 0:
        return uploads_per_day * days
    per_day_growth = math.log(1 + yearly_rate) / DAYS_PER_YEAR
    return uploads_per_day * (math.exp(per_day_growth * days) - 1) / per_day_growth


def project(start: StartingPoint, rates: GrowthRates, months: int) -> list[MonthProjection]:
    """Month 0 (today) to ``months``, inclusive."""
    if months < 0:
        raise BadRequest("months must be 0 or more")
    return [
        MonthProjection(
            month=m,
            users=grow(start.users, rates.users, m),
            photos=start.photos + uploads_between(start.uploads_per_day, rates.uploads, m),
            storage_bytes=grow(start.storage_bytes, rates.storage, m),
            uploads_per_day=grow(start.uploads_per_day, rates.uploads, m),
            peak_qps=grow(start.peak_qps, rates.requests, m),
        )
        for m in range(months + 1)
    ]


@dataclass(frozen=True, slots=True)
class History:
    """Points read from a CSV: when (years since the first point) and the three dimensions."""

    years: tuple[float, ...]
    users: tuple[float, ...]
    storage: tuple[float, ...]
    requests: tuple[float, ...]
    last: StartingPoint


def read_history(path: Path, base: StartingPoint) -> History:
    """``timestamp, users, storage, requests`` rows (ISO-8601 or unix seconds); storage in bytes,
    requests as peak QPS. The last row becomes the starting point."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise BadRequest(f"cannot read history {path}: {exc.strerror}") from None
    needed = {"timestamp", "users", "storage", "requests"}
    if not rows or not needed <= set(rows[0]):
        raise BadRequest(f"{path} needs a header with {sorted(needed)} and at least two rows")
    try:
        points = sorted(
            (_when(row["timestamp"]), float(row["users"]), float(row["storage"]), float(row["requests"]))
            for row in rows
        )
    except ValueError as exc:
        raise BadRequest(f"{path}: {exc}") from None
    if len(points) < 2 or points[-1][0] == points[0][0]:
        raise BadRequest(f"{path}: at least two rows at different times are needed to fit a rate")
    if points[-1][0] - points[0][0] < MIN_HISTORY_SPAN:
        # A yearly rate extrapolated from minutes is noise raised to a huge power.
        raise BadRequest(
            f"{path} spans {points[-1][0] - points[0][0]}; a yearly rate needs rows at least "
            f"{MIN_HISTORY_SPAN.days} day apart (record daily with `photostore capacity record`)"
        )
    if any(value <= 0 for point in points for value in point[1:]):
        raise BadRequest(f"{path}: users, storage and requests must be above 0 (growth is fitted on logs)")
    first = points[0][0]
    years = tuple((when - first).total_seconds() / (DAYS_PER_YEAR * 86400) for when, *_ in points)
    _, users, storage, requests = points[-1]
    last = replace(base, users=users, storage_bytes=storage, peak_qps=requests)
    return History(
        years, tuple(p[1] for p in points), tuple(p[2] for p in points), tuple(p[3] for p in points), last
    )


def _when(text: str) -> datetime:
    text = text.strip()
    if text.replace(".", "", 1).isdigit():
        return datetime.fromtimestamp(float(text), UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def fitted_rate(years: Sequence[float], values: Sequence[float]) -> float:
    """The yearly rate whose exponential fits ``values`` best (least squares on their logarithms)."""
    logs = [math.log(v) for v in values]
    mean_t, mean_l = sum(years) / len(years), sum(logs) / len(logs)
    spread = sum((t - mean_t) ** 2 for t in years)
    slope = sum((t - mean_t) * (v - mean_l) for t, v in zip(years, logs, strict=True)) / spread
    return math.exp(slope) - 1


def fitted_rates(history: History, base: GrowthRates) -> GrowthRates:
    """The three rates fitted to ``history``; BadRequest when one is beyond any plan (more than
    MAX_YEARLY_GROWTH times a year: a history too short or too noisy to extrapolate)."""
    fitted = {
        "users": fitted_rate(history.years, history.users),
        "storage": fitted_rate(history.years, history.storage),
        "requests": fitted_rate(history.years, history.requests),
    }
    for name, rate in fitted.items():
        if rate + 1 > MAX_YEARLY_GROWTH:
            raise BadRequest(
                f"the history's {name} grow {rate + 1:,.0f}x a year, beyond any plan: record over a "
                "longer period (weeks at least) before fitting rates to it"
            )
    return replace(base, **fitted, uploads=fitted["users"])  # uploads follow the users, as in the spec
