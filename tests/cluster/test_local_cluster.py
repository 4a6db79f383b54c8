"""`photostore cluster up|status|down` starts the real engines on loopback and stops exactly them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from photostore.cluster.engines import port_open
from photostore.cluster.local import ClusterState
from photostore.settings import load_settings
from tests.support.engines.availability import unavailable

PHOTOSTORE = str(Path(sys.executable).with_name("photostore"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOSTORE_")}
    return subprocess.run([PHOTOSTORE, *args], capture_output=True, text=True, env=env, timeout=180)


def test_up_status_down(tmp_path: Path) -> None:
    folder = tmp_path / "cluster"
    up = run("cluster", "up", "--dir", str(folder))
    if up.returncode != 0:
        unavailable(f"cluster up failed: {up.stderr[-2000:]}")
    try:
        state = ClusterState.load(folder)
        assert state is not None
        names = sorted(p.name for p in state.processes)
        assert len([n for n in names if n.startswith("redis-")]) == 6
        assert {"seaweedfs", "kafka-broker"} <= set(names)
        status = run("cluster", "status", "--dir", str(folder))
        assert status.returncode == 0, status.stdout + status.stderr
        settings = load_settings(state.settings_file)
        assert settings.metadata.backend == "postgres"
        assert settings.blobs.backend == "s3"
        assert settings.events.backend == "kafka"
        assert settings.cache.backend == "redis"
        assert settings.cache.redis.mode == "cluster"
        assert len(settings.cache.redis.cluster_nodes) == 6
        assert (state.settings_file.stat().st_mode & 0o777) == 0o600  # it holds the S3 secret
        again = run("cluster", "up", "--dir", str(folder))
        assert again.returncode == 1
        assert "already up" in again.stderr
    finally:
        down = run("cluster", "down", "--dir", str(folder))
    assert down.returncode == 0, down.stderr
    assert "stopped 8 processes" in down.stdout
    assert not any(p.alive() for p in state.processes)
    assert not any(port_open(p.port) for p in state.processes)
    assert run("cluster", "status", "--dir", str(folder)).returncode == 1
