"""Real Redis servers for tests, on loopback and free ports: single servers, a ring of three independent
servers, and a Redis Cluster of 3 primaries + 3 replicas made as ENGINES.md shows (``redis-cli --cluster
create ... --cluster-replicas 1``, node timeout 5 s).

Every server gets its own temporary directory, pidfile and log, ``--bind 127.0.0.1`` and no persistence
(``--save '' --appendonly no``). Two departures from ENGINES.md: servers run as children of the test
process (``--daemonize no``), so they are killed, frozen and restarted by handle and only servers started
here are ever signalled; and cluster nodes sync their replicas at once (``--repl-diskless-sync-delay 0``),
so the cluster is failover-ready seconds sooner.

Shared engines start once per test session, on first use, and stop at the end of the session (atexit is
a backstop). Use them through the session fixtures, made fixtures of a test module by naming them there::

    from tests.support.engines import redis as engines

    redis_cluster = engines.redis_cluster  # also redis_ring, redis_single; redis_server (per test)

(or import them into a conftest.py), or call :func:`shared_cluster`, :func:`shared_ring`,
:func:`shared_single` directly. Faults: ``RedisServer.kill()`` / ``stop()`` / ``freeze()`` / ``thaw()``
/ ``start()`` (a restart: same port and directory); on the cluster, ``kill_primary_for(key)`` (the key as
stored, prefix included) then ``restart_node(node)``, which waits until the node has rejoined (as a
replica once its replica took over) and the cluster is settled.

When redis-server or redis-cli is missing or a server will not start, the fixtures call
``unavailable(...)``: a failure under CI=true, a skip elsewhere.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from tests.support.engines.availability import free_port, port_bindable, port_open, unavailable

START_TIMEOUT_S = 10.0
CLUSTER_OK_TIMEOUT_S = 30.0
CLUSTER_BUS_OFFSET = 10000  # Redis's default: the cluster bus listens on port + 10000


class EngineStartError(RuntimeError):
    """A Redis server or cluster did not come up; the message says why (with the log's tail)."""


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise EngineStartError(f"{name} not found on PATH (apt-get install redis-server redis-tools)")
    return path


class RedisServer:
    """One redis-server child process on 127.0.0.1:``port`` with its own directory under ``root``."""

    def __init__(self, root: Path, port: int, extra_args: Sequence[str] = ()) -> None:
        self.port = port
        self.dir = root / str(port)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._extra_args = list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._frozen = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.dir / "redis.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RedisServer:
        """Start (or restart) the server and wait until it answers PING; EngineStartError if it cannot."""
        if self.running:
            return self
        args = [
            _binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.dir), "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--pidfile", str(self.dir / "redis.pid"), "--logfile", str(self.log_file),
            *self._extra_args,
        ]  # fmt: skip
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self._frozen = False
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EngineStartError(f"redis-server on {self.port} exited: {self._log_tail()}")
            if port_open(self.port) and self._pings():
                return self
            time.sleep(0.02)
        self.kill()
        raise EngineStartError(f"redis-server on {self.port} did not answer: {self._log_tail()}")

    def _pings(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_timeout=0.5) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log_file.read_text(errors="replace").splitlines()[-5:])
        return "(no log)"

    def kill(self) -> None:
        """SIGKILL: a crash, as abrupt as it gets (its data is gone: nothing is persisted)."""
        self._signal_and_wait(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 5 s): a clean shutdown."""
        self._signal_and_wait(signal.SIGTERM)

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers, so clients time out."""
        if self.running and self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)
            self._frozen = True

    def thaw(self) -> None:
        if self._frozen and self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)
            self._frozen = False

    def _signal_and_wait(self, sig: signal.Signals) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        self.thaw()  # a stopped process does not act on SIGTERM until continued
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def client(self, **options: object) -> redis.Redis:
        """A synchronous client for checks from tests (close it after use)."""
        return redis.Redis(port=self.port, socket_timeout=2, **options)


def start_servers(root: Path, count: int) -> list[RedisServer]:
    """``count`` independent servers on free ports; all or none (EngineStartError)."""
    servers: list[RedisServer] = []
    try:
        for _ in range(count):
            servers.append(RedisServer(root, _free_port(servers)).start())
    except BaseException:
        for server in servers:
            server.kill()
        raise
    return servers


