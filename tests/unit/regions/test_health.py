"""EndpointHealth (probes, refusals, passive error rates) and RegionHealth, on a hand-moved clock."""

from __future__ import annotations

import pytest

from photostore.regions.health import EndpointHealth, RegionHealth
from photostore.settings import HealthSettings

SETTINGS = HealthSettings(fall=3, rise=2, error_window_s=10.0, error_rate=0.5, min_requests=4)


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _endpoint(clock: Clock | None = None, settings: HealthSettings = SETTINGS) -> EndpointHealth:
    return EndpointHealth("http://10.0.0.1:8000", settings, clock or Clock())


def _down_by_probes(endpoint: EndpointHealth) -> None:
    for _ in range(SETTINGS.fall):
        endpoint.probe_failed("timeout")
    assert not endpoint.healthy


# --- probes ----------------------------------------------------------------------------------------


def test_an_endpoint_starts_healthy_and_unprobed() -> None:
    endpoint = _endpoint()
    status = endpoint.status()
    assert endpoint.healthy
    assert status.is_healthy
    assert status.reason == "not probed yet"
    assert status.last_check is None
    assert (status.consecutive_ok, status.consecutive_failures) == (0, 0)
    assert status.error_rate == 0.0
    assert status.latency_ms is None


def test_fewer_than_fall_failed_probes_keep_it_up() -> None:
    endpoint = _endpoint()
    for _ in range(SETTINGS.fall - 1):
        endpoint.probe_failed("timeout")
    assert endpoint.healthy
    assert endpoint.status().consecutive_failures == SETTINGS.fall - 1


def test_fall_failed_probes_in_a_row_take_it_down() -> None:
    endpoint = _endpoint()
    for _ in range(SETTINGS.fall):
        endpoint.probe_failed("503 from /readyz")
    status = endpoint.status()
    assert not status.is_healthy
    assert status.reason == f"{SETTINGS.fall} failed probes in a row, last: 503 from /readyz"
    assert status.consecutive_failures == SETTINGS.fall


def test_a_good_probe_in_between_resets_the_failures() -> None:
    endpoint = _endpoint()
    for _ in range(SETTINGS.fall - 1):
        endpoint.probe_failed("timeout")
    endpoint.probe_ok(0.01)
    assert endpoint.status().consecutive_failures == 0
    for _ in range(SETTINGS.fall - 1):
        endpoint.probe_failed("timeout")
    assert endpoint.healthy


def test_fewer_than_rise_good_probes_keep_it_down() -> None:
    endpoint = _endpoint()
    _down_by_probes(endpoint)
    for _ in range(SETTINGS.rise - 1):
        endpoint.probe_ok(0.01)
    assert not endpoint.healthy


def test_rise_good_probes_in_a_row_bring_it_back() -> None:
    endpoint = _endpoint()
    _down_by_probes(endpoint)
    for _ in range(SETTINGS.rise):
        endpoint.probe_ok(0.01)
    status = endpoint.status()
    assert status.is_healthy
    assert status.reason == f"{SETTINGS.rise} good probes in a row"
    assert (status.consecutive_ok, status.consecutive_failures) == (SETTINGS.rise, 0)


def test_a_failed_probe_while_rising_starts_the_count_again() -> None:
    endpoint = _endpoint()
    _down_by_probes(endpoint)
    for _ in range(SETTINGS.rise - 1):
        endpoint.probe_ok(0.01)
    endpoint.probe_failed("timeout")
    for _ in range(SETTINGS.rise - 1):
        endpoint.probe_ok(0.01)
    assert not endpoint.healthy
    endpoint.probe_ok(0.01)
    assert endpoint.healthy


def test_unreachable_takes_it_down_at_once() -> None:
    endpoint = _endpoint()
    for _ in range(5):
        endpoint.probe_ok(0.01)
    endpoint.unreachable("connection refused")
    status = endpoint.status()
    assert not status.is_healthy
    assert status.reason == "unreachable: connection refused"
    assert status.consecutive_ok == 0


def test_unreachable_needs_rise_good_probes_to_come_back() -> None:
    endpoint = _endpoint()
    endpoint.unreachable("connection refused")
    for _ in range(SETTINGS.rise - 1):
        endpoint.probe_ok(0.01)
    assert not endpoint.healthy
    endpoint.probe_ok(0.01)
    assert endpoint.healthy


def test_status_reports_the_last_check_time_and_latency() -> None:
    clock = Clock(500.0)
    endpoint = _endpoint(clock)
    endpoint.probe_ok(0.0125)
    clock.advance(3)
    endpoint.probe_ok(0.25)
    status = endpoint.status()
    assert status.last_check == 503.0
    assert status.latency_ms == pytest.approx(250.0)
    assert status.consecutive_ok == 2


# --- passive errors --------------------------------------------------------------------------------


