"""The operator dashboard end to end, in both modes, against a running service.

Only the admin token opens ``/v1/admin/stats``. After a user uploads three photos (and one of them
again), the stats count them in every section: photos summed over shards, uploads created and
deduplicated, bucket bytes at least the originals' bytes, a lag per partition of each pipeline topic
(the SQLite log embedded, Kafka on the cluster), and ``/v1/photos`` among the requests by route.
``/admin`` carries a strict CSP and links only immutable assets that are served. (The page itself,
in a browser, is tests/e2e/test_web_app.py.)
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from photostore.api.openapi_admin import ADMIN_STATS
from tests.support import images
from tests.support.http import assert_problem
from tests.support.server import ADMIN_TOKEN, ServerProcess, wait_ready_photo

STATS = "/v1/admin/stats"
TOPICS = {"photo-upload", "photo-processing", "thumbnail-generation"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def originals(alice: httpx.Client) -> list[bytes]:
    """Three photos uploaded by alice and processed, then the first one uploaded again (a dedup)."""
    uploads = [images.jpeg(320, 240, seed=7100 + n) for n in range(3)]
    for data in uploads:
        answer = alice.post("/v1/photos", files={"file": ("p.jpg", data, "image/jpeg")})
        assert answer.status_code == 201, answer.text
        wait_ready_photo(alice, answer.json()["id"])
    again = alice.post("/v1/photos", files={"file": ("again.jpg", uploads[0], "image/jpeg")})
    assert again.status_code == 200, again.text
    return uploads


def _stats(server: ServerProcess) -> dict[str, Any]:
    response = httpx.get(f"{server.url}{STATS}", headers=ADMIN, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    Draft202012Validator(ADMIN_STATS).validate(body)  # the shape the OpenAPI document promises
    return body


def _stats_when(server: ServerProcess, ready: Any, timeout_s: float = 20.0) -> dict[str, Any]:
    """Stats once ``ready(body)`` holds (sections are reused for a few seconds)."""
    deadline = time.monotonic() + timeout_s
    body = _stats(server)
    while not ready(body) and time.monotonic() < deadline:
        time.sleep(0.5)
        body = _stats(server)
    return body


def test_stats_need_the_admin_token(server: ServerProcess, alice: httpx.Client) -> None:
    assert_problem(httpx.get(f"{server.url}{STATS}"), 401, "unauthorized")
    wrong = httpx.get(f"{server.url}{STATS}", headers={"authorization": "Bearer not-the-token"})
    assert_problem(wrong, 401, "unauthorized")
    basic = httpx.get(f"{server.url}{STATS}", headers={"authorization": f"Basic {ADMIN_TOKEN}"})
    assert_problem(basic, 401, "unauthorized")
    user_key = alice.get(STATS)  # a user's API key, even a valid one, is not the admin token
    assert user_key.status_code in (401, 403), user_key.text
    assert user_key.headers["content-type"].startswith("application/problem+json")


def test_stats_count_what_was_uploaded(server: ServerProcess, originals: list[bytes]) -> None:
    started = time.monotonic()
    body = _stats_when(server, lambda b: b["shards"]["totals"] and b["shards"]["totals"]["photos"] == 3)
    assert time.monotonic() - started < 20

    datetime.fromisoformat(body["generated_at"].replace("Z", "+00:00"))
    shards = body["shards"]
    assert shards["error"] is None
    assert sum(s["photos"] for s in shards["items"]) == 3
    assert sum(s["users"] for s in shards["items"]) >= 1
    assert sum(s["bytes"] for s in shards["items"]) == sum(len(o) for o in originals)
    assert shards["shard_map_version"] >= 1
    assert isinstance(shards["routing_version"], int)
    assert body["uploads"] == {"created": 3, "deduplicated": 1}


def test_buckets_hold_at_least_the_originals(server: ServerProcess, originals: list[bytes]) -> None:
    buckets = _stats(server)["buckets"]
    assert buckets["error"] is None
    assert buckets["items"], "the placement's buckets are listed"
    assert all(item["error"] is None for item in buckets["items"]), buckets
    assert sum(item["bytes"] for item in buckets["items"]) >= sum(len(o) for o in originals)
    assert sum(item["objects"] for item in buckets["items"]) >= len(originals)


def test_every_topic_has_a_lag_per_partition(server: ServerProcess, originals: list[bytes]) -> None:
    topics = _stats(server)["topics"]
    assert topics["error"] is None
    found = {item["topic"]: item for item in topics["items"]}
    assert set(found) >= TOPICS
    for name in TOPICS:
        topic = found[name]
        assert topic["partitions"] >= 1
        assert topic["records"] >= 1, f"{name} carried the uploads' events"
        assert topic["groups"], f"a pipeline group reads {name}"
        for group in topic["groups"]:
            assert len(group["lag"]) == topic["partitions"]
            assert all(isinstance(lag, int) and lag >= 0 for lag in group["lag"])
            assert group["total"] == sum(group["lag"])


def test_requests_cache_and_regions_of_the_process(server: ServerProcess, originals: list[bytes]) -> None:
    _stats(server)  # a request is counted once answered: this one is in the next answer
    body = _stats(server)
    requests = body["requests"]
    assert requests["by_route"]["/v1/photos"]["2xx"] >= 4  # three uploads and the duplicate
    assert requests["by_route"][STATS]["2xx"] >= 1
    assert requests["total"] == sum(sum(c.values()) for c in requests["by_route"].values())
    assert requests["total"] == sum(requests["by_status_class"].values())
    latency = requests["latency"]
    assert latency["count"] == requests["total"]  # every request counted is timed, in one step
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
    assert latency["buckets"][-1][0] == "+Inf"
    cache = body["cache"]
    assert cache["hits"] >= 0
    assert cache["misses"] >= 0
    assert cache["hit_ratio"] is None or 0 <= cache["hit_ratio"] <= 1
    assert body["regions"] == {"items": [], "age_s": body["regions"]["age_s"], "error": None}
    assert body["elapsed_ms"] < 3500


def test_the_page_is_locked_down_and_its_assets_are_immutable(server: ServerProcess) -> None:
    page = httpx.get(f"{server.url}/admin")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["cache-control"] == "no-cache"
    assert 'id="stat-uploads"' in page.text
    assert 'id="admin-token"' in page.text
    assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None, "no inline script"
    linked = re.findall(r'(?:src|href)="(/[^"]+)"', page.text)
    assert any(url.endswith(".js") for url in linked)
    assert any(url.endswith(".css") for url in linked)
    for url in linked:
        assert url.startswith("/assets/"), url
        asset = httpx.get(f"{server.url}{url}")
        assert asset.status_code == 200, url
        assert "immutable" in asset.headers["cache-control"], url
        kind = "text/javascript" if url.endswith(".js") else "text/css"
        assert asset.headers["content-type"].startswith(kind), url
