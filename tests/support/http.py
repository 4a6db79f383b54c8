"""Assertions and helpers shared by the tests that talk to a running server over HTTP."""

from __future__ import annotations

from pathlib import Path

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


def bucket_files(server: ServerProcess) -> set[Path]:
    """Every object file in the server's bucket folders."""
    return {p for p in (server.data_dir / "buckets").rglob("*") if p.is_file()}