def test_errors_below_min_requests_never_take_it_down() -> None:
    endpoint = _endpoint()
    for _ in range(SETTINGS.min_requests - 1):
        endpoint.request_done(ok=False)
    status = endpoint.status()
    assert status.is_healthy
    assert status.error_rate == 1.0


def test_an_error_rate_at_the_threshold_with_enough_requests_takes_it_down() -> None:
    endpoint = _endpoint()
    endpoint.request_done(ok=True)
    endpoint.request_done(ok=True)
    endpoint.request_done(ok=False)
    assert endpoint.healthy
    endpoint.request_done(ok=False)  # 2 of 4: exactly error_rate 0.5
    status = endpoint.status()
    assert not status.is_healthy
    assert status.reason == "error rate 0.50 over the last 10 s"
    assert status.error_rate == 0.5


def test_an_error_rate_below_the_threshold_keeps_it_up() -> None:
    endpoint = _endpoint()
    for ok in (True, True, True, False, True, True, False):
        endpoint.request_done(ok=ok)
    assert endpoint.healthy
    assert endpoint.status().error_rate == pytest.approx(2 / 7)


def test_outcomes_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    endpoint = _endpoint(clock)
    for _ in range(3):
        endpoint.request_done(ok=False)
    clock.advance(SETTINGS.error_window_s + 1)
    assert endpoint.status().error_rate == 0.0
    endpoint.request_done(ok=False)  # one error in the window: fewer than min_requests
    assert endpoint.healthy
    for _ in range(3):
        endpoint.request_done(ok=True)
    assert endpoint.healthy
    assert endpoint.status().error_rate == 0.25


def test_errors_spread_across_the_window_count_together() -> None:
    clock = Clock()
    endpoint = _endpoint(clock)
    for _ in range(SETTINGS.min_requests):
        endpoint.request_done(ok=False)
        clock.advance(SETTINGS.error_window_s / 5)
    assert not endpoint.healthy


def test_after_coming_back_old_errors_do_not_take_it_down_again() -> None:
    endpoint = _endpoint()
    for _ in range(SETTINGS.min_requests):
        endpoint.request_done(ok=False)
    assert not endpoint.healthy
    for _ in range(SETTINGS.rise):
        endpoint.probe_ok(0.01)
    assert endpoint.healthy
    assert endpoint.status().error_rate == 0.0
    endpoint.request_done(ok=False)  # would be 5 errors of 5 if the old ones still counted
    assert endpoint.healthy


def test_errors_while_down_are_forgotten_when_it_comes_back() -> None:
    endpoint = _endpoint()
    endpoint.unreachable("connection refused")
    for _ in range(10):
        endpoint.request_done(ok=False)
    for _ in range(SETTINGS.rise):
        endpoint.probe_ok(0.01)
    endpoint.request_done(ok=True)
    endpoint.request_done(ok=False)
    assert endpoint.healthy
    assert endpoint.status().error_rate == 0.5


# --- RegionHealth ----------------------------------------------------------------------------------


def _region(count: int) -> tuple[RegionHealth, list[EndpointHealth]]:
    clock = Clock()
    endpoints = [EndpointHealth(f"http://10.0.0.{n}:8000", SETTINGS, clock) for n in range(count)]
    return RegionHealth("eu-west-1", endpoints), endpoints


def test_a_region_needs_endpoints() -> None:
    with pytest.raises(ValueError, match="no endpoints"):
        RegionHealth("eu-west-1", [])


def test_a_region_is_healthy_while_any_endpoint_is() -> None:
    region, endpoints = _region(3)
    endpoints[0].unreachable("refused")
    endpoints[1].unreachable("refused")
    assert region.healthy
    assert region.status().is_healthy
    endpoints[2].unreachable("refused")
    assert not region.healthy
    assert region.status().reason == "unreachable: refused"


def test_pick_round_robins_among_healthy_endpoints() -> None:
    region, endpoints = _region(3)
    assert [region.pick() for _ in range(7)] == [*endpoints, *endpoints, endpoints[0]]


def test_pick_skips_endpoints_that_are_down() -> None:
    region, endpoints = _region(3)
    endpoints[1].unreachable("refused")
    picked = [region.pick() for _ in range(6)]
    assert picked == [endpoints[0], endpoints[2]] * 3


def test_pick_takes_an_endpoint_back_once_it_rises() -> None:
    region, endpoints = _region(2)
    endpoints[0].unreachable("refused")
    assert [region.pick() for _ in range(2)] == [endpoints[1], endpoints[1]]
    for _ in range(SETTINGS.rise):
        endpoints[0].probe_ok(0.01)
    assert {region.pick(), region.pick()} == set(endpoints)


def test_pick_gives_none_when_every_endpoint_is_down() -> None:
    region, endpoints = _region(2)
    for endpoint in endpoints:
        endpoint.unreachable("refused")
    assert region.pick() is None
