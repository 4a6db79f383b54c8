"""Resumable uploads (tus 1.0) end to end, in both modes, with the official Python client ``tuspy``.

A photo of more than 20 MB goes up in chunks; connections are cut at chosen bytes (inside a part,
on a part's edge, one byte in); each time the server keeps exactly the bytes it received, and the
client resumes from the server's offset. The photo it becomes has the SHA-256 of the file. A chunk
with a wrong checksum is refused and changes nothing. (Expiry: test_resumable_expiry.py.)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import random
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.cluster import server_in_mode
from tests.support.http import assert_problem
from tests.support.images import jpeg
from tests.support.server import ServerProcess, create_user, wait_ready_photo
from tests.support.tus import (
    MAX_UPLOAD,
    PART,
    TUS,
    create_upload,
    cut_patch,
    large_photo,
    patch_upload,
    sha1_digest,
    tus_client_of,
    tus_env,
    upload_offset,
    wait_offset,
)


@pytest.fixture(scope="module", params=["embedded", "cluster"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    yield from server_in_mode(request, tmp_path_factory, "tus", tus_env())


@pytest.fixture(scope="module")
def key(server: ServerProcess) -> str:
    return create_user(server.url, "tus")[1]


@pytest.fixture(scope="module")
def api(server: ServerProcess, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=60) as c:
        yield c


def test_discovery_needs_no_key_and_names_the_extensions(server: ServerProcess) -> None:
    response = httpx.options(f"{server.url}/v1/uploads")
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert set(response.headers["tus-extension"].split(",")) >= {
        "creation",
        "termination",
        "checksum",
        "expiration",
    }
    assert int(response.headers["tus-max-size"]) == MAX_UPLOAD
    assert "sha1" in response.headers["tus-checksum-algorithm"].split(",")


def test_a_large_photo_survives_cuts_at_any_byte_and_tuspy_resumes_it(
    server: ServerProcess, key: str, api: httpx.Client
) -> None:
    data = large_photo()
    location = create_upload(api, len(data), "large.jpg")
    rng = random.Random(len(data))
    # Cuts inside the first part, one byte before, on and after a part's edge, and anywhere.
    offset = 0
    for target in sorted({1, 4097, PART - 1, PART, PART + 1, rng.randrange(PART + 2, 3 * PART)}):
        cut_patch(server, key, location, offset, data[offset:], target - offset)
        wait_offset(api, location, target)
        offset = target
    # The client has crashed: a new tuspy uploader asks the server where to go on.
    uploader = tus_client_of(server, key).uploader(
        file_stream=io.BytesIO(data), url=f"{server.url}{location}", chunk_size=4 * 1024 * 1024
    )
    assert uploader.get_offset() == offset
    uploader.upload_chunk()
    assert upload_offset(api, location) == offset + 4 * 1024 * 1024
    uploader.upload()
    head = api.head(location, headers=TUS)
    assert int(head.headers["upload-offset"]) == len(data)
    photo = wait_ready_photo(api, head.headers["photo-location"].rsplit("/", 1)[-1], timeout_s=60)
    assert photo["sha256"] == hashlib.sha256(data).hexdigest()
    assert photo["bytes"] == len(data)
    assert photo["filename"] == "large.jpg"
    original = api.get(str(photo["original_url"]))
    assert hashlib.sha256(original.content).hexdigest() == photo["sha256"]


def test_tuspy_uploads_in_checksummed_chunks_in_one_go(
    server: ServerProcess, key: str, api: httpx.Client
) -> None:
    data = jpeg(1600, 1200, seed=11)
    uploader = tus_client_of(server, key).uploader(
        file_stream=io.BytesIO(data),
        chunk_size=64 * 1024,
        upload_checksum=True,
        metadata={"filename": "c.jpg"},
    )
    uploader.upload()
    head = api.head(uploader.url, headers=TUS)
    photo = api.get(head.headers["photo-location"]).json()
    assert photo["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_chunk_with_a_wrong_checksum_is_refused_and_nothing_is_kept(api: httpx.Client) -> None:
    data = jpeg(800, 600, seed=12)
    location = create_upload(api, len(data))
    half = len(data) // 2
    wrong = sha1_digest(data[:half] + b"x")
    assert_problem(
        patch_upload(api, location, 0, data[:half], **{"upload-checksum": f"sha1 {wrong}"}),
        460,
        "checksum_mismatch",
    )
    assert upload_offset(api, location) == 0
    md5 = base64.b64encode(hashlib.md5(data[:half], usedforsecurity=False).digest()).decode()
    accepted = patch_upload(api, location, 0, data[:half], **{"upload-checksum": f"md5 {md5}"})
    assert accepted.status_code == 204, accepted.text
    assert accepted.headers["upload-offset"] == str(half)
    bad = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    refused = patch_upload(api, location, half, data[half:], **{"upload-checksum": f"sha256 {bad}"})
    assert_problem(refused, 460, "checksum_mismatch")
    assert upload_offset(api, location) == half
    assert_problem(
        patch_upload(api, location, half, data[half:], **{"upload-checksum": "crc32 AAAA"}),
        400,
        "bad_request",
    )
    good = sha1_digest(data[half:])
    done = patch_upload(api, location, half, data[half:], **{"upload-checksum": f"sha1 {good}"})
    assert done.status_code == 204, done.text
    assert done.headers["photo-location"].startswith("/v1/photos/")


def test_protocol_errors_are_tus_and_problem_json(server: ServerProcess, api: httpx.Client) -> None:
    data = jpeg(320, 240, seed=13)
    location = create_upload(api, len(data))
    no_version = api.patch(
        location, content=data, headers={"content-type": "application/offset+octet-stream"}
    )
    assert_problem(no_version, 412, "tus_version_unsupported")
    assert no_version.headers["tus-version"] == "1.0.0"
    assert_problem(patch_upload(api, location, 5, data), 409, "offset_mismatch")
    wrong_type = api.patch(
        location, content=data, headers={**TUS, "upload-offset": "0", "content-type": "image/jpeg"}
    )
    assert_problem(wrong_type, 415, "unsupported_media_type")
    assert wrong_type.headers["tus-resumable"] == "1.0.0"
    assert_problem(patch_upload(api, location, 0, data + b"extra"), 413, "payload_too_large")
    assert upload_offset(api, location) == 0
    too_long = api.post("/v1/uploads", headers={**TUS, "upload-length": str(MAX_UPLOAD + 1)})
    assert_problem(too_long, 413, "payload_too_large")
    assert_problem(api.post("/v1/uploads", headers={**TUS, "upload-length": "-1"}), 400, "bad_request")
    assert_problem(api.post("/v1/uploads", headers={**TUS, "upload-defer-length": "1"}), 400, "bad_request")
    anonymous = httpx.head(f"{server.url}{location}", headers=TUS)
    assert anonymous.status_code == 401
    _, other_key = create_user(server.url, "someone-else")
    theirs = httpx.head(f"{server.url}{location}", headers={**TUS, "authorization": f"Bearer {other_key}"})
    assert theirs.status_code == 404
    assert api.delete(location, headers=TUS).status_code == 204
    assert api.head(location, headers=TUS).status_code == 404
    assert api.head("/v1/uploads/not-an-id", headers=TUS).status_code == 404


def test_bytes_that_are_not_an_image_end_the_upload_with_the_upload_error(api: httpx.Client) -> None:
    body = b"%PDF-1.7 not a photo" * 100
    location = create_upload(api, len(body))
    assert_problem(patch_upload(api, location, 0, body), 415, "unsupported_format")  # as POST /v1/photos says
    assert api.head(location, headers=TUS).status_code == 404


def test_the_same_bytes_twice_are_one_photo(api: httpx.Client) -> None:
    data = jpeg(400, 300, seed=14)
    ids = set()
    for _ in range(2):
        location = create_upload(api, len(data))
        assert patch_upload(api, location, 0, data).status_code == 204
        ids.add(api.head(location, headers=TUS).headers["photo-location"])
    assert len(ids) == 1


def test_a_second_append_waits_for_the_first(server: ServerProcess, key: str, api: httpx.Client) -> None:
    data = jpeg(900, 700, seed=15)
    location = create_upload(api, len(data))
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {key}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode() + data[:100])
        # The first request takes the lease before it reads its body; give it time to get there.
        # Probes carry a wrong checksum: one that still came first would get 460 and keep nothing.
        time.sleep(1.0)
        wrong = sha1_digest(b"not these bytes")
        second = patch_upload(api, location, 0, data, **{"upload-checksum": f"sha1 {wrong}"})
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            early = sock.recv(200)
            raise AssertionError(f"the first request was answered before its body came: {early!r}")
        assert_problem(second, 423, "upload_locked")
        assert second.headers["retry-after"] == "1"
    wait_offset(api, location, 100)
    assert patch_upload(api, location, 100, data[100:]).status_code == 204
