"""Corrupt bytes are never served: a running service that checks every read (verify_reads = 1)
answers 500 ``object_corrupt`` for an object whose stored bytes were changed, moves it to the
quarantine, keeps refusing it, and ``photostore audit`` reports it. Both modes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.support.cluster import server_in_mode
from tests.support.http import assert_problem, overwrite_object, stored_objects
from tests.support.images import jpeg
from tests.support.server import PHOTOSTORE, ServerProcess, create_user, wait_ready_photo


@pytest.fixture(scope="module", params=["embedded", "cluster"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    yield from server_in_mode(
        request, tmp_path_factory, "integrity", {"PHOTOSTORE_INTEGRITY__VERIFY_READS": "1.0"}
    )


def _quarantine(server: ServerProcess) -> str:
    return "photos-quarantine" if server.tenant is None else f"{server.tenant.bucket_prefix}quarantine"


def _stored(server: ServerProcess, photo_id: str) -> dict[str, str]:
    """Object name ("original" or the variant file's middle part) -> bucket/key, the quarantine aside."""
    found = {}
    for path in stored_objects(server):
        if path.startswith(_quarantine(server) + "/"):
            continue
        name = path.rsplit("/", 1)[-1]
        if name.startswith(photo_id):
            found["original" if name == photo_id else name.split(".")[1]] = path
    return found


def test_a_corrupt_object_is_quarantined_never_served_and_reported(server: ServerProcess) -> None:
    _, key = create_user(server.url, "rot")
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        data = jpeg(640, 480, seed=11)
        photo_id = client.post("/v1/photos", files={"file": ("a.jpg", data, "image/jpeg")}).json()["id"]
        wait_ready_photo(client, photo_id)
        assert client.get(f"/v1/photos/{photo_id}/original").content == data
        where = _stored(server, photo_id)

        rotten = bytearray(data)
        rotten[len(rotten) // 2] ^= 0x40
        overwrite_object(server, where["original"], bytes(rotten))
        overwrite_object(server, where["preview"], b"\xff\xd8 truncated")

        for attempt in range(2):  # detected and quarantined; then refused from the quarantine
            response = client.get(f"/v1/photos/{photo_id}/original")
            assert_problem(response, 500, "object_corrupt")
            assert bytes(rotten) not in response.content, attempt
        ranged = client.get(f"/v1/photos/{photo_id}/original", headers={"range": "bytes=0-99"})
        assert_problem(ranged, 500, "object_corrupt")
        assert_problem(client.get(f"/v1/photos/{photo_id}/variants/preview"), 500, "object_corrupt")
        assert client.get(f"/v1/photos/{photo_id}/variants/thumb").status_code == 200  # untouched: served
        assert client.get(f"/v1/photos/{photo_id}").status_code == 200  # the metadata still answers

    assert set(_stored(server, photo_id)) == {"thumb"}  # the corrupt ones are out of their places
    quarantine = _quarantine(server)
    held = {path for path in stored_objects(server, [quarantine]) if path.startswith(quarantine + "/")}
    for name in ("original", "preview"):
        assert f"{quarantine}/{where[name]}" in held
        assert f"{quarantine}/{where[name]}.json" in held

    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert "photostore_integrity_corrupt_total 2.0" in metrics

    env = server._environment()
    audit = subprocess.run(
        [PHOTOSTORE, "audit", "--json"], env=env, capture_output=True, timeout=120, check=False
    )
    assert audit.returncode == 1, audit.stderr.decode()
    report = json.loads(audit.stdout)
    assert not report["whole"]
    assert {(p["photo_id"], p["object"]) for p in report["quarantined_before"]} == {
        (photo_id, "original"),
        (photo_id, "preview"),
    }
    assert report["missing"] == []

    # Nothing live is an orphan: gc with no grace finds the one object left (the thumbnail) named.
    gc = subprocess.run(
        [PHOTOSTORE, "gc", "--grace-s", "0", "--json"], env=env, capture_output=True, timeout=120, check=False
    )
    assert gc.returncode == 0, gc.stderr.decode()
    collected = json.loads(gc.stdout)
    assert (collected["listed"], collected["orphans"], collected["deleted"]) == (1, 0, 0)