def _free_port(taken: Sequence[RedisServer], *, with_bus: bool = False) -> int:
    """A free port not used by ``taken``; with its cluster bus port (port + 10000) free as well."""
    used = {s.port for s in taken} | {s.port + CLUSTER_BUS_OFFSET for s in taken}
    for _ in range(200):
        port = free_port()
        if port in used:
            continue
        bus = port + CLUSTER_BUS_OFFSET
        if with_bus and (bus > 65535 or bus in used or not port_bindable(bus)):
            continue
        return port
    raise EngineStartError("no free port found")


class RedisClusterEngine:
    """A Redis Cluster on loopback: ``primaries`` primaries with ``replicas`` replica each."""

    def __init__(self, root: Path, primaries: int = 3, replicas: int = 1) -> None:
        self.root = root
        self._size = primaries * (1 + replicas)
        self._replicas = replicas
        self.nodes: list[RedisServer] = []

    @property
    def seeds(self) -> list[str]:
        """``host:port`` of every node: the ``cluster_nodes`` setting."""
        return [node.address for node in self.nodes]

    def start(self) -> RedisClusterEngine:
        """Start the nodes, create the cluster with redis-cli and wait for cluster_state:ok everywhere."""
        cli = _binary("redis-cli")
        try:
            for _ in range(self._size):
                port = _free_port(self.nodes, with_bus=True)
                node = RedisServer(
                    self.root,
                    port,
                    [
                        "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                        "--cluster-node-timeout", "5000",
                        # Beyond ENGINES.md: sync replicas at once, not after the default 5 s delay, so
                        # the cluster is failover-ready (every replica synced) about 2 s after create.
                        "--repl-diskless-sync-delay", "0",
                    ],
                )  # fmt: skip
                self.nodes.append(node.start())
            create = [cli, "--cluster", "create", *self.seeds]
            create += ["--cluster-replicas", str(self._replicas), "--cluster-yes"]
            done = subprocess.run(create, capture_output=True, text=True, timeout=60, check=False)
            if done.returncode != 0:
                raise EngineStartError(f"redis-cli --cluster create failed: {done.stdout[-500:]}")
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()  # nothing to save: SIGKILL is as good as SIGTERM and never waits

    # --- topology -------------------------------------------------------------------------------

    def _topology(self) -> list[_NodeEntry]:
        """CLUSTER NODES as seen from a running node."""
        for node in self.nodes:
            if not node.running:
                continue
            with contextlib.suppress(redis.RedisError), node.client(decode_responses=True) as client:
                return _parse_cluster_nodes(str(client.execute_command("CLUSTER", "NODES")))
        raise EngineStartError("no cluster node is running")

    def primary_for(self, key: str) -> RedisServer:
        """The node that is primary for ``key``'s slot now (``key`` as stored: prefix included)."""
        slot = key_slot(key.encode())
        for entry in self._topology():
            if "master" in entry.flags and any(lo <= slot <= hi for lo, hi in entry.slots):
                return self._node(entry.address)
        raise EngineStartError(f"no primary serves slot {slot}")

    def _node(self, address: str) -> RedisServer:
        return next(node for node in self.nodes if node.address == address)

    def kill_primary_for(self, key: str) -> RedisServer:
        """SIGKILL the primary serving ``key``; its replica takes over about 8 s later (node timeout 5 s)."""
        node = self.primary_for(key)
        node.kill()
        return node

    def restart_node(self, node: RedisServer, timeout_s: float = CLUSTER_OK_TIMEOUT_S) -> None:
        """Restart a killed node (it rejoins from its nodes.conf, as a replica if it was replaced)."""
        node.start()
        self.wait_ok(timeout_s)

    def wait_ok(self, timeout_s: float = CLUSTER_OK_TIMEOUT_S) -> None:
        """Wait until the cluster is settled and failover-ready.

        Every running node says cluster_state:ok, sees no node failed and every replica attached; every
        replica is synced (one that never synced is not eligible for failover); and all nodes agree on
        who serves which slots (a restarted node briefly believes in its old role).
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            views = [self._settled_view(node) for node in self.nodes if node.running]
            if None not in views and len(set(views)) == 1:
                return
            time.sleep(0.1)
        raise EngineStartError(f"the Redis Cluster was not ok within {timeout_s}s")

    def _settled_view(self, node: RedisServer) -> tuple[_NodeEntry, ...] | None:
        """The primaries with their slots as ``node`` sees them, or None if it is not settled."""
        try:
            with node.client(decode_responses=True) as client:
                info = str(client.execute_command("CLUSTER", "INFO"))
                entries = _parse_cluster_nodes(str(client.execute_command("CLUSTER", "NODES")))
                replication = client.info("replication")
        except redis.RedisError:
            return None
        if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
            return None
        failed = any({"fail", "fail?"} & entry.flags for entry in entries)
        replicas = sum("slave" in entry.flags for entry in entries)
        expected = self._size - self._size // (1 + self._replicas)
        if "cluster_state:ok" not in info or failed or replicas != expected:
            return None
        primaries = (e for e in entries if e.slots and "master" in e.flags)
        return tuple(sorted(_NodeEntry(e.address, frozenset({"master"}), e.slots) for e in primaries))


@dataclass(frozen=True, order=True)
class _NodeEntry:
    address: str
    flags: frozenset[str]
    slots: tuple[tuple[int, int], ...]


def _parse_cluster_nodes(text: str) -> list[_NodeEntry]:
    """Lines of ``<id> <ip:port@bus> <flags> <primary> <ping> <pong> <epoch> <link> <slot> ...``."""
    entries: list[_NodeEntry] = []
    for line in text.strip().splitlines():
        fields = line.split()
        slots: list[tuple[int, int]] = []
        for spec in fields[8:]:
            if spec.startswith("["):
                continue  # a slot being migrated
            lo, _, hi = spec.partition("-")
            slots.append((int(lo), int(hi or lo)))
        address = fields[1].split("@", 1)[0]
        entries.append(_NodeEntry(address, frozenset(fields[2].split(",")), tuple(slots)))
    return entries


# --- shared engines: one of each per test session ------------------------------------------------------

_shared: dict[str, object] = {}
_failed: dict[str, str] = {}
_roots: list[Path] = []


def _root(kind: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"photostore-redis-{kind}-"))
    _roots.append(root)
    return root


def _shared_engine(kind: str) -> object:
    if kind in _failed:
        unavailable(_failed[kind])
    if kind not in _shared:
        try:
            if kind == "cluster":
                _shared[kind] = RedisClusterEngine(_root(kind)).start()
            elif kind == "ring":
                _shared[kind] = start_servers(_root(kind), 3)
            else:
                _shared[kind] = start_servers(_root(kind), 1)[0]
        except EngineStartError as exc:
            _failed[kind] = f"Redis ({kind}) unavailable: {exc}"
            unavailable(_failed[kind])
    return _shared[kind]


def shared_cluster() -> RedisClusterEngine:
    """The session's Redis Cluster (3 primaries + 3 replicas), started on first use."""
    engine = _shared_engine("cluster")
    assert isinstance(engine, RedisClusterEngine)
    return engine


