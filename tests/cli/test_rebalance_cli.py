"""``photostore shards add|remove``, ``buckets add``, ``rebalance``, ``rebalance status`` and
``verify``, run as the real executable on a temporary embedded deployment."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from photostore.pipeline.users import create_user
from photostore.runtime import open_runtime
from photostore.settings import load_settings
from tests.cli.test_cli import ok, photostore, photostore_many, tables

FAST = {
    "PHOTOSTORE_REBALANCE__PLAN_GRACE_S": "0",
    "PHOTOSTORE_REBALANCE__CLEANUP_GRACE_S": "0",
    "PHOTOSTORE_REBALANCE__OBJECT_GRACE_S": "0",
}
USERS = 40


def _with_users(data_dir: Path) -> None:
    """USERS users, made in this process (a command per user would cost a start-up each)."""

    async def make() -> None:
        settings = load_settings(data_dir=data_dir, placement={"partition_power": 12})
        runtime = await open_runtime(settings)
        try:
            for n in range(USERS):
                await create_user(runtime.metadata, f"u{n}")
        finally:
            await runtime.close()

    asyncio.run(make())


def test_help_of_the_rebalancing_commands(tmp_path: Path) -> None:
    expected = {
        ("shards", "add"): ["Add a shard", "--dry-run", "--plan-only", "--weight"],
        ("shards", "remove"): ["Move every user off a shard", "shard_id"],
        ("buckets", "add"): ["Add a bucket", "SHA-256", "name"],
        ("buckets", "remove"): ["Move every object out of a bucket"],
        ("rebalance",): ["Run (or resume after a crash)", "--dry-run", "--no-objects", "status"],
        ("rebalance", "status"): ["The running plan", "--json"],
        ("verify",): ["Check every user is on the shard", "--checksums", "--json"],
    }
    results = photostore_many(tmp_path / "data", [[*command, "--help"] for command in expected])
    for (command, texts), result in zip(expected.items(), results, strict=True):
        ok(result)
        for text in texts:
            assert text in result.stdout, f"{text!r} missing from the help of {command}:\n{result.stdout}"


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _with_users(data_dir)
    shown = ok(photostore(data_dir, "shards", "add", "--dry-run", "--json"))
    plan = json.loads(shown.stdout)
    assert plan["total_users"] == USERS
    assert plan["ideal_fraction"] == pytest.approx(0.2, abs=0.001)
    assert 0.19 < plan["moved_key_fraction"] <= 0.21
    assert {m["target"] for m in plan["moves"]} <= {4}
    assert sum(m["users"] for m in plan["moves"]) == plan["moved_users"]
    table = ok(photostore(data_dir, "shards", "add", "--dry-run"))
    assert "ratio to ideal" in table.stdout
    status = json.loads(ok(photostore(data_dir, "rebalance", "status", "--json")).stdout)
    assert status["plan"] is None  # a dry run records nothing
    rows = tables(ok(photostore(data_dir, "shards", "list")).stdout)["metadata shards (map version 1)"]
    assert len(rows) == 4


def test_add_then_remove_a_shard_then_verify(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _with_users(data_dir)
    planned = ok(photostore(data_dir, "shards", "add", "--plan-only", env=FAST))
    assert "planned: add a shard" in planned.stderr
    status = json.loads(ok(photostore(data_dir, "rebalance", "status", "--json")).stdout)
    assert status["plan"] == "add a shard"
    assert set(status["ranges_by_step"]) == {"pending"}
    again = photostore(data_dir, "shards", "remove", "1", env=FAST)  # one plan at a time
    assert again.returncode == 1
    assert "already planned" in again.stderr

    done = json.loads(ok(photostore(data_dir, "rebalance", "--json", "--no-objects", env=FAST)).stdout)
    assert done["describe"] == "add a shard"
    assert done["keys"] > 0
    rows = tables(ok(photostore(data_dir, "shards", "list")).stdout)
    (title,) = [t for t in rows if t.startswith("metadata shards")]
    assert [row[0] for row in rows[title]] == ["0", "1", "2", "3", "4"]
    assert sum(int(row[2]) for row in rows[title]) == USERS

    ok(photostore(data_dir, "shards", "remove", "4", env=FAST))
    verified = json.loads(ok(photostore(data_dir, "verify", "--checksums", "--json")).stdout)
    assert verified == {"problems": [], "clean": True}
    status = json.loads(ok(photostore(data_dir, "rebalance", "status", "--json")).stdout)
    assert [f["describe"] for f in status["finished"]][:2] == ["add a shard", "remove shard 4"]


def test_remove_of_an_unknown_shard_exits_2_naming_the_shards(tmp_path: Path) -> None:
    refused = photostore(tmp_path / "data", "shards", "remove", "9")
    assert refused.returncode == 2
    assert "shard 9 is not on the map" in refused.stderr


def test_rebalance_with_nothing_planned_says_so(tmp_path: Path) -> None:
    result = ok(photostore(tmp_path / "data", "rebalance", "--no-objects"))
    assert "no rebalance is planned" in result.stderr
