"""Assertions and helpers shared by the tests that talk to a running server over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx

from tests.support.server import ServerProcess

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    """``response`` is an RFC 9457 problem with this status and stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]


def stored_objects(server: ServerProcess, extra_buckets: Sequence[str] = ()) -> set[str]:
    """Every object the server stored, as ``bucket/key``: bucket folders embedded, S3 in cluster mode
    (the placement's buckets and ``extra_buckets``)."""
    if server.tenant is None:
        root = server.data_dir / "buckets"
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    return asyncio.run(server.tenant.list_objects(extra_buckets))


def overwrite_object(server: ServerProcess, path: str, data: bytes) -> None:
    """Replace the stored object ``bucket/key`` behind the server's back (bit rot, a bad disk)."""
    if server.tenant is None:
        (server.data_dir / "buckets" / path).write_bytes(data)
        return
    bucket, key = path.split("/", 1)
    asyncio.run(server.tenant.put_object(bucket, key, data))
