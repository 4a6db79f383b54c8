"""The API end to end over real HTTP against a running ``photostore serve`` (embedded storage)."""

from __future__ import annotations

import hashlib
import io
import time
from urllib.parse import unquote

import httpx
from jsonschema import Draft202012Validator
from PIL import Image

from tests.support import images
from tests.support.http import assert_problem, stored_objects
from tests.support.server import ADMIN_TOKEN, ServerProcess, create_user, wait_ready_photo


def test_health_ready_metrics_docs(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready["status"] == "ready"
    assert ready["shard_map_version"] >= 1
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "photostore_requests_total" in metrics
    assert 'photostore_shard_pool_setting{setting="max_open_conns",shard="0"}' in metrics
    assert 'photostore_pool_max_open{role="primary",shard="0"' in metrics
    document = httpx.get(f"{server.url}/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "/v1/photos/{photo_id}/variants/{name}" in document["paths"]
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200
    assert "/v1/photos" in page.text


def conforms(server: ServerProcess, body: object, schema: str) -> None:
    """``body`` is valid against the named schema of the served OpenAPI document."""
    document = httpx.get(f"{server.url}/openapi.json").json()
    Draft202012Validator({**document, "$ref": f"#/components/schemas/{schema}"}).validate(body)


def test_user_creation_needs_the_admin_token(server: ServerProcess) -> None:
    assert_problem(httpx.post(f"{server.url}/v1/users", json={"name": "x"}), 401, "unauthorized")
    wrong = httpx.post(f"{server.url}/v1/users", json={"name": "x"}, headers={"authorization": "Bearer nope"})
    assert_problem(wrong, 401, "unauthorized")
    bad = httpx.post(
        f"{server.url}/v1/users", content=b"{", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert_problem(bad, 400, "bad_request")
    user_id, key = create_user(server.url, "carol")
    assert key.startswith("ps_")
    assert user_id.replace("-", "") in key


def test_wrong_credentials(server: ServerProcess) -> None:
    assert_problem(httpx.get(f"{server.url}/v1/photos"), 401, "unauthorized")
    for token in ("garbage", "ps_" + "0" * 48 + "_secret", "Basic abc"):
        response = httpx.get(f"{server.url}/v1/photos", headers={"authorization": f"Bearer {token}"})
        assert_problem(response, 401, "unauthorized")
    _, key = create_user(server.url, "dave")
    tampered = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    response = httpx.get(f"{server.url}/v1/photos", headers={"authorization": f"Bearer {tampered}"})
    assert_problem(response, 401, "unauthorized")


def test_upload_read_variants_and_bytes(server: ServerProcess, alice: httpx.Client) -> None:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0110] = "Model 1"  # Model
    data = images.jpeg(800, 600, seed=1, exif=exif)
    created = alice.post("/v1/photos", content=data, params={"filename": "beach.jpg"})
    assert created.status_code == 201, created.text
    photo = created.json()
    assert created.headers["location"] == f"/v1/photos/{photo['id']}"
    assert photo["sha256"] == hashlib.sha256(data).hexdigest()
    assert (photo["bytes"], photo["width"], photo["height"], photo["format"]) == (len(data), 800, 600, "JPEG")
    assert photo["filename"] == "beach.jpg"
    assert photo["status"] in ("processing", "ready")

    ready = wait_ready_photo(alice, photo["id"])
    conforms(server, photo, "Photo")
    conforms(server, ready, "Photo")
    conforms(server, alice.get("/v1/photos").json(), "PhotoPage")
    assert ready["exif"]["make"] == "TestCam"
    assert isinstance(ready["placeholder"], str)
    variants = ready["variants"]
    assert isinstance(variants, dict)
    assert set(variants) == {"thumb", "preview"}

    thumb = alice.get(f"/v1/photos/{photo['id']}/variants/thumb")
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/webp"
    assert "immutable" in thumb.headers["cache-control"]
    with Image.open(io.BytesIO(thumb.content)) as img:
        assert img.format == "WEBP"
        assert max(img.size) == 256
    preview = alice.get(f"/v1/photos/{photo['id']}/variants/preview")
    with Image.open(io.BytesIO(preview.content)) as img:
        assert img.format == "JPEG"
        assert img.size == (800, 600)  # never upscaled

    original = alice.get(f"/v1/photos/{photo['id']}/original")
    assert original.status_code == 200
    assert hashlib.sha256(original.content).hexdigest() == photo["sha256"]
    etag = original.headers["etag"]
    assert etag == f'"{photo["sha256"]}"'
    assert alice.get(f"/v1/photos/{photo['id']}/original", headers={"if-none-match": etag}).status_code == 304
    thumb_etag = thumb.headers["etag"]
    not_modified = alice.get(
        f"/v1/photos/{photo['id']}/variants/thumb", headers={"if-none-match": thumb_etag}
    )
    assert not_modified.status_code == 304

    part = alice.get(f"/v1/photos/{photo['id']}/original", headers={"range": "bytes=10-109"})
    assert part.status_code == 206
    assert part.content == data[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{len(data)}"
    tail = alice.get(f"/v1/photos/{photo['id']}/original", headers={"range": "bytes=-50"})
    assert tail.content == data[-50:]
    outside = alice.get(f"/v1/photos/{photo['id']}/original", headers={"range": f"bytes={len(data) + 5}-"})
    assert_problem(outside, 416, "range_not_satisfiable")
    assert outside.headers["content-range"] == f"bytes */{len(data)}"


def test_rotated_photo_reports_and_derives_its_displayed_size(alice: httpx.Client) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    photo = alice.post("/v1/photos", content=images.jpeg(400, 300, seed=11, exif=exif)).json()
    assert (photo["width"], photo["height"]) == (300, 400)
    wait_ready_photo(alice, photo["id"])
    thumb = alice.get(f"/v1/photos/{photo['id']}/variants/thumb")
    with Image.open(io.BytesIO(thumb.content)) as img:
        assert img.size == (192, 256)


def test_same_bytes_again_returns_the_existing_photo(alice: httpx.Client) -> None:
    data = images.jpeg(320, 240, seed=2)
    first = alice.post("/v1/photos", content=data)
    again = alice.post("/v1/photos", content=data)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]


def test_idempotency_key_replays_the_first_answer(alice: httpx.Client) -> None:
    data = images.jpeg(300, 300, seed=9)
    key = {"idempotency-key": "upload-9"}
    first = alice.post("/v1/photos", content=data, headers=key)
    replay = alice.post("/v1/photos", content=data, headers=key)
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json()["id"] == first.json()["id"]
    before = [p["id"] for p in alice.get("/v1/photos", params={"limit": 200}).json()["items"]]
    other = alice.post("/v1/photos", content=images.jpeg(300, 300, seed=10), headers=key)
    assert_problem(other, 422, "idempotency_key_reused")
    assert [p["id"] for p in alice.get("/v1/photos", params={"limit": 200}).json()["items"]] == before
    too_long = alice.post("/v1/photos", content=data, headers={"idempotency-key": "k" * 201})
    assert_problem(too_long, 400, "bad_request")


def test_multipart_upload(alice: httpx.Client) -> None:
    data = images.png(seed=3)
    response = alice.post("/v1/photos", files={"file": ("pic.png", data, "image/png")})
    assert response.status_code == 201, response.text
    assert response.json()["format"] == "PNG"
    assert response.json()["filename"] == "pic.png"
    missing = alice.post("/v1/photos", files={"other": ("pic.png", data, "image/png")})
    assert_problem(missing, 400, "bad_request")


def test_list_is_newest_first_and_keyset_paginated(server: ServerProcess) -> None:
    _, key = create_user(server.url, "lister")
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}) as client:
        ids = [client.post("/v1/photos", content=images.png(seed=100 + i)).json()["id"] for i in range(7)]
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/photos", params=params).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(ids))
        assert_problem(client.get("/v1/photos", params={"limit": 0}), 400, "bad_request")
        assert_problem(client.get("/v1/photos", params={"cursor": "!!"}), 400, "bad_request")


