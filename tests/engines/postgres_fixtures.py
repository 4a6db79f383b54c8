"""Session-wide PostgreSQL servers of our own for engine tests (see tests/support/engines/postgres.py).

Import the fixtures into a test module (``from tests.engines.postgres_fixtures import pg_primary,
pg_replicas``). ``pg_primary`` is a private postmaster; ``pg_replicas`` two streaming replicas of it.
Tests that stop a server start their own instead, so these stay up for the whole session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.engines.postgres import Postmaster, private_postmaster, streaming_replica


@pytest.fixture(scope="session")
def pg_primary() -> Iterator[Postmaster]:
    with private_postmaster() as primary:
        yield primary


@pytest.fixture(scope="session")
def pg_replicas(pg_primary: Postmaster) -> Iterator[list[Postmaster]]:
    with streaming_replica(pg_primary.server) as first, streaming_replica(pg_primary.server) as second:
        yield [first, second]
