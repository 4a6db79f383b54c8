"""One server per test module and mode, with a small upload limit, and two users' clients on it.

Every module runs twice: embedded (SQLite, bucket folders, SQLite log, in-process cache) and on the
local cluster (PostgreSQL shards, SeaweedFS, the Kafka-protocol broker, Redis Cluster), which
starts once per session.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.cluster import server_in_mode
from tests.support.server import ServerProcess, create_user

MAX_UPLOAD = 3 * 1024 * 1024


@pytest.fixture(scope="module", params=["embedded", "cluster"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    yield from server_in_mode(
        request, tmp_path_factory, "e2e", {"PHOTOSTORE_LIMITS__MAX_UPLOAD_BYTES": str(MAX_UPLOAD)}
    )


def _client(server: ServerProcess, name: str) -> Iterator[httpx.Client]:
    _, key = create_user(server.url, name)
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def alice(server: ServerProcess) -> Iterator[httpx.Client]:
    yield from _client(server, "alice")


@pytest.fixture(scope="module")
def bob(server: ServerProcess) -> Iterator[httpx.Client]:
    yield from _client(server, "bob")
