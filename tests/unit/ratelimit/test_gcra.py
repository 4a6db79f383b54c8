"""GCRA's arithmetic, and the limiter's leases and Redis-down fallback (stores from settings)."""

from __future__ import annotations

import pytest

from photostore.ratelimit.gcra import MemoryGcra, Policy, Verdict, decide
from photostore.ratelimit.limiter import RateLimited, RateLimiter

POLICY = Policy(rate=10, burst=5)  # 100 ms apart, 5 at once


def test_a_burst_then_one_per_interval() -> None:
    tat = None
    for n in range(5):
        verdict, tat = decide(tat, 0.0, POLICY, 1)
        assert verdict.allowed, n
    refused, unchanged = decide(tat, 0.0, POLICY, 1)
    assert refused == Verdict(False, 100)
    assert unchanged is None
    assert decide(tat, 99.0, POLICY, 1)[0] == Verdict(False, 1)
    assert decide(tat, 100.0, POLICY, 1)[0].allowed


def test_an_idle_key_starts_from_now_and_a_cost_counts_as_many() -> None:
    assert decide(-10_000.0, 0.0, POLICY, 5)[0].allowed  # long idle: a full burst
    assert decide(None, 0.0, POLICY, 6)[0] == Verdict(False, 100)  # more than a burst: never at once


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_the_limiter_spends_leases_locally_and_refuses_with_retry_after() -> None:
    clock = Clock()
    store = MemoryGcra(Policy(rate=100, burst=40))
    limiter = RateLimiter(store, clock=clock, monotonic=clock)
    assert limiter.lease == 10
    await limiter.acquire("k")
    assert limiter.stats.store_calls == 1
    for _ in range(9):
        assert limiter.allow_now("k")  # the rest of the lease: no store call
    assert not limiter.allow_now("k")
    for _ in range(3):
        await limiter.acquire("k")
        for _ in range(9):
            assert limiter.allow_now("k")
    assert limiter.stats.store_calls == 4  # 40 requests, four leases: the burst is spent
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire("k")
    assert refused.value.status == 429
    assert refused.value.retry_after_s == 1
    assert not limiter.allow_now("k")
    await limiter.acquire("other")  # another key has its own budget
    clock.now += 0.011  # one interval later one request fits, though a whole lease does not
    await limiter.acquire("k")


async def test_leases_lapse() -> None:
    clock = Clock()
    limiter = RateLimiter(MemoryGcra(Policy(rate=100, burst=40)), clock=clock, monotonic=clock)
    await limiter.acquire("k")
    clock.now += 1.5
    assert not limiter.allow_now("k")