def test_delete_removes_the_photo_and_its_objects(server: ServerProcess, alice: httpx.Client) -> None:
    data = images.jpeg(300, 200, seed=4)
    photo = alice.post("/v1/photos", content=data).json()
    wait_ready_photo(alice, photo["id"])
    named = {key for key in stored_objects(server) if photo["id"] in key}
    assert len(named) == 3  # original, thumb, preview
    assert alice.delete(f"/v1/photos/{photo['id']}").status_code == 204
    for path in ("", "/original", "/variants/thumb"):
        assert_problem(alice.get(f"/v1/photos/{photo['id']}{path}"), 404, "photo_not_found")
    assert_problem(alice.delete(f"/v1/photos/{photo['id']}"), 404, "photo_not_found")
    deadline = time.monotonic() + 10
    while named & stored_objects(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not named & stored_objects(server)
    # The same bytes can be uploaded again as a new photo.
    again = alice.post("/v1/photos", content=data)
    assert again.status_code == 201
    assert again.json()["id"] != photo["id"]


def test_another_users_photo_is_404(alice: httpx.Client, bob: httpx.Client) -> None:
    photo = alice.post("/v1/photos", content=images.jpeg(200, 200, seed=5)).json()
    wait_ready_photo(alice, photo["id"])
    for path in ("", "/original", "/variants/thumb", "/variants/preview"):
        assert_problem(bob.get(f"/v1/photos/{photo['id']}{path}"), 404, "photo_not_found")
    assert_problem(bob.delete(f"/v1/photos/{photo['id']}"), 404, "photo_not_found")
    assert photo["id"] not in [item["id"] for item in bob.get("/v1/photos").json()["items"]]
    assert alice.get(f"/v1/photos/{photo['id']}").status_code == 200


def test_unknown_ids_routes_and_variants(alice: httpx.Client) -> None:
    assert_problem(alice.get("/v1/photos/not-a-uuid"), 404, "photo_not_found")
    assert_problem(alice.get("/v1/photos/01a222cc-7a6f-7717-b83c-36949770f0af"), 404, "photo_not_found")
    assert_problem(alice.get("/v1/nothing-here"), 404, "route_not_found")
    refused = alice.put("/v1/photos")
    assert_problem(refused, 405, "method_not_allowed")
    assert set(refused.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    photo = alice.post("/v1/photos", content=images.png(seed=6)).json()
    assert_problem(alice.get(f"/v1/photos/{photo['id']}/variants/huge"), 404, "unknown_variant")


def test_metrics_count_uploads_derivatives_cache_and_lag(server: ServerProcess, alice: httpx.Client) -> None:
    photo = alice.post("/v1/photos", content=images.jpeg(240, 180, seed=12)).json()
    wait_ready_photo(alice, photo["id"])
    alice.get(f"/v1/photos/{photo['id']}/variants/thumb")
    deadline = time.monotonic() + 15
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(f"{server.url}/metrics").text
        if 'photostore_consumer_lag{group="thumbnails"' in text:
            break
        time.sleep(0.5)
    assert 'photostore_consumer_lag{group="thumbnails"' in text
    assert 'photostore_uploads_total{result="created"}' in text
    for name in (
        "photostore_derivatives_total",
        "photostore_cache_hits_total",
        "photostore_concurrent_uploads",
    ):
        assert name in text
    served = [
        line
        for line in text.splitlines()
        if line.startswith("photostore_requests_total") and "variants" in line and 'status="200"' in line
    ]
    assert served, "the thumbnail GETs are counted"


def test_cached_thumbnail_answers_match_the_full_path_and_stay_private(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    photo = alice.post("/v1/photos", content=images.jpeg(500, 500, seed=13)).json()
    wait_ready_photo(alice, photo["id"])
    path = f"/v1/photos/{photo['id']}/variants/thumb"
    first = alice.get(path)  # fills the cache through the full path
    second = alice.get(path)  # answered from the cache before routing
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    for header in ("content-type", "content-length", "etag", "cache-control", "accept-ranges"):
        assert first.headers[header] == second.headers[header], header
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert second.headers["x-request-id"]
    echoed = alice.get(path, headers={"x-request-id": "trace-me-42"})
    assert echoed.headers["x-request-id"] == "trace-me-42"
    assert_problem(bob.get(path), 404, "photo_not_found")
    assert_problem(httpx.get(f"{alice.base_url}{path}"), 401, "unauthorized")
    # Conditional and range requests take the full path and still work.
    assert alice.get(path, headers={"if-none-match": first.headers["etag"]}).status_code == 304
    assert alice.get(path, headers={"range": "bytes=0-9"}).content == first.content[:10]
    # Deleting the photo ends the cached answers at once.
    assert alice.delete(f"/v1/photos/{photo['id']}").status_code == 204
    assert_problem(alice.get(path), 404, "photo_not_found")


def test_an_original_with_a_non_latin_name_is_served_with_its_name(alice: httpx.Client) -> None:
    name = '𤜳 été "quoted".jpg'
    data = images.jpeg(64, 48, seed=4242)
    created = alice.post("/v1/photos", files={"file": (name, data, "image/jpeg")})
    assert created.status_code == 201, created.text
    response = alice.get(f"/v1/photos/{created.json()['id']}/original")
    assert response.status_code == 200
    assert response.content == data
    disposition = response.headers["content-disposition"]
    assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == created.json()["filename"]
