"""Real PostgreSQL servers for tests: throwaway databases, streaming replicas, private postmasters.

- :func:`throwaway_databases` (context manager): fresh databases on a server, dropped at the end.
- :func:`private_postmaster` (context manager): a server of our own (``initdb`` into a temp folder,
  a free port, trust authentication, replication allowed) that a test may stop, start and restart.
- :func:`streaming_replica` (context manager): a hot standby of a primary (``pg_basebackup -R -X
  stream`` into a temp folder, then a postmaster on a free port), ready when it accepts connections
  and is in recovery; :func:`wait_for_replay`, :func:`pause_replay`, :func:`resume_replay`.

Servers started here run as the ``postgres`` user when the tests run as root (PostgreSQL refuses
root), with their data folder owned by it and mode 0700; they are stopped and removed at the end.
When something cannot be had (no binaries, server unreachable, replication refused) the helpers call
:func:`unavailable`: a skip locally, a failure under CI. The system server (:data:`SYSTEM`) is only
ever given databases; it is never stopped or reconfigured.

Binaries: ``PS_TEST_PG_BIN`` (default ``/usr/lib/postgresql/15/bin``). The system server:
``PS_TEST_PG_HOST`` / ``PS_TEST_PG_PORT`` (default 127.0.0.1:5432, user postgres/postgres).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import asyncpg

from tests.support.engines.availability import free_port, unavailable

PG_BIN = Path(os.environ.get("PS_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT_S = 30
# Test servers trade durability for speed and memory: nothing here must survive a machine crash.
FAST_SETTINGS = {"fsync": "off", "shared_buffers": "16MB", "max_connections": "100"}


@dataclass(frozen=True, slots=True)
class PgServer:
    """Where a server answers, and how to log in."""

    host: str
    port: int
    user: str = "postgres"
    password: str = "postgres"

    def dsn(self, database: str) -> str:
        """A SQLAlchemy URL for ``database`` (asyncpg driver)."""
        return f"postgresql+asyncpg://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def connect_args(self, database: str = "postgres") -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": database,
        }


SYSTEM = PgServer(
    host=os.environ.get("PS_TEST_PG_HOST", "127.0.0.1"), port=int(os.environ.get("PS_TEST_PG_PORT", "5432"))
)


# --- SQL from synchronous code -----------------------------------------------------------------


def run_async(make: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine on its own loop and thread: callable from sync fixtures and from async tests."""

    async def run() -> Any:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


async def fetch(server: PgServer, sql: str, *args: Any, database: str = "postgres") -> list[asyncpg.Record]:
    conn = await asyncpg.connect(timeout=3, **server.connect_args(database))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def fetchval(server: PgServer, sql: str, *args: Any, database: str = "postgres") -> Any:
    rows = await fetch(server, sql, *args, database=database)
    return rows[0][0] if rows else None


async def execute(server: PgServer, *statements: str, database: str = "postgres") -> None:
    conn = await asyncpg.connect(timeout=3, **server.connect_args(database))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


# --- (a) throwaway databases -------------------------------------------------------------------


def create_databases(server: PgServer, names: Sequence[str]) -> None:
    run_async(lambda: execute(server, *(f'CREATE DATABASE "{name}"' for name in names)))


def drop_databases(server: PgServer, names: Sequence[str]) -> None:
    run_async(lambda: execute(server, *(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names)))


def unique_names(prefix: str, count: int) -> list[str]:
    tag = secrets.token_hex(4)
    return [f"{prefix}_{tag}_{n}" for n in range(count)]


@contextmanager
def throwaway_databases(
    server: PgServer = SYSTEM, count: int = 1, prefix: str = "ps_test"
) -> Iterator[list[str]]:
    """``count`` new databases on ``server``, dropped (connections and all) at the end."""
    names = unique_names(prefix, count)
    try:
        create_databases(server, names)
    except (OSError, asyncpg.PostgresError) as error:
        unavailable(f"PostgreSQL on {server.host}:{server.port} cannot create databases: {error!r}")
    try:
        yield names
    finally:
        drop_databases(server, names)


# --- processes -----------------------------------------------------------------------------------


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run as the postgres user then (as ourselves otherwise)."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _run(command: list[str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _as_postgres(command), capture_output=True, text=True, timeout=timeout_s, check=False
    )


def _binary(name: str) -> str:
    path = PG_BIN / name
    if not path.exists():
        unavailable(f"PostgreSQL binary {path} not found (set PS_TEST_PG_BIN)")
    return str(path)


