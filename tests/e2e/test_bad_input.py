"""Every kind of bad upload gets a 4xx problem+json and leaves no row and no object behind.

A server of its own, so that no other test's background work changes the files compared here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import images
from tests.support.server import ServerProcess, create_user

PROBLEM = "application/problem+json"
MAX_UPLOAD = 3 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("bad-input") / "data"
    proc = ServerProcess(data_dir, env={"PHOTOSTORE_LIMITS__MAX_UPLOAD_BYTES": str(MAX_UPLOAD)}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def alice(server: ServerProcess) -> Iterator[httpx.Client]:
    _, key = create_user(server.url, "alice")
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as c:
        yield c


def bucket_files(server: ServerProcess) -> set[Path]:
    return {p for p in (server.data_dir / "buckets").rglob("*") if p.is_file()}


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert (body["code"], body["status"]) == (code, status)
    assert body["title"]
    assert body["detail"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "empty_body"),
        (b"this is plain text, not an image", 422, "invalid_image"),
        (images.jpeg(seed=7)[:2000], 422, "invalid_image"),
        (images.jpeg(seed=8)[:-200], 422, "invalid_image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 500, 422, "invalid_image"),
        (images.bmp(), 415, "unsupported_format"),
        (images.SVG, 415, "unsupported_format"),
        (images.png_bomb_header(), 422, "image_too_large"),
        (b"\x00" * (MAX_UPLOAD + 1), 413, "payload_too_large"),
    ],
    ids=["empty", "text", "truncated-head", "truncated-tail", "corrupt", "bmp", "svg", "bomb", "too-big"],
)
def test_bad_input_is_refused_and_leaves_nothing(
    server: ServerProcess, alice: httpx.Client, body: bytes, status: int, code: str
) -> None:
    response = alice.post("/v1/photos", content=body, headers={"content-type": "image/jpeg"})
    assert_problem(response, status, code)
    assert bucket_files(server) == set()
    assert alice.get("/v1/photos").json()["items"] == []


def test_multipart_bad_file_leaves_nothing(server: ServerProcess, alice: httpx.Client) -> None:
    response = alice.post("/v1/photos", files={"file": ("x.jpg", b"not an image", "image/jpeg")})
    assert_problem(response, 422, "invalid_image")
    oversized = alice.post("/v1/photos", files={"file": ("x.jpg", b"\x00" * (MAX_UPLOAD + 1), "image/jpeg")})
    assert_problem(oversized, 413, "payload_too_large")
    assert bucket_files(server) == set()
