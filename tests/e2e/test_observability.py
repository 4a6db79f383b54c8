"""Every metric the operations issue names, on a running service under load; JSON logs; ``top``.

One embedded server takes concurrent uploads and reads; then its ``/metrics`` must hold the spec's
ScalingMetrics (requests, latency, errors, active users, resource use, queue depth) and the rest
(pool use per shard, cache hits, lag per topic and partition, uploads, derivatives, concurrent
uploads, shard health), each with a value that makes sense for what was done. A worker-only process
serves its own ``/metrics``. With ``log_format = "json"`` every log line is a JSON object carrying
the request id the API answered with.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import images
from tests.support.server import PHOTOSTORE, ServerProcess, create_user, wait_ready_photo

UPLOADS = 12
SHARDS = 4


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    data_dir = tmp_path_factory.mktemp("observability") / "data"
    env = {
        "PHOTOSTORE_SERVER__METRICS_REFRESH_S": "0.3",
        "PHOTOSTORE_LOG_FORMAT": "json",
        "PHOTOSTORE_LOG_LEVEL": "debug",
    }
    server = ServerProcess(data_dir, env=env).start()
    try:
        _, key = create_user(server.url, "watched")
        headers = {"authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:

            def upload(seed: int) -> str:
                answer = client.post("/v1/photos", content=images.jpeg(400, 300, seed=500 + seed))
                assert answer.status_code == 201, answer.text
                photo_id: str = answer.json()["id"]
                return photo_id

            with ThreadPoolExecutor(4) as pool:
                photo_ids = list(pool.map(upload, range(UPLOADS)))
            for photo_id in photo_ids:
                wait_ready_photo(client, photo_id)
                for _ in range(3):
                    assert client.get(f"/v1/photos/{photo_id}/variants/thumb").status_code == 200
            assert client.get("/v1/photos/0192f0c4-7a1b-7c3d-8e4f-a1b2c3d4e5f6").status_code == 404
            assert client.get("/v1/photos", headers={"x-request-id": "obs-request-42"}).status_code == 200
        yield server, key
    finally:
        server.stop()


def _metrics(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def _one(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **match: str) -> float:
    values = [v for labels, v in found.get(name, []) if all(labels.get(k) == m for k, m in match.items())]
    assert values, f"{name} {match} not in /metrics"
    return sum(values)


def test_every_metric_is_there_with_sensible_values(loaded: tuple[ServerProcess, str]) -> None:
    server, _ = loaded
    deadline = time.monotonic() + 15
    while _one(found := _metrics(server.url), "photostore_queue_depth") > 0:  # the last commits land
        assert time.monotonic() < deadline, found["photostore_queue_depth"]
        time.sleep(0.2)
    assert _one(found, "photostore_requests_total", service="api", region="local") > UPLOADS * 4
    assert (
        _one(found, "photostore_requests_total", route="/v1/photos", method="POST", status="201") == UPLOADS
    )
    assert _one(found, "photostore_response_latency_seconds_count", service="api") > 0
    assert _one(found, "photostore_response_latency_seconds_bucket", le="+Inf") > 0
    assert _one(found, "photostore_errors_total", code="photo_not_found") == 1
    assert _one(found, "photostore_active_users", service="api") == 1
    assert 0 <= _one(found, "photostore_resource_utilization", resource="cpu") < 64
    assert 0 < _one(found, "photostore_resource_utilization", resource="memory") < 1
    for topic in ("photo-upload", "photo-processing", "thumbnail-generation"):
        assert _one(found, "photostore_queue_depth", topic=topic) == 0  # drained: every photo is ready
    partitions = {labels["partition"] for labels, _ in found["photostore_consumer_lag"]}
    topics = {labels["topic"] for labels, _ in found["photostore_consumer_lag"]}
    assert len(partitions) > 1
    assert topics == {"photo-upload", "photo-processing", "thumbnail-generation"}
    assert _one(found, "photostore_uploads_total", result="created") == UPLOADS
    assert _one(found, "photostore_derivatives_total") >= UPLOADS * 2
    assert _one(found, "photostore_concurrent_uploads") == 0  # none in flight now
    assert _one(found, "photostore_cache_hits_total") > 0
    for shard in range(SHARDS):
        assert _one(found, "photostore_shard_up", shard=str(shard)) == 1
        assert _one(found, "photostore_pool_max_open", shard=str(shard), role="primary") > 0
        assert _one(found, "photostore_pool_checked_out", shard=str(shard), role="primary") >= 0
    assert _one(found, "process_cpu_seconds_total") > 0


def test_a_worker_serves_its_own_metrics(loaded: tuple[ServerProcess, str], tmp_path: Path) -> None:
    server, _ = loaded
    worker = ServerProcess(
        server.data_dir, role="worker", env={"PHOTOSTORE_SERVER__METRICS_REFRESH_S": "0.3"}
    )
    worker.start()
    try:
        worker.wait_ready(30)
        found = _metrics(worker.url)
        assert _one(found, "photostore_resource_utilization", service="worker", resource="memory") > 0
        assert httpx.get(f"{worker.url}/v1/photos", timeout=10).status_code == 404  # no API on a worker
    finally:
        worker.stop()


def test_logs_are_json_lines_with_the_request_id(loaded: tuple[ServerProcess, str]) -> None:
    server, _ = loaded
    assert server.log_path is not None
    entries = []
    for line in server.log_path.read_text().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    assert entries, "no JSON log line"
    assert all(
        {"ts", "level", "logger", "message", "service", "region", "request_id"} <= set(e) for e in entries
    )
    mine = [e for e in entries if e["request_id"] == "obs-request-42"]
    assert mine
    assert mine[0]["logger"] == "photostore.access"
    assert "GET /v1/photos 200" in mine[0]["message"]


def test_top_shows_the_live_figures(loaded: tuple[ServerProcess, str]) -> None:
    server, key = loaded
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}) as client:
        client.get("/v1/photos")
    result = subprocess.run(
        [PHOTOSTORE, "top", "--once", "--interval", "0.5", "--url", server.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    for heading in ("requests/s", "p99", "consumer lag", "thumbnails", "shards", "processes"):
        assert heading in result.stdout
    down = subprocess.run(
        [PHOTOSTORE, "top", "--once", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert down.returncode == 1
    assert "photostore serve" in down.stderr
