"""Schemathesis (property-based, from the OpenAPI document) against a running service with an API
key: every phase (examples, coverage, fuzzing, stateful) ends with zero 5xx, zero responses that
break the schema or their declared content type and headers, and nothing in the server's error log.
``PHOTOSTORE_SCHEMATHESIS_EXAMPLES`` sets the examples per operation (20 here; raise it for a
longer run); ``PHOTOSTORE_SCHEMATHESIS_SEED`` replays a run."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.images import jpeg
from tests.support.server import ServerProcess, create_user, embedded_server

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = (
    "not_a_server_error,response_schema_conformance,content_type_conformance,response_headers_conformance"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from embedded_server(tmp_path_factory, "schemathesis")


def test_the_api_keeps_its_openapi_contract_under_generated_requests(server: ServerProcess) -> None:
    import httpx

    _, key = create_user(server.url, "schemathesis")
    seeded = httpx.post(  # a real photo, so generated ids and stateful links reach real data too
        f"{server.url}/v1/photos",
        files={"file": ("s.jpg", jpeg(64, 48, seed=9), "image/jpeg")},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert seeded.status_code == 201, seeded.text
    seed = int(os.environ.get("PHOTOSTORE_SCHEMATHESIS_SEED", random.randrange(1 << 31)))
    examples = os.environ.get("PHOTOSTORE_SCHEMATHESIS_EXAMPLES", "20")
    done = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{server.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            CHECKS,
            "--max-examples",
            examples,
            "--seed",
            str(seed),
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks"},
    )
    assert done.returncode == 0, f"seed {seed}:\n{done.stdout[-6000:]}"
    assert server.log_path is not None
    assert "unhandled error" not in server.log_path.read_text(errors="replace")
