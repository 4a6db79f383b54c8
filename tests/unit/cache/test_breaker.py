"""The circuit breaker's states, driven by a hand-moved clock: no sleeping, no backend."""

from __future__ import annotations

import logging

import pytest

from photostore.cache.breaker import CircuitBreaker

ERROR = ConnectionError("refused")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker(threshold: int = 3, cooldown: float = 1.0) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker("test", failure_threshold=threshold, cooldown_s=cooldown, clock=clock), clock


def test_it_opens_only_after_consecutive_failures() -> None:
    breaker, _ = _breaker(threshold=3)
    for _ in range(2):
        breaker.record_failure(ERROR)
    breaker.record_success()  # resets the count
    for _ in range(2):
        breaker.record_failure(ERROR)
    assert breaker.allow()
    assert not breaker.is_open
    breaker.record_failure(ERROR)
    assert breaker.is_open
    assert not breaker.allow()
    assert (breaker.opened, breaker.skipped) == (1, 1)


def test_after_the_cooldown_one_probe_goes_through_and_others_keep_skipping() -> None:
    breaker, clock = _breaker(threshold=1, cooldown=1.0)
    breaker.record_failure(ERROR)
    clock.now += 0.999
    assert not breaker.allow()
    clock.now += 0.001
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # concurrent callers while the probe runs
    breaker.record_success()
    assert not breaker.is_open
    assert breaker.allow()


def test_a_failed_probe_opens_it_for_another_cooldown() -> None:
    breaker, clock = _breaker(threshold=2, cooldown=1.0)
    breaker.record_failure(ERROR)
    breaker.record_failure(ERROR)
    clock.now += 1.0
    assert breaker.allow()
    breaker.record_failure(ERROR)
    clock.now += 0.5
    assert not breaker.allow()
    clock.now += 0.5
    assert breaker.allow()
    assert breaker.opened == 1  # still the same outage


def test_it_warns_once_per_outage_not_per_call(caplog: pytest.LogCaptureFixture) -> None:
    breaker, clock = _breaker(threshold=1, cooldown=1.0)
    with caplog.at_level(logging.INFO, logger="photostore.cache.breaker"):
        for _ in range(10):  # ten cooldowns of a failing backend, with skipped calls in between
            if breaker.allow():
                breaker.record_failure(ERROR)
            for _ in range(100):
                breaker.allow()
            clock.now += 1.0
        breaker.allow()
        breaker.record_success()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]  # then "is back"


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError, match="cooldown_s"):
        CircuitBreaker("x", cooldown_s=0)


def test_it_reads_closed_once_the_cooldown_has_passed_even_unprobed() -> None:
    breaker, clock = _breaker(threshold=1, cooldown=1.0)
    breaker.record_failure(ERROR)
    assert breaker.is_open
    clock.now += 1.0
    assert not breaker.is_open  # nobody asked since: it is not skipping anything
    assert breaker.allow()
    assert breaker.is_open  # the probe runs
