"""A circuit breaker for a cache backend: while it is down, skip calls instead of waiting on timeouts.

States
    Closed
        Calls go through. ``failure_threshold`` consecutive failures open the breaker; one success
        resets the count.
    Open
        ``allow()`` is False until ``cooldown_s`` has passed since the breaker opened.
    Half-open
        The first ``allow()`` after the cooldown lets one probe through and re-arms the cooldown, so
        concurrent callers keep skipping while the probe runs (a dead backend costs one timeout per
        cooldown, not one per caller). The probe's success closes the breaker; its failure keeps it open
        for another cooldown.

Logging: a warning when the breaker opens, then at most one more per ``warn_interval_s`` (never less
than the cooldown) while the backend stays down, and one info line when it recovers; never one per call.

Not thread-safe: use one instance from one event loop thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 1.0,
        warn_interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if cooldown_s <= 0:
            raise ValueError("cooldown_s must be > 0")
        self.name = name
        self._threshold = failure_threshold
        self._cooldown_s = cooldown_s
        self._warn_interval_s = max(warn_interval_s, cooldown_s)
        self._clock = clock
        self._failures = 0  # consecutive
        self._open_until: float | None = None  # None: closed
        self._last_warning: float | None = None
        self.opened = 0  # times it went from closed to open
        self.skipped = 0  # calls refused while open

    @property
    def is_open(self) -> bool:
        """True while calls are being skipped: within a cooldown, or while a half-open probe runs.

        Once a cooldown has passed it reads False even before a probe, so a breaker that is no longer
        consulted (a cluster node replaced by failover) does not look open forever.
        """
        return self._open_until is not None and self._clock() < self._open_until

    def allow(self) -> bool:
        """Whether a call may go to the backend now; a refused call is counted in ``skipped``."""
        if self._open_until is None:
            return True
        now = self._clock()
        if now >= self._open_until:
            self._open_until = now + self._cooldown_s  # this caller is the probe; others keep skipping
            return True
        self.skipped += 1
        return False

    def record_success(self) -> None:
        self._failures = 0
        if self._open_until is not None:
            self._open_until = None
            log.info("cache backend %s is back; calls resume", self.name)

    def record_failure(self, error: BaseException) -> None:
        self._failures += 1
        if self._failures < self._threshold:
            return
        now = self._clock()
        if self._open_until is None:
            self.opened += 1
        self._open_until = now + self._cooldown_s
        if self._last_warning is None or now - self._last_warning >= self._warn_interval_s:
            self._last_warning = now
            log.warning(
                "cache backend %s failing (%d consecutive errors, last: %r); skipping it for %.2fs at a time",
                self.name,
                self._failures,
                error,
                self._cooldown_s,
            )
