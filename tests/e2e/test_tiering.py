"""Storage tiering end to end, in both modes, against a running service and the real CLI.

Old photos and recent ones are uploaded; ``photostore tier run`` moves exactly the old originals
to the cold bucket, variants stay hot, the service still serves every original with its bytes,
and reading one brings it back on the next pass. The passes judge idleness ``--as-of`` a time
``cold_after`` past a moment between the two uploads, so how long the commands take cannot move
the line between old and recent.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.cluster import server_in_mode
from tests.support.http import stored_objects
from tests.support.images import jpeg
from tests.support.server import PHOTOSTORE, ServerProcess, create_user, wait_ready_photo

COLD_AFTER_S = 600
OLD, RECENT = 4, 3


def _cold_bucket(server: ServerProcess) -> str:
    return "photos-cold" if server.tenant is None else f"{server.tenant.bucket_prefix}cold"


def _env(proc: ServerProcess) -> dict[str, str]:
    return {
        "PHOTOSTORE_TIERING__COLD_BUCKET": _cold_bucket(proc),
        "PHOTOSTORE_TIERING__COLD_AFTER": f"PT{COLD_AFTER_S}S",
        "PHOTOSTORE_TIERING__ACCESS_RESOLUTION": "PT1S",
        "PHOTOSTORE_TIERING__ACCESS_FLUSH_S": "0.2",
        # Sources outlive a switch briefly: the views a reader may hold are re-read on a miss.
        "PHOTOSTORE_REBALANCE__OBJECT_GRACE_S": "0.5",
    }


@pytest.fixture(scope="module", params=["embedded", "cluster"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    yield from server_in_mode(request, tmp_path_factory, "tiering", _env)


def _tier(server: ServerProcess, command: str, as_of: datetime) -> dict[str, Any]:
    when = as_of.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    done = subprocess.run(
        [PHOTOSTORE, "tier", command, "--json", "--as-of", when],
        env=server._environment(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _upload(client: httpx.Client, seed: int) -> tuple[str, bytes, datetime]:
    data = jpeg(320, 240, seed=seed)
    response = client.post("/v1/photos", files={"file": (f"p{seed}.jpg", data, "image/jpeg")})
    assert response.status_code == 201, response.text
    body = response.json()
    wait_ready_photo(client, body["id"])
    return body["id"], data, datetime.fromisoformat(body["created_at"])


def _original(client: httpx.Client, photo_id: str) -> bytes:
    response = client.get(f"/v1/photos/{photo_id}/original")
    assert response.status_code == 200, response.text
    return response.content


def _where(server: ServerProcess, photo_id: str) -> dict[str, set[str]]:
    """Bucket -> the names of this photo's objects stored there ("original" or a variant file)."""
    found: dict[str, set[str]] = {}
    for path in stored_objects(server, [_cold_bucket(server)]):
        bucket, key = path.split("/", 1)
        name = key.rsplit("/", 1)[-1]
        if name.startswith(photo_id):
            found.setdefault(bucket, set()).add("original" if name == photo_id else name)
    return found


def test_old_originals_go_cold_stay_readable_and_come_back_when_read(server: ServerProcess) -> None:
    _, key = create_user(server.url, "tiers")
    cold = _cold_bucket(server)
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        old_uploads = [_upload(client, seed) for seed in range(OLD)]
        time.sleep(1.0)
        recent_uploads = [_upload(client, 100 + seed) for seed in range(RECENT)]
        old = {photo_id: data for photo_id, data, _ in old_uploads}
        recent = {photo_id: data for photo_id, data, _ in recent_uploads}
        last_old = max(at for _, _, at in old_uploads)
        first_recent = min(at for _, _, at in recent_uploads)
        as_of = last_old + (first_recent - last_old) / 2 + timedelta(seconds=COLD_AFTER_S)

        plan = _tier(server, "plan", as_of)
        assert plan["to_cold"] == {"originals": OLD, "bytes": sum(len(d) for d in old.values())}
        assert plan["to_hot"]["originals"] == 0

        result = _tier(server, "run", as_of)
        assert result["complete"], result
        assert result["objects_moved"] == OLD  # the originals only: variants stay hot
        assert result["bytes_moved"] == sum(len(d) for d in old.values())
        for photo_id in old:
            where = _where(server, photo_id)
            assert where[cold] == {"original"}, where
            (hot,) = [bucket for bucket in where if bucket != cold]
            assert "original" not in where[hot]
            assert len(where[hot]) >= 2, where  # the variants
        for photo_id in recent:
            assert cold not in _where(server, photo_id)

        listed = subprocess.run(
            [PHOTOSTORE, "buckets", "list"],
            env={**server._environment(), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        (cold_row,) = [line for line in listed.stdout.splitlines() if f" {cold} " in line]
        assert [cell.strip() for cell in cold_row.split("│")[2:4]] == ["cold tier", str(OLD)], listed.stdout

        # Every object where its row says, checksums included, the cold originals counted as placed.
        verify = subprocess.run(
            [PHOTOSTORE, "verify", "--checksums", "--json"],
            env=server._environment(),
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout.decode() + verify.stderr.decode()

        # Reading one cold original serves its bytes and records the read: the next pass brings it
        # back, and only it.
        returning = next(iter(old))
        assert _original(client, returning) == old[returning]
        time.sleep(0.6)  # the read is written within access_flush_s
        result = _tier(server, "run", as_of)
        assert result["plan"]["to_hot"] == {"originals": 1, "bytes": len(old[returning])}, result
        assert result["plan"]["to_cold"]["originals"] == 0, result
        assert result["complete"], result
        assert result["objects_moved"] == 1, result
        assert cold not in _where(server, returning)
        for photo_id in set(old) - {returning}:
            assert _where(server, photo_id)[cold] == {"original"}

        # The service serves every original, cold or hot, byte for byte.
        for photo_id, data in {**old, **recent}.items():
            assert _original(client, photo_id) == data
