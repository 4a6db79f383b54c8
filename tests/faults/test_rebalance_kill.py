"""A rebalance SIGKILLed at random points, then resumed, ends clean: nothing lost, nobody misplaced.

The mover runs as the real ``photostore rebalance`` command in a subprocess, killed after a random
delay several times in a row; then it is run to the end, and ``photostore verify`` and a read of every
user's library check the result. The default suite kills a few times per plan (add a shard, then
remove one), on SQLite and on PostgreSQL shards; ``make test-long`` sets
``PHOTOSTORE_TEST_REBALANCE_KILLS`` for a long run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from photostore.pipeline.upload import UploadService
from photostore.pipeline.users import create_user
from photostore.runtime import open_runtime
from photostore.settings import Settings, load_settings
from tests.support import images
from tests.support.engines.postgres import SYSTEM, execute, fetch, run_async
from tests.support.server import PHOTOSTORE

KILLS = int(os.environ.get("PHOTOSTORE_TEST_REBALANCE_KILLS", "4"))  # per plan
USERS = 16
PHOTOS_EACH = 2


@pytest.fixture(params=["sqlite", "postgres"])
def environment(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOSTORE_")}
    env.update(
        {
            "PHOTOSTORE_DATA_DIR": str(tmp_path / "data"),
            "PHOTOSTORE_LOG_LEVEL": "warning",
            "PHOTOSTORE_PLACEMENT__SHARDS": "2",
            "PHOTOSTORE_PLACEMENT__PARTITION_POWER": "8",
            "PHOTOSTORE_REBALANCE__PLAN_GRACE_S": "0.2",
            "PHOTOSTORE_REBALANCE__CLEANUP_GRACE_S": "0.2",
            "PHOTOSTORE_REBALANCE__PARALLEL": "2",
        }
    )
    prefix = f"ps_kill_{secrets.token_hex(4)}"
    if request.param == "postgres":
        env["PHOTOSTORE_METADATA__BACKEND"] = "postgres"
        env["PHOTOSTORE_METADATA__POSTGRES__DSN_TEMPLATE"] = SYSTEM.dsn(prefix + "_{shard}").replace(
            "+asyncpg", ""
        )
    try:
        yield env
    finally:
        if request.param == "postgres":
            run_async(lambda: _drop(prefix))


async def _drop(prefix: str) -> None:
    names = await fetch(SYSTEM, "SELECT datname FROM pg_database WHERE datname LIKE $1", prefix + "_%")
    await execute(SYSTEM, *(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)' for row in names))


def _settings(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("PHOTOSTORE_")})
    try:
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def _populate(settings: Settings) -> dict[uuid.UUID, set[uuid.UUID]]:
    runtime = await open_runtime(settings)
    try:
        uploads = UploadService(
            runtime.metadata, runtime.blobs, runtime.bucket_map, settings.limits, runtime.notifier
        )
        library: dict[uuid.UUID, set[uuid.UUID]] = {}
        for n in range(USERS):
            user, _ = await create_user(runtime.metadata, f"user-{n}")
            library[user.id] = {
                (await uploads.upload(user.id, images.jpeg(48, 32, seed=n * 10 + p))).photo.id
                for p in range(PHOTOS_EACH)
            }
        return library
    finally:
        await runtime.close()


async def _library(settings: Settings, users: list[uuid.UUID]) -> dict[uuid.UUID, set[uuid.UUID]]:
    runtime = await open_runtime(settings)
    try:
        return {u: {p.id for p in await runtime.metadata.list_photos(u, 1000)} for u in users}
    finally:
        await runtime.close()


def _photostore(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PHOTOSTORE, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _kill_after(env: dict[str, str], delay_s: float) -> bool:
    """Start ``photostore rebalance``; SIGKILL it after ``delay_s``. True if it finished first."""
    with subprocess.Popen(
        [PHOTOSTORE, "rebalance"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as mover:
        deadline = time.monotonic() + delay_s
        while time.monotonic() < deadline and mover.poll() is None:
            time.sleep(0.01)
        if mover.poll() is not None:
            assert mover.returncode == 0, mover.stderr.read() if mover.stderr else ""
            return True
        mover.send_signal(signal.SIGKILL)
        mover.wait(timeout=30)
        return False


def _start_up_s(env: dict[str, str]) -> float:
    """How long ``photostore rebalance`` takes with no plan: its start (imports, opening the stores),
    which a kill meant to land in the move must outlast (2-3 s on a loaded 2-core machine)."""
    started = time.monotonic()
    idle = _photostore(env, "rebalance", "--json")
    assert idle.returncode == 0, idle.stderr
    return time.monotonic() - started


@pytest.mark.timeout(900)
def test_a_rebalance_killed_at_random_points_resumes_and_ends_clean(environment: dict[str, str]) -> None:
    settings = _settings(environment)
    library = asyncio.run(_populate(settings))
    rng = random.Random(int(os.environ.get("PHOTOSTORE_TEST_SEED", "7")))
    start_up_s = _start_up_s(environment)
    killed_at: list[dict[str, int]] = []  # the journal's keys by step after each kill
    for plan in (["shards", "add", "--plan-only"], ["shards", "remove", "0", "--plan-only"]):
        planned = _photostore(environment, *plan)
        assert planned.returncode == 0, planned.stderr
        for _ in range(KILLS):
            # Drawn past the start: kills during it would test nothing but a dead start.
            if _kill_after(environment, start_up_s * rng.uniform(0.8, 1.0) + rng.uniform(0.0, 3.0)):
                break
            status = json.loads(_photostore(environment, "rebalance", "status", "--json").stdout)
            killed_at.append(status["keys_by_step"])
        finished = _photostore(environment, "rebalance", "--json")
        assert finished.returncode == 0, finished.stderr
        status = json.loads(_photostore(environment, "rebalance", "status", "--json").stdout)
        assert status["plan"] is None
        verified = _photostore(environment, "verify", "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert json.loads(verified.stdout)["clean"] is True
        assert asyncio.run(_library(settings, list(library))) == library
    shards = json.loads(_photostore(environment, "rebalance", "status", "--json").stdout)
    assert len([f for f in shards["finished"] if "keys" in f]) == 2
    print("journal after each kill:", killed_at)
    assert any(steps for steps in killed_at), "no kill landed while users were moving"
