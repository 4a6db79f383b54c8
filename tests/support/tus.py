"""Talking tus 1.0 to a running server: requests by hand (for cuts at chosen bytes) and tuspy."""

from __future__ import annotations

import base64
import hashlib
import io
import socket
import time
from functools import cache

import httpx
import numpy as np
from PIL import Image
from tusclient import client as tus_client

from tests.support.server import ServerProcess

MAX_UPLOAD = 64 * 1024 * 1024
PART = 5 * 1024 * 1024  # the smallest part size S3 takes: cuts land on both sides of part edges
TUS = {"tus-resumable": "1.0.0"}


def tus_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "PHOTOSTORE_LIMITS__MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "PHOTOSTORE_RESUMABLE__PART_BYTES": str(PART),
        "PHOTOSTORE_RESUMABLE__LEASE_S": "5",
        **(extra or {}),
    }


@cache
def large_photo() -> bytes:
    """A 12-megapixel JPEG of noise at quality 100: over 20 MB that no codec can shrink."""
    pixels = np.random.default_rng(7).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=100)
    data = out.getvalue()
    assert len(data) > 20 * 1024 * 1024
    return data


def sha1_digest(data: bytes) -> str:
    """The Upload-Checksum digest tus requires every server to take."""
    return base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()


def tus_client_of(server: ServerProcess, key: str) -> tus_client.TusClient:
    return tus_client.TusClient(f"{server.url}/v1/uploads", headers={"Authorization": f"Bearer {key}"})


def create_upload(api: httpx.Client, length: int, filename: str = "photo.jpg") -> str:
    encoded = base64.b64encode(filename.encode()).decode()
    response = api.post(
        "/v1/uploads", headers={**TUS, "upload-length": str(length), "upload-metadata": f"filename {encoded}"}
    )
    assert response.status_code == 201, response.text
    assert response.headers["tus-resumable"] == "1.0.0"
    assert response.headers["upload-expires"]
    return response.headers["location"]


def upload_offset(api: httpx.Client, location: str) -> int:
    response = api.head(location, headers=TUS)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return int(response.headers["upload-offset"])


def patch_upload(
    api: httpx.Client, location: str, offset: int, body: bytes, **headers: str
) -> httpx.Response:
    return api.patch(
        location,
        content=body,
        headers={
            **TUS,
            "content-type": "application/offset+octet-stream",
            "upload-offset": str(offset),
            **headers,
        },
    )


def cut_patch(server: ServerProcess, key: str, location: str, offset: int, body: bytes, sent: int) -> None:
    """A PATCH announcing all of ``body`` whose connection closes after ``sent`` bytes of it."""
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {key}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: {offset}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode() + body[:sent])


def wait_offset(api: httpx.Client, location: str, expected: int, timeout_s: float = 20.0) -> None:
    """Wait until a cut request has left the upload at ``expected`` and let go of it.

    The row records a whole part while its request still runs, so HEAD can show the new offset
    while that request holds the lease; a PATCH then gets 423. An empty PATCH at the offset
    answers 204 only once the lease is free, as a tus client retrying after 423 would find.
    """
    deadline = time.monotonic() + timeout_s
    seen = -1
    while time.monotonic() < deadline:
        seen = upload_offset(api, location)
        if seen == expected:
            response = patch_upload(api, location, expected, b"")
            if response.status_code == 204:
                assert int(response.headers["upload-offset"]) == expected
                return
            assert response.status_code == 423, response.text
        time.sleep(0.05)
    raise AssertionError(f"the upload stayed at offset {seen} (or locked); {expected} bytes were received")
