"""Every kind of bad upload gets a 4xx problem+json and leaves no row and no object behind.

A server of its own, so that no other test's background work changes the files compared here.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import MAX_UPLOAD
from tests.support import images
from tests.support.http import assert_problem, stored_objects
from tests.support.server import ServerProcess


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
    assert stored_objects(server) == set()
    assert alice.get("/v1/photos").json()["items"] == []


def test_multipart_bad_file_leaves_nothing(server: ServerProcess, alice: httpx.Client) -> None:
    response = alice.post("/v1/photos", files={"file": ("x.jpg", b"not an image", "image/jpeg")})
    assert_problem(response, 422, "invalid_image")
    oversized = alice.post("/v1/photos", files={"file": ("x.jpg", b"\x00" * (MAX_UPLOAD + 1), "image/jpeg")})
    assert_problem(oversized, 413, "payload_too_large")
    assert stored_objects(server) == set()
