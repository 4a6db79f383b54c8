"""Whether each region can take traffic: the spec's HealthStatus, from active probes and passive errors.

Active: the edge GETs every endpoint's ``/readyz`` each ``probe_interval_s``; ``fall`` failures in a
row take the endpoint down and ``rise`` successes in a row bring it back. A refused connection is
unambiguous and takes it down at once. Passive: the answers of proxied requests; an endpoint whose
error rate over ``error_window_s`` reaches ``error_rate`` (with at least ``min_requests`` requests)
goes down too, and then needs the same ``rise`` good probes to return. A region is healthy while any
of its endpoints is.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from photostore.settings import HealthSettings


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """The spec's HealthStatus, for one endpoint or a whole region."""

    is_healthy: bool
    reason: str
    last_check: float | None
    consecutive_ok: int
    consecutive_failures: int
    error_rate: float
    latency_ms: float | None


class EndpointHealth:
    """One API endpoint of a region. Starts healthy: the first probe or request corrects it quickly."""

    def __init__(self, url: str, settings: HealthSettings, clock: Callable[[], float] = time.monotonic):
        self.url = url
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._healthy = True
        self._reason = "not probed yet"
        self._last_check: float | None = None
        self._ok_in_row = 0
        self._failed_in_row = 0
        self._latency_ms: float | None = None
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._errors_in_window = 0  # kept with the deque, so the rate costs O(1) per request

    @property
    def healthy(self) -> bool:
        return self._healthy

    def probe_ok(self, latency_s: float) -> None:
        with self._lock:
            self._last_check = self._clock()
            self._latency_ms = latency_s * 1000
            self._ok_in_row += 1
            self._failed_in_row = 0
            if not self._healthy and self._ok_in_row >= self._settings.rise:
                self._healthy = True
                self._reason = f"{self._ok_in_row} good probes in a row"
                self._outcomes.clear()  # errors from before it went down must not take it down again
                self._errors_in_window = 0

    def probe_failed(self, reason: str) -> None:
        with self._lock:
            self._last_check = self._clock()
            self._failed_in_row += 1
            self._ok_in_row = 0
            if self._healthy and self._failed_in_row >= self._settings.fall:
                self._mark_down(f"{self._failed_in_row} failed probes in a row, last: {reason}")

    def unreachable(self, reason: str) -> None:
        """A connection was refused or could not be made: down now, without waiting for probes."""
        with self._lock:
            self._ok_in_row = 0
            if self._healthy:
                self._mark_down(f"unreachable: {reason}")

    def request_done(self, ok: bool) -> None:
        """A proxied request's outcome (ok: not a server-side failure)."""
        with self._lock:
            now = self._clock()
            self._outcomes.append((now, ok))
            self._errors_in_window += not ok
            self._forget_before(now - self._settings.error_window_s)
            if not self._healthy or len(self._outcomes) < self._settings.min_requests:
                return
            rate = self._error_rate()
            if rate >= self._settings.error_rate:
                self._mark_down(f"error rate {rate:.2f} over the last {self._settings.error_window_s:g} s")

    def status(self) -> HealthStatus:
        with self._lock:
            self._forget_before(self._clock() - self._settings.error_window_s)
            return HealthStatus(
                is_healthy=self._healthy,
                reason=self._reason,
                last_check=self._last_check,
                consecutive_ok=self._ok_in_row,
                consecutive_failures=self._failed_in_row,
                error_rate=self._error_rate(),
                latency_ms=self._latency_ms,
            )

    def _mark_down(self, reason: str) -> None:
        self._healthy = False
        self._reason = reason
        self._ok_in_row = 0

    def _error_rate(self) -> float:
        if not self._outcomes:
            return 0.0
        return self._errors_in_window / len(self._outcomes)

    def _forget_before(self, horizon: float) -> None:
        while self._outcomes and self._outcomes[0][0] < horizon:
            _, ok = self._outcomes.popleft()
            self._errors_in_window -= not ok


class RegionHealth:
    """A region's endpoints; healthy while any is, and hands them out round-robin among the healthy."""

    def __init__(self, name: str, endpoints: Iterable[EndpointHealth]) -> None:
        self.name = name
        self.endpoints = tuple(endpoints)
        if not self.endpoints:
            raise ValueError(f"region {name} has no endpoints")
        self._next = 0

    @property
    def healthy(self) -> bool:
        return any(endpoint.healthy for endpoint in self.endpoints)

    def pick(self) -> EndpointHealth | None:
        """The next healthy endpoint, or None."""
        count = len(self.endpoints)
        for step in range(count):
            endpoint = self.endpoints[(self._next + step) % count]
            if endpoint.healthy:
                self._next = (self._next + step + 1) % count
                return endpoint
        return None

    def status(self) -> HealthStatus:
        statuses = [endpoint.status() for endpoint in self.endpoints]
        return next((s for s in statuses if s.is_healthy), statuses[0])
