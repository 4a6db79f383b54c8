"""Rebalancing under a stream of concurrent uploads, reads and deletes, against a real server.

A ``photostore serve`` runs with its relay, workers and routing watcher; clients upload, read back
and delete photos of their users (tests/faults/load.py) while ``photostore shards add``, then
``photostore shards remove 0``, then ``photostore buckets add`` run as commands beside it. What
must hold, in both modes: no read fails; no 5xx but 503 with Retry-After (a write meeting a
user's fence); every acknowledged photo that was not deleted reads back byte-identical and becomes
ready; no deleted one comes back; every user lists exactly their photos (none lost, none twice);
``photostore verify --checksums`` is clean and no plan is left running.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from photostore.placement.shard_map import ShardMap
from photostore.placement.store import PlacementStore
from photostore.settings import load_settings
from tests.faults.load import LoadGenerator, LoadResult, LoadUser, verify_acknowledged
from tests.support.cluster import tenant_of
from tests.support.server import PHOTOSTORE, ServerProcess, create_user

USERS = 20
MOVERS = 3  # users each plan must move, at least
READ_OPS = ("photo", "original")


def _photostore(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [PHOTOSTORE, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"photostore {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


def _listed(base_url: str, user: LoadUser) -> list[str]:
    ids: list[str] = []
    url = f"{base_url}/v1/photos?limit=200"
    with httpx.Client(headers={"authorization": f"Bearer {user.api_key}"}, timeout=30) as http:
        while url:
            page = http.get(url)
            assert page.status_code == 200, page.text
            body = page.json()
            ids += [item["id"] for item in body["items"]]
            after = body.get("next_cursor")
            url = f"{base_url}/v1/photos?limit=200&cursor={after}" if after else ""
    return ids


def _users_some_of_whom_move(server: ServerProcess) -> list[LoadUser]:
    """At least USERS users, and enough that both plans move some (ids are random: without this,
    one run in a hundred would have nobody on the new shard)."""
    start = PlacementStore(server.data_dir / "placement").shard_map
    added = start.with_shard_added(start.next_shard_id)
    removed = added.with_shard_removed(0)
    users: list[LoadUser] = []
    while len(users) < USERS or min(_movers(users, start, added), _movers(users, added, removed)) < MOVERS:
        user_id, key = create_user(server.url, f"load-{len(users)}")
        users.append(LoadUser(user_id, key, -1))
    return users


def _movers(users: list[LoadUser], before: ShardMap, after: ShardMap) -> int:
    return sum(
        1
        for u in users
        if before.shard_for_id(uuid.UUID(u.user_id)) != after.shard_for_id(uuid.UUID(u.user_id))
    )


def _check_requests(result: LoadResult) -> None:
    reads = [s for s in result.samples if s.op in READ_OPS]
    assert reads, "no read ran"
    failed = [s for s in reads if s.status != 200]
    failed_reads = Counter((s.op, s.status, s.detail, s.user.user_id) for s in failed)
    assert not failed_reads, f"reads failed during the rebalance: {failed_reads}; {result.summary()}"
    errors = [s for s in result.samples if (s.status >= 500 and s.status != 503) or s.status == 0]
    assert not errors, f"errors: {errors[:5]}; {result.summary()}"
    assert not result.without_retry_after(), result.without_retry_after()[:3]
    assert not [s for s in result.samples if s.op == "thumb" and s.status >= 500]


@pytest.mark.timeout(400)
@pytest.mark.parametrize("mode", ["embedded", "cluster"])
def test_adding_and_removing_a_shard_under_load_loses_nothing(
    tmp_path: Path, mode: str, request: pytest.FixtureRequest
) -> None:
    tenant = tenant_of(request.getfixturevalue("cluster_state")) if mode == "cluster" else None
    env = {
        "PHOTOSTORE_REBALANCE__PLAN_GRACE_S": "1",
        "PHOTOSTORE_REBALANCE__CLEANUP_GRACE_S": "1",
        "PHOTOSTORE_REBALANCE__OBJECT_GRACE_S": "2",
    }
    server = ServerProcess(tmp_path / "data", tenant=tenant, env=env).start()
    try:
        users = _users_some_of_whom_move(server)
        load = LoadGenerator(
            server.url, users, clients=4, max_uploads=2000, max_s=240, pause_s=0.1, delete_chance=0.15
        ).start()
        try:
            load.wait_acknowledged(10)
            cli_env = server._environment()
            started = time.monotonic()
            add = json.loads(_photostore(cli_env, "shards", "add", "--json").stdout)
            added = time.monotonic()
            remove = json.loads(_photostore(cli_env, "shards", "remove", "0", "--json").stdout)
            removed = time.monotonic()
            prefix = tenant.bucket_prefix if tenant is not None else load_settings().placement.bucket_prefix
            moved = json.loads(_photostore(cli_env, "buckets", "add", f"{prefix}added", "--json").stdout)
            bucketed = time.monotonic()
            since = load.result.acknowledged[-1].at
            load.wait_acknowledged_since(since, 5)
        finally:
            result = load.stop()
        print(f"add {added - started:.1f} s {add}; remove {removed - added:.1f} s {remove}")
        print(f"bucket add {bucketed - removed:.1f} s {moved}")
        print(result.summary())
        assert add["keys"] > 0
        assert remove["keys"] > 0
        assert moved["objects_moved"] > 0
        assert moved["complete"], moved

        _check_requests(result)
        deleted = {d.photo_id for d in result.deleted}
        kept = [a for a in result.acknowledged if a.photo_id not in deleted]
        assert kept
        assert deleted
        problems = verify_acknowledged(server.url, kept, timeout_s=60)
        assert not problems, problems[:5]
        for user in users:
            listed = _listed(server.url, user)
            assert len(listed) == len(set(listed)), "a photo is listed twice"
            mine = {a.photo_id for a in kept if a.user.user_id == user.user_id}
            assert set(listed) == mine, f"user {user.user_id}: listed {len(listed)}, owed {len(mine)}"
        with httpx.Client(timeout=10) as http:
            for gone in list(result.deleted)[:20]:
                headers = {"authorization": f"Bearer {gone.user.api_key}"}
                assert http.get(f"{server.url}/v1/photos/{gone.photo_id}", headers=headers).status_code == 404

        verified = json.loads(_photostore(cli_env, "verify", "--checksums", "--json").stdout)
        assert verified["clean"], verified
        shards = json.loads(_photostore(cli_env, "rebalance", "status", "--json").stdout)
        assert shards["plan"] is None
        assert len([f for f in shards["finished"] if "keys" in f]) == 2
    finally:
        server.stop()
        if tenant is not None:
            tenant.drop_databases()
