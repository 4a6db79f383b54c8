"""Rate limits per API key, global across processes, at little cost per request.

The store holds each key's GCRA state: Redis in cluster mode (every process shares it), this
process otherwise. A process takes a small lease of requests from the store at a time (``lease``,
a tenth of a second's worth) and spends it locally. The cached-thumbnail shortcut can check a
lease without any I/O (``allow_now``), and a busy key costs one store call per lease, not per
request. Leases unspent after ``LEASE_TTL_S`` lapse, which only makes the limit a little stricter.
A key near its limit is asked for one request at a time, so the last requests of a burst are not
refused for want of a whole lease.

When the store is down the limiter falls back to a GCRA in this process with the same policy:
limits still hold per process (each process allows the key's rate), so an outage of Redis neither
refuses every request nor lifts the limits. The fallback lasts while the store keeps failing; each
failure is counted in ``store_errors``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from photostore.errors import BackendUnavailable, PhotostoreError
from photostore.ratelimit.gcra import MemoryGcra, Policy, Verdict

log = logging.getLogger(__name__)

LEASE_TTL_S = 1.0
_WARN_EVERY_S = 30.0


class RateLimited(PhotostoreError):
    status = 429
    code = "rate_limited"
    title = "Too many requests for this API key"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class GcraStore(Protocol):
    policy: Policy

    async def take(self, key: str, cost: int, now_ms: float) -> Verdict: ...

    async def close(self) -> None: ...


@dataclass
class _Lease:
    left: int
    until: float  # monotonic


@dataclass
class LimiterStats:
    allowed: int = 0
    limited: int = 0
    store_calls: int = 0
    store_errors: int = 0


class RateLimiter:
    def __init__(
        self,
        store: GcraStore,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = store.policy
        self._store = store
        self._fallback = MemoryGcra(store.policy)
        self._clock = clock
        self._monotonic = monotonic
        self._leases: dict[str, _Lease] = {}
        self._warned_at = -_WARN_EVERY_S
        self.lease = max(1, min(store.policy.burst // 4, math.ceil(store.policy.rate / 10)))
        self.stats = LimiterStats()

    @property
    def store(self) -> GcraStore:
        return self._store

    def allow_now(self, key: str) -> bool:
        """Spend one request of the key's lease, if it holds one (no I/O: the hot path's check)."""
        lease = self._leases.get(key)
        if lease is None or lease.left <= 0 or lease.until <= self._monotonic():
            return False
        lease.left -= 1
        self.stats.allowed += 1
        return True

    async def acquire(self, key: str) -> None:
        """Return if the key may make a request now; else raise RateLimited with Retry-After."""
        if self.allow_now(key):
            return
        verdict = await self._take(key, self.lease)
        if verdict.allowed:
            self._leases[key] = _Lease(self.lease - 1, self._monotonic() + LEASE_TTL_S)
            self.stats.allowed += 1
            return
        if self.lease > 1:  # near the limit: one request may still fit
            verdict = await self._take(key, 1)
            if verdict.allowed:
                self.stats.allowed += 1
                return
        self.stats.limited += 1
        retry_after_s = max(1, math.ceil(verdict.retry_after_ms / 1000))
        raise RateLimited(
            f"this API key may make {self.policy.rate:g} requests a second (bursts of {self.policy.burst}); "
            f"retry after {retry_after_s} s",
            retry_after_s,
        )

    async def _take(self, key: str, cost: int) -> Verdict:
        now_ms = self._clock() * 1000
        self.stats.store_calls += 1
        try:
            return await self._store.take(key, cost, now_ms)
        except BackendUnavailable as exc:
            self.stats.store_errors += 1
            if self._monotonic() - self._warned_at >= _WARN_EVERY_S:
                self._warned_at = self._monotonic()
                log.warning("rate limits fall back to this process while the store is down: %s", exc.detail)
            return await self._fallback.take(key, cost, now_ms)

    async def close(self) -> None:
        await self._store.close()
