"""510 hostile uploads (tests/support/hostile.py) against a running service: every one answered with
a 4xx problem+json within a time bound, the process's memory within a bound, and not one row or
object left behind. Validation runs before any store is touched, the same in both modes, so the
embedded service is asked (test_bad_input.py covers the cluster mode's refusals)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.hostile import hostile_inputs
from tests.support.http import PROBLEM, stored_objects
from tests.support.server import ServerProcess, create_user, embedded_server

SECONDS_PER_UPLOAD = 2.0  # the slowest refusal allowed (most take a few milliseconds)
MEMORY_GROWTH_BYTES = 256 * 1024 * 1024  # resident memory the whole run may add


def _resident_bytes(server: ServerProcess) -> float:
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    found = re.search(r"^process_resident_memory_bytes (\S+)$", metrics, re.MULTILINE)
    assert found is not None, "the service exports process_resident_memory_bytes"
    return float(found.group(1))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from embedded_server(tmp_path_factory, "hostile")


@pytest.fixture(scope="module")
def alice(server: ServerProcess) -> Iterator[httpx.Client]:
    _, key = create_user(server.url, "alice")
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        yield client


def test_every_hostile_upload_is_refused_quickly_and_leaves_nothing(
    server: ServerProcess, alice: httpx.Client
) -> None:
    cases = hostile_inputs(seed=2026)
    assert len(cases) >= 500
    before = _resident_bytes(server)
    wrong, slowest = [], 0.0
    for n, case in enumerate(cases):
        started = time.perf_counter()
        if n % 2:  # half as a multipart form with the case's (often lying) name and type
            response = alice.post("/v1/photos", files={"file": (case.filename, case.data, case.content_type)})
        else:
            response = alice.post(
                "/v1/photos", content=case.data, headers={"content-type": case.content_type}
            )
        slowest = max(slowest, time.perf_counter() - started)
        problem = response.headers.get("content-type", "").startswith(PROBLEM)
        if not (400 <= response.status_code < 500 and problem and response.json().get("code")):
            wrong.append(f"{case.kind}: {response.status_code} {response.text[:120]}")
    assert wrong == []
    assert slowest < SECONDS_PER_UPLOAD, f"the slowest refusal took {slowest:.2f} s"
    assert _resident_bytes(server) - before < MEMORY_GROWTH_BYTES
    assert alice.get("/v1/photos").json()["items"] == []
    assert stored_objects(server) == set()
