"""The autoscaler against a real backlog and a real local worker pool (the issue's done-when).

An api-only server and a relay run on one embedded data folder; no worker runs, so uploads pile up
as a backlog on the event log. ``photostore autoscale`` then watches the api's consumer lag and
starts ``photostore serve --role worker`` processes while it is high, and stops them one by one,
each a cooldown apart, once the workers have drained it. The photos only become ready because
those worker processes really ran.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from threading import Thread
from typing import Any

import httpx
import pytest

from tests.support import images
from tests.support.server import ADMIN_TOKEN, PHOTOSTORE, ServerProcess, create_user, stop_group

PHOTOS = 60
SCALE_UP_LAG = 20
UP_COOLDOWN_S = 2.0
DOWN_COOLDOWN_S = 3.0
MAX_WORKERS = 4
DEADLINE_S = 150.0


def _rules() -> str:
    return json.dumps(
        [
            {
                "service": "worker",
                "metric": "consumer_lag",
                "threshold": SCALE_UP_LAG,
                "action": "scale_up",
                "count": 2,
                "cooldown_s": UP_COOLDOWN_S,
            },
            {
                "service": "worker",
                "metric": "consumer_lag",
                "threshold": 1,
                "action": "scale_down",
                "count": 1,
                "cooldown_s": DOWN_COOLDOWN_S,
            },
        ]
    )


@pytest.fixture
def backlog(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """An api server with PHOTOS uploads waiting for workers; (api, api key)."""
    data_dir = tmp_path / "data"
    fast_gauges = {"PHOTOSTORE_SERVER__METRICS_REFRESH_S": "0.3"}
    api = ServerProcess(data_dir, role="api", env=fast_gauges).start()
    relay = ServerProcess(data_dir, role="relay", env=fast_gauges).start()
    try:
        _, key = create_user(api.url, "busy")
        with httpx.Client(base_url=api.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as c:
            for seed in range(PHOTOS):
                answer = c.post("/v1/photos", content=images.jpeg(160, 120, seed=1000 + seed))
                assert answer.status_code == 201, answer.text
        yield api, key
    finally:
        relay.stop()
        api.stop()


def _lag(api: ServerProcess) -> float:
    total = 0.0
    for line in httpx.get(f"{api.url}/metrics", timeout=10).text.splitlines():
        if line.startswith("photostore_consumer_lag{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _ready_count(api: ServerProcess, key: str) -> int:
    page = httpx.get(
        f"{api.url}/v1/photos", params={"limit": 200}, headers={"authorization": f"Bearer {key}"}, timeout=30
    ).json()
    return sum(1 for item in page["items"] if item["status"] == "ready")


def test_workers_are_added_while_lag_is_high_and_removed_after_it_drains(
    backlog: tuple[ServerProcess, str],
) -> None:
    api, key = backlog
    deadline = time.monotonic() + 30
    while _lag(api) < SCALE_UP_LAG * 2:  # the relay has published the backlog
        assert time.monotonic() < deadline, f"no backlog built: lag {_lag(api)}"
        time.sleep(0.2)
    assert _ready_count(api, key) == 0  # nothing consumes it yet

    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOSTORE_")}
    env.update(
        {
            "PHOTOSTORE_DATA_DIR": str(api.data_dir),
            "PHOTOSTORE_ADMIN_TOKEN": ADMIN_TOKEN,
            "PHOTOSTORE_LOG_LEVEL": "warning",
            "PHOTOSTORE_PLACEMENT__PARTITION_POWER": "12",
            "PHOTOSTORE_AUTOSCALE__SERVICE_URLS": json.dumps([api.url]),
            "PHOTOSTORE_AUTOSCALE__RULES": _rules(),
            "PHOTOSTORE_AUTOSCALE__CONSUMERS__ENABLED": "false",
            "PHOTOSTORE_AUTOSCALE__LIMITS": json.dumps(
                {"worker": {"min_replicas": 0, "max_replicas": MAX_WORKERS}}
            ),
        }
    )
    log_path = api.data_dir.parent / "autoscale.log"
    with log_path.open("w") as log:
        scaler = subprocess.Popen(
            [PHOTOSTORE, "autoscale", "--json", "--interval", "0.5"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            text=True,
        )
    rounds: list[dict[str, Any]] = []
    reader = Thread(
        target=lambda: rounds.extend(json.loads(line) for line in scaler.stdout or []), daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not (_scaled_up(rounds) and _back_to_zero(rounds)):
            assert scaler.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"no full cycle in {DEADLINE_S} s: {rounds[-3:]}"
            time.sleep(0.5)
    finally:
        stop_group(scaler)  # type: ignore[arg-type]
        reader.join(timeout=10)
        if scaler.stdout is not None:
            scaler.stdout.close()

    assert _ready_count(api, key) == PHOTOS  # only the pool's workers could have done this
    ups = [
        d for r in rounds for d in r["decisions"] if d["outcome"] == "scaled" and d["action"] == "scale_up"
    ]
    downs = [
        (r["at"], d)
        for r in rounds
        for d in r["decisions"]
        if d["outcome"] == "scaled" and d["action"] == "scale_down"
    ]
    assert ups, "never scaled up"
    assert all(d["value"] > SCALE_UP_LAG for d in ups)
    assert max(max(r["replicas"]["worker"] for r in rounds), max(d["target"] for d in ups)) >= 2
    assert all(d["target"] <= MAX_WORKERS for d in ups)
    assert all(d["value"] < 1 for _, d in downs)  # removed only once drained
    assert len(downs) >= 2
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(downs)]
    assert all(gap >= DOWN_COOLDOWN_S - 0.1 for gap in gaps), gaps  # one removal per cooldown
    print(  # shown with -s: the cycle's figures
        f"{len(rounds)} rounds; scale-ups at lag {[d['value'] for d in ups]} "
        f"to {[d['target'] for d in ups]}; "
        f"removals {[d['target'] for _, d in downs]} with gaps {[round(g, 2) for g in gaps]} s"
    )
    cooling = [d for r in rounds for d in r["decisions"] if d["outcome"] == "cooling_down"]
    assert cooling, "the cooldown never held a rule back"


def _scaled_up(rounds: list[dict[str, Any]]) -> bool:
    return any(r["applied"].get("worker", 0) >= 2 for r in rounds)


def _back_to_zero(rounds: list[dict[str, Any]]) -> bool:
    seen_up = False
    for r in rounds:
        seen_up = seen_up or r["applied"].get("worker", 0) >= 2
        if seen_up and r["applied"].get("worker") == 0:
            return True
    return False
