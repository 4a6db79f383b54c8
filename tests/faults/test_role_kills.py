"""SIGKILL the api, the relay and the workers, one at a time at random moments, while clients
upload and read concurrently; restart each. At the end every acknowledged upload reads back
byte-identical and gets its variants, and no request got a 5xx (a killed api drops connections,
which clients see as transport errors, never as a 5xx).

Embedded mode, the three roles as separate processes on one data folder. The suite kills 5 times
during 250 uploads; ``make test-long`` kills 50 times during 2,000 (``PHOTOSTORE_CRASH_KILLS``,
``PHOTOSTORE_CRASH_UPLOADS``).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.faults.load import LoadGenerator, LoadUser, verify_acknowledged
from tests.support.server import ServerProcess, create_user

KILLS = int(os.environ.get("PHOTOSTORE_CRASH_KILLS", "5"))
UPLOADS = int(os.environ.get("PHOTOSTORE_CRASH_UPLOADS", "250"))
ROLES = ("api", "relay", "worker")


@pytest.mark.timeout(3600)
def test_roles_killed_at_random_during_uploads_lose_nothing(tmp_path: Path) -> None:
    seed = random.randrange(1 << 32)
    print(f"kill schedule from random.Random({seed})")  # replay a failure with it
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    api = ServerProcess(data_dir, role="api")
    procs = {"api": api.start()}
    procs["relay"] = ServerProcess(data_dir, role="relay").start()
    procs["worker"] = ServerProcess(data_dir, role="worker").start()
    try:
        users = [LoadUser(*create_user(api.url, f"crash-{n}"), -1) for n in range(4)]
        # The upload budget covers the uploads that fail while the api is down; the run ends once
        # UPLOADS were acknowledged, and the kills are spread over them.
        load = LoadGenerator(api.url, users, clients=8, max_uploads=UPLOADS * 10, max_s=3000, pause_s=0.02)
        load.start()
        kills: list[str] = []
        try:
            for n in range(KILLS):
                load.wait_acknowledged((n + 1) * UPLOADS // (KILLS + 1), timeout_s=120)
                time.sleep(rng.uniform(0.0, 0.3))
                role = rng.choice(ROLES)
                kills.append(role)
                procs[role].kill()
                procs[role] = ServerProcess(data_dir, role=role, port=procs[role].port).start(timeout_s=60)
            load.wait_acknowledged(UPLOADS, timeout_s=300)
        finally:
            result = load.stop()
        assert len(kills) == KILLS
        assert result.server_errors() == {}, result.summary()
        assert len(result.acknowledged) >= UPLOADS, result.summary()
        problems = verify_acknowledged(api.url, result.acknowledged, timeout_s=120)
        assert problems == [], problems[:5]
    finally:
        for proc in procs.values():
            proc.stop()
