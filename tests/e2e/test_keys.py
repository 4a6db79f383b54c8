"""``photostore keys``: scoped keys are created, listed without secrets, rotated and revoked, and the
running service honours each at once (keys it has not verified before). Embedded mode: keys are
rows on the user's shard, and tests/contract runs the key queries on PostgreSQL too."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.http import assert_problem
from tests.support.images import jpeg
from tests.support.server import PHOTOSTORE, ServerProcess, create_user, embedded_server


def _keys(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PHOTOSTORE, "keys", *args], env=server._environment(), capture_output=True, text=True, timeout=60
    )


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _as(server: ServerProcess, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from embedded_server(tmp_path_factory, "keys")


def test_scoped_keys_rotation_and_revocation(server: ServerProcess) -> None:
    user_id, first = create_user(server.url, "keyholder")
    reader = _json(_keys(server, "create", user_id, "--scope", "read"))
    assert reader["scopes"] == ["read"]

    # A read key reads and cannot write.
    with _as(server, reader["api_key"]) as client:
        assert client.get("/v1/photos").status_code == 200
        upload = client.post("/v1/photos", files={"file": ("a.jpg", jpeg(64, 48), "image/jpeg")})
        assert_problem(upload, 403, "forbidden")
        assert_problem(client.delete(f"/v1/photos/{user_id}"), 403, "forbidden")

    listed = _json(_keys(server, "list", user_id, "--json"))
    assert [k["scopes"] for k in listed] == [["read", "write"], ["read"]]
    assert all("api_key" not in k for k in listed)
    shown = _keys(server, "list", user_id)
    assert reader["api_key"].rsplit("_", 1)[1] not in shown.stdout + json.dumps(listed)  # no secrets

    # Rotation: the new key has the old one's scopes; the old one is refused from then on.
    old_id = listed[0]["key_id"]
    rotated = _json(_keys(server, "rotate", user_id, old_id))
    assert (rotated["replaces"], rotated["scopes"]) == (old_id, ["read", "write"])
    with _as(server, first) as client:
        assert_problem(client.get("/v1/photos"), 401, "unauthorized")
    with _as(server, rotated["api_key"]) as client:
        made = client.post("/v1/photos", files={"file": ("b.jpg", jpeg(64, 48, seed=3), "image/jpeg")})
        assert made.status_code == 201, made.text

    after = {k["key_id"]: k for k in _json(_keys(server, "list", user_id, "--json"))}
    assert after[old_id]["revoked_at"] is not None
    assert after[rotated["key_id"]]["revoked_at"] is None

    revoked = _keys(server, "revoke", user_id, reader["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    again = _keys(server, "revoke", user_id, reader["key_id"])
    assert again.returncode == 1
    assert "no live key" in again.stderr
    unknown_user = _keys(server, "create", "01a22597-7d45-7406-8abd-c92ade713a89")
    assert unknown_user.returncode == 1
    assert "no user" in unknown_user.stderr
    assert _keys(server, "list", "not-a-uuid").returncode == 2
