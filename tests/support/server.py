"""Run the real service as a separate process (``photostore serve``) for end-to-end and fault tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.support.cluster import ClusterTenant

ADMIN_TOKEN = "test-admin-token-0123456789"
PHOTOSTORE = str(Path(sys.executable).with_name("photostore"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """One ``photostore serve`` process group bound to 127.0.0.1 on a free port."""

    data_dir: Path
    role: str = "all"
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    tenant: ClusterTenant | None = None  # cluster mode: its corner of the shared local cluster

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOSTORE_")}
        env.update(
            {
                "PHOTOSTORE_DATA_DIR": str(self.data_dir),
                "PHOTOSTORE_ADMIN_TOKEN": ADMIN_TOKEN,
                "PHOTOSTORE_LOG_LEVEL": "warning",
                "PHOTOSTORE_PLACEMENT__PARTITION_POWER": "12",
            }
        )
        if self.tenant is not None:
            env.update(self.tenant.env)
        env.update(self.env)
        return env

    def start(self, timeout_s: float = 30.0) -> ServerProcess:
        self.log_path = self.data_dir.parent / f"server-{self.port}-{self.role}.log"
        log = self.log_path.open("ab")
        args = [PHOTOSTORE, "serve", "--role", self.role, "--port", str(self.port)]
        # A new session, so a SIGKILL of the group takes granian's worker processes too.
        self.process = subprocess.Popen(
            args, env=self._environment(), stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        if self.role in ("all", "api"):
            self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout_s}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown code runs."""
        kill_group(self.process)

    def stop(self) -> None:
        stop_group(self.process)


def kill_group(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL a process started in its own session, with every process of its group."""
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def stop_group(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the group and wait; SIGKILL it if it has not gone within 15 s."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        kill_group(process)


def create_user(base_url: str, name: str = "alice") -> tuple[str, str]:
    """(user id, api key) of a new user, created over HTTP with the admin token."""
    response = httpx.post(
        f"{base_url}/v1/users",
        json={"name": name},
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], body["api_key"]


def wait_ready_photo(client: httpx.Client, photo_id: str, timeout_s: float = 30.0) -> dict[str, object]:
    """Poll a photo until its status is ready; returns its JSON."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/v1/photos/{photo_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] == "ready":
            return body
        time.sleep(0.1)
    raise AssertionError(f"photo {photo_id} not ready after {timeout_s}s: {body}")


def embedded_server(
    tmp_path_factory: pytest.TempPathFactory, label: str, env: Mapping[str, str] | None = None
) -> Iterator[ServerProcess]:
    """The body of a module's embedded-only ``server`` fixture: started, then stopped."""
    proc = ServerProcess(tmp_path_factory.mktemp(label) / "data", env=dict(env or {})).start()
    try:
        yield proc
    finally:
        proc.stop()
