"""Fixtures shared across test folders."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from photostore.cluster.local import ClusterState
from tests.support.cluster import local_cluster


@pytest.fixture(scope="session")
def cluster_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    """One local cluster (``photostore cluster up``) for the whole session, started on first use."""
    with local_cluster(tmp_path_factory.mktemp("local-cluster") / "cluster") as state:
        yield state
