"""One server per test module, with a small upload limit, and two users' clients on it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import ServerProcess, create_user

MAX_UPLOAD = 3 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("e2e") / "data"
    proc = ServerProcess(data_dir, env={"PHOTOSTORE_LIMITS__MAX_UPLOAD_BYTES": str(MAX_UPLOAD)}).start()
    yield proc
    proc.stop()


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
