"""Fixtures shared by the contract suites. Only the SeaweedFS one is defined here (by import)."""

import pytest

from tests.support.engines.seaweedfs import seaweedfs

__all__ = ["seaweedfs"]


def pytest_configure(config: pytest.Config) -> None:
    # Registered here because pyproject.toml is not ours to edit; --strict-markers needs it.
    config.addinivalue_line(
        "markers",
        "apache_kafka: needs the Apache Kafka named by PHOTOSTORE_TEST_KAFKA_BOOTSTRAP; skipped without it",
    )
