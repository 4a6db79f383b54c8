"""The autoscaler's Prometheus source against a real Prometheus scraping a real photostore.

Prometheus (Debian's ``prometheus`` package, installed by ``make test-tools``) scrapes an embedded
server every second; the source then reads the rules' metrics through Prometheus' HTTP API.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from photostore.ops.metric_sources import PrometheusSource
from photostore.settings import AutoscaleSettings
from tests.support.engines.availability import unavailable
from tests.support.images import jpeg
from tests.support.server import ServerProcess, create_user, free_port, stop_group

CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: photostore
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, ServerProcess]]:
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable("prometheus is not installed: run `make test-tools` (Debian's prometheus package)")
    server = ServerProcess(tmp_path / "data", env={"PHOTOSTORE_SERVER__METRICS_REFRESH_S": "0.5"}).start()
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(CONFIG.format(port=server.port))
    with (tmp_path / "prometheus.log").open("ab") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ),
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-2000:]
            time.sleep(0.2)
        yield url, server
    finally:
        stop_group(process)
        server.stop()


async def _read_until(
    source: PrometheusSource, key: tuple[str, str], want: float, timeout_s: float = 30
) -> float:
    deadline = time.monotonic() + timeout_s
    while True:
        value = (await source.read([key]))[key]
        if value is not None and value >= want:
            return value
        assert time.monotonic() < deadline, f"{key} stayed at {value}"
        await asyncio.sleep(0.5)


async def test_the_rules_metrics_come_through_prometheus(prometheus: tuple[str, ServerProcess]) -> None:
    url, server = prometheus
    _, key = create_user(server.url, "scraped")
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        for seed in range(3):
            assert client.post("/v1/photos", content=jpeg(120, 90, seed=seed)).status_code == 201
    async with httpx.AsyncClient() as http:
        source = PrometheusSource(url, AutoscaleSettings().queries, http)
        assert await _read_until(source, ("api", "active_users"), 1) == 1
        assert await _read_until(source, ("api", "request_rate"), 0.01) > 0
        assert await _read_until(source, ("api", "cpu"), 0) >= 0
        values = await source.read(
            [("worker", "consumer_lag"), ("upload", "concurrent_uploads"), ("x", "nope")]
        )
        assert values[("worker", "consumer_lag")] is not None
        assert values[("upload", "concurrent_uploads")] is None  # no process of service "upload" runs
        assert values[("x", "nope")] is None  # no query for that metric
