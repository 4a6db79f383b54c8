"""The generic cell rate algorithm (GCRA), and its in-process store.

A key is allowed ``rate`` requests a second with bursts of ``burst``. One number per key is kept:
its theoretical arrival time (TAT). A request of ``cost`` moves the TAT on by ``cost`` emission
intervals and is allowed while the new TAT is at most ``burst`` intervals ahead of now. The same
arithmetic runs here and, as a Lua script, inside Redis (``ratelimit.redis_store``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Keys this process remembers at most; the ones whose TAT has passed are forgotten first.
MAX_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Policy:
    rate: float  # requests per second
    burst: int  # requests at once after an idle period

    @property
    def interval_ms(self) -> float:
        return 1000.0 / self.rate

    @property
    def tolerance_ms(self) -> float:
        return self.burst * self.interval_ms


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_ms: int  # 0 when allowed


def decide(tat_ms: float | None, now_ms: float, policy: Policy, cost: int) -> tuple[Verdict, float | None]:
    """The verdict for a request of ``cost`` at ``now_ms`` and the key's new TAT (None: unchanged)."""
    tat = now_ms if tat_ms is None or tat_ms < now_ms else tat_ms
    new_tat = tat + cost * policy.interval_ms
    allow_at = new_tat - policy.tolerance_ms
    if now_ms < allow_at:
        return Verdict(False, math.ceil(allow_at - now_ms)), None
    return Verdict(True, 0), new_tat


class MemoryGcra:
    """GCRA with the TATs in this process: the embedded store, and the fallback when Redis is down."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._tats: dict[str, float] = {}

    async def take(self, key: str, cost: int, now_ms: float) -> Verdict:
        verdict, new_tat = decide(self._tats.get(key), now_ms, self.policy, cost)
        if new_tat is not None:
            if key not in self._tats and len(self._tats) >= MAX_KEYS:
                self._forget_passed(now_ms)
            self._tats[key] = new_tat
        return verdict

    async def close(self) -> None:
        self._tats.clear()

    def _forget_passed(self, now_ms: float) -> None:
        for key in [k for k, tat in self._tats.items() if tat <= now_ms]:
            del self._tats[key]
        while len(self._tats) >= MAX_KEYS:  # all still limited: the oldest entries go
            del self._tats[next(iter(self._tats))]
