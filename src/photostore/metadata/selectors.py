"""The spec's ReplicaSelector: which healthy read replica serves the next read.

Selectors only choose among the candidates they are given (the caller passes the healthy ones) and
never block. Both are asyncio-safe (no awaits inside), not thread-safe.

- :class:`RoundRobinSelector`: the candidates in turn, the first one first.
- :class:`LatencyBasedSelector`: the lowest exponential moving average of observed latency; a
  candidate with no sample yet is tried first, so a new or restarted replica gets measured.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)

SelectorName = Literal["round_robin", "latency"]


class ReplicaSelector(Protocol):
    def select(self, candidates: Sequence[K]) -> K | None:
        """One of ``candidates``, or None when there are none."""

    def observe(self, candidate: Hashable, latency_s: float) -> None:
        """Record how long a round trip to ``candidate`` took."""


class RoundRobinSelector:
    """Each call takes the next candidate; the counter survives changes to the candidate list."""

    def __init__(self) -> None:
        self._counter = 0

    def select(self, candidates: Sequence[K]) -> K | None:
        if not candidates:
            return None
        chosen = candidates[self._counter % len(candidates)]
        self._counter += 1
        return chosen

    def observe(self, candidate: Hashable, latency_s: float) -> None:
        return None  # latency plays no part in the order


class LatencyBasedSelector:
    """The candidate with the lowest EMA of latency: ``ema = alpha * sample + (1 - alpha) * ema``.

    The first sample of a candidate is its EMA. Unseen candidates come first, in the order given;
    ties go to the earlier candidate.
    """

    def __init__(self, alpha: float = 0.2) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], not {alpha}")
        self._alpha = alpha
        self._ema: dict[Hashable, float] = {}

    def select(self, candidates: Sequence[K]) -> K | None:
        best: K | None = None
        best_latency = float("inf")
        for candidate in candidates:
            latency = self._ema.get(candidate)
            if latency is None:
                return candidate
            if latency < best_latency:
                best, best_latency = candidate, latency
        return best

    def observe(self, candidate: Hashable, latency_s: float) -> None:
        previous = self._ema.get(candidate)
        self._ema[candidate] = (
            latency_s if previous is None else self._alpha * latency_s + (1 - self._alpha) * previous
        )

    def latency_s(self, candidate: Hashable) -> float | None:
        """The current EMA of ``candidate``, None before its first sample."""
        return self._ema.get(candidate)


def make_selector(name: SelectorName, alpha: float = 0.2) -> ReplicaSelector:
    """The selector the settings name (``metadata.postgres.replica_selector``)."""
    if name == "round_robin":
        return RoundRobinSelector()
    if name == "latency":
        return LatencyBasedSelector(alpha)
    raise ValueError(f"unknown replica selector {name!r}")