def shared_ring() -> list[RedisServer]:
    """The session's three independent servers for the ring cache, started on first use."""
    servers = _shared_engine("ring")
    assert isinstance(servers, list)
    return servers


def shared_single() -> RedisServer:
    """The session's single server (never the system Redis on 6379), started on first use."""
    server = _shared_engine("single")
    assert isinstance(server, RedisServer)
    return server


def stop_shared(kind: str | None = None) -> None:
    """Stop the shared engines started here (all, or one kind); remove their directories at the end."""
    for name in [kind] if kind else list(_shared):
        engine = _shared.pop(name, None)
        if isinstance(engine, RedisClusterEngine):
            engine.stop()
        elif isinstance(engine, RedisServer):
            engine.kill()
        elif isinstance(engine, list):
            for server in engine:
                server.kill()
    if not _shared:
        while _roots:
            shutil.rmtree(_roots.pop(), ignore_errors=True)


atexit.register(stop_shared)  # a backstop: the session fixtures normally stop everything first


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterEngine]:
    yield shared_cluster()
    stop_shared("cluster")


@pytest.fixture(scope="session")
def redis_ring() -> Iterator[list[RedisServer]]:
    yield shared_ring()
    stop_shared("ring")


@pytest.fixture(scope="session")
def redis_single() -> Iterator[RedisServer]:
    yield shared_single()
    stop_shared("single")


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh server of the test's own, to kill, freeze or restart at will."""
    try:
        server = start_servers(tmp_path_factory.mktemp("redis"), 1)[0]
    except EngineStartError as exc:
        unavailable(f"Redis unavailable: {exc}")
    yield server
    server.kill()
