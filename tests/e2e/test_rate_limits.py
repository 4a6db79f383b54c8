"""Rate limits per API key on a running service: a burst, then 429 ``rate_limited`` with
Retry-After, other keys unaffected, and requests fit again once the wait is over. In cluster mode
the limits live in the Redis Cluster every process shares. Both modes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.cluster import server_in_mode
from tests.support.http import assert_problem
from tests.support.server import ServerProcess, create_user

RATE, BURST = 2, 4


@pytest.fixture(scope="module", params=["embedded", "cluster"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {"PHOTOSTORE_RATELIMIT__REQUESTS_PER_S": str(RATE), "PHOTOSTORE_RATELIMIT__BURST": str(BURST)}
    yield from server_in_mode(request, tmp_path_factory, "limits", env)


def test_a_key_gets_its_burst_then_429_with_retry_after(server: ServerProcess) -> None:
    _, busy = create_user(server.url, "busy")
    _, calm = create_user(server.url, "calm")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        as_busy = {"authorization": f"Bearer {busy}"}
        asks = [client.get("/v1/photos", headers=as_busy) for _ in range(BURST + 3)]
        statuses = [r.status_code for r in asks]
        assert statuses[:BURST] == [200] * BURST, statuses
        refused = [r for r in asks if r.status_code == 429]
        assert len(refused) >= 2, statuses
        assert_problem(refused[0], 429, "rate_limited")
        wait = int(refused[0].headers["retry-after"])
        assert 1 <= wait <= 2

        assert client.get("/v1/photos", headers={"authorization": f"Bearer {calm}"}).status_code == 200
        time.sleep(wait)
        assert client.get("/v1/photos", headers=as_busy).status_code == 200

    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'photostore_rate_limit_total{outcome="limited"}' in metrics