def _private_folder() -> Path:
    """A new temp folder (mode 0700) that the server's user owns."""
    folder = Path(tempfile.mkdtemp(prefix="ps-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            unavailable("running as root and there is no postgres user to run PostgreSQL as")
        os.chown(folder, user.pw_uid, user.pw_gid)
    folder.chmod(0o700)
    return folder


StopMode = Literal["smart", "fast", "immediate"]


class Postmaster:
    """A PostgreSQL server process on ``data_dir`` and a fixed ``port`` that we started and own."""

    def __init__(self, folder: Path, data_dir: Path, port: int, settings: dict[str, str]) -> None:
        self.folder = folder
        self.data_dir = data_dir
        self.port = port
        self.log_path = folder / "postgres.log"
        self._settings = {
            **FAST_SETTINGS,
            **settings,
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(folder),
        }

    @property
    def server(self) -> PgServer:
        return PgServer("127.0.0.1", self.port)

    def start(self) -> None:
        """Start the server and wait until it accepts connections; RuntimeError if it does not."""
        options = " ".join(
            [f"-p {self.port}", *(f"-c {key}={value}" for key, value in self._settings.items())]
        )
        done = _run(
            [
                _binary("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "-o",
                options,
                "start",
            ]
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed on port {self.port}: {done.stderr}\n{self.log_tail()}")

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server (``immediate``: as abruptly as a crash) and wait until it is gone."""
        done = _run([_binary("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"])
        if done.returncode != 0 and self.is_running():
            raise RuntimeError(f"pg_ctl stop failed: {done.stderr}")

    def restart(self, mode: StopMode = "fast") -> None:
        self.stop(mode)
        self.start()

    def is_running(self) -> bool:
        return _run([_binary("pg_ctl"), "-D", str(self.data_dir), "status"]).returncode == 0

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def remove(self) -> None:
        """Stop (immediately) if running, then delete the folder."""
        if self.data_dir.exists() and self.is_running():
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


def _start_on_a_free_port(make: Callable[[int], Postmaster]) -> Postmaster:
    """Start on a free port, trying another if someone takes the port between pick and bind."""
    error: RuntimeError | None = None
    for _ in range(3):
        postmaster = make(free_port())
        try:
            postmaster.start()
        except RuntimeError as failed:
            error = failed
            continue
        return postmaster
    raise RuntimeError(f"no port worked: {error}")


# --- (c) private postmaster --------------------------------------------------------------------


def start_private_postmaster(settings: dict[str, str] | None = None) -> Postmaster:
    """initdb a new cluster (trust auth, user postgres, replication allowed) and start it.

    The caller owns it: call ``remove()`` at the end (:func:`private_postmaster` does).
    """
    initdb = _binary("initdb")
    folder = _private_folder()
    data_dir = folder / "data"
    done = _run([initdb, "-D", str(data_dir), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8"])
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        unavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
    try:
        return _start_on_a_free_port(lambda port: Postmaster(folder, data_dir, port, settings or {}))
    except RuntimeError as error:
        shutil.rmtree(folder, ignore_errors=True)
        unavailable(f"a private PostgreSQL did not start: {error}")


@contextmanager
def private_postmaster(settings: dict[str, str] | None = None) -> Iterator[Postmaster]:
    """A private server for the block; stopped and deleted afterwards, whatever state it is in."""
    postmaster = start_private_postmaster(settings)
    try:
        yield postmaster
    finally:
        postmaster.remove()


# --- (b) streaming replica ---------------------------------------------------------------------


def start_streaming_replica(primary: PgServer, timeout_s: float = 30) -> Postmaster:
    """A hot standby of ``primary`` on a free port, accepting connections and in recovery.

    ``primary`` must allow replication connections from 127.0.0.1 for its user (a private postmaster
    does; the system server here does not, and is not reconfigured: :func:`unavailable` then).
    The caller owns it: call ``remove()`` at the end (:func:`streaming_replica` does).
    """
    basebackup = _binary("pg_basebackup")
    folder = _private_folder()
    data_dir = folder / "data"
    command = [basebackup, "-h", primary.host, "-p", str(primary.port), "-U", primary.user]
    command += ["-D", str(data_dir), "-R", "-X", "stream", "-c", "fast", "--no-sync"]
    done = _run(command, timeout_s=timeout_s)
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        unavailable(f"pg_basebackup of {primary.host}:{primary.port} failed: {done.stderr.strip()[-500:]}")
    try:
        replica = _start_on_a_free_port(
            lambda port: Postmaster(folder, data_dir, port, {"hot_standby": "on"})
        )
    except RuntimeError as error:
        shutil.rmtree(folder, ignore_errors=True)
        unavailable(f"the replica of {primary.host}:{primary.port} did not start: {error}")
    try:
        wait_until_streaming(replica.server, timeout_s)
    except BaseException:
        replica.remove()
        raise
    return replica


@contextmanager
def streaming_replica(primary: PgServer, timeout_s: float = 30) -> Iterator[Postmaster]:
    """A streaming replica of ``primary`` for the block; stopped and deleted afterwards."""
    replica = start_streaming_replica(primary, timeout_s)
    try:
        yield replica
    finally:
        replica.remove()


def wait_until_streaming(replica: PgServer, timeout_s: float = 30) -> None:
    """Wait until ``replica`` is in recovery and its WAL receiver streams from the primary."""
    streaming = "EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')"
    sql = f"SELECT pg_is_in_recovery() AND {streaming}"
    _wait(lambda: fetchval(replica, sql), timeout_s, f"{replica.port} never started streaming")


def wait_for_replay(primary: PgServer, replica: PgServer, timeout_s: float = 45) -> None:
    """Wait until ``replica`` has replayed everything ``primary`` had committed when this was called.

    The flush position, not the insert one: a record only inserted (say, a background writer's
    running-transactions record) is not streamed until some later flush, which may not come soon.
    """
    lsn = run_async(lambda: fetchval(primary, "SELECT pg_current_wal_flush_lsn()::text"))
    sql = "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn"
    _wait(lambda: fetchval(replica, sql, lsn), timeout_s, f"{replica.port} did not replay up to {lsn}")


def pause_replay(replica: PgServer) -> None:
    """Stop applying WAL on ``replica`` (it keeps receiving): its data freezes until resumed."""
    run_async(lambda: execute(replica, "SELECT pg_wal_replay_pause()"))
    sql = "SELECT pg_get_wal_replay_pause_state() = 'paused'"
    _wait(lambda: fetchval(replica, sql), 10, f"{replica.port} did not pause replay")


def resume_replay(replica: PgServer) -> None:
    run_async(lambda: execute(replica, "SELECT pg_wal_replay_resume()"))


def _wait(probe: Callable[[], Awaitable[Any]], timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if run_async(probe):
                return
        except (OSError, asyncpg.PostgresError) as error:  # still starting: not accepting yet
            last = error
        time.sleep(0.05)
    raise TimeoutError(f"{message} within {timeout_s} s (last error: {last!r})")
