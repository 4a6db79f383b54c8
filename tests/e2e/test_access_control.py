"""No user reaches another user's photos: every route of the OpenAPI document that takes a photo
id, with every method it has (and HEAD for the GETs), with and without conditional and range
headers, asked by Bob about Alice's photos, answers 404 ``photo_not_found`` and none of her data;
afterwards Alice's photos are all there, byte for byte. Both modes."""

from __future__ import annotations

import httpx
import pytest

from photostore.api.openapi import openapi_document
from tests.support.images import jpeg
from tests.support.server import ServerProcess, wait_ready_photo

HEADER_SETS = (
    {},
    {"range": "bytes=0-9"},
    {"if-none-match": "*"},
    {"accept": "image/avif,image/webp"},
)


def _photo_routes() -> list[tuple[str, str]]:
    """(method, path template) of every API route that names a photo id."""
    routes = []
    for path, operations in openapi_document()["paths"].items():
        if "{photo_id}" not in path or not path.startswith("/v1/"):
            continue  # /cdn/ answers signatures, not keys: tests/e2e/test_cdn_urls.py
        for method in operations:
            routes.append((method.upper(), path))
            if method == "get":
                routes.append(("HEAD", path))
    return routes


def test_every_photo_route_is_covered() -> None:
    methods = {(m, p) for m, p in _photo_routes()}
    assert ("DELETE", "/v1/photos/{photo_id}") in methods
    assert ("GET", "/v1/photos/{photo_id}/original") in methods
    assert ("GET", "/v1/photos/{photo_id}/variants/{name}") in methods
    assert len(methods) >= 7


@pytest.fixture(scope="module")
def alices_photos(alice: httpx.Client) -> dict[str, bytes]:
    photos = {}
    for seed in range(2):
        data = jpeg(320, 240, seed=500 + seed)
        response = alice.post("/v1/photos", files={"file": (f"a{seed}.jpg", data, "image/jpeg")})
        assert response.status_code == 201, response.text
        photo_id = response.json()["id"]
        wait_ready_photo(alice, photo_id)
        photos[photo_id] = data
    return photos


def test_bob_gets_nothing_of_alices_photos(
    server: ServerProcess, alice: httpx.Client, bob: httpx.Client, alices_photos: dict[str, bytes]
) -> None:
    secrets_of_alice = [alice.get(f"/v1/photos/{pid}").json() for pid in alices_photos]
    leaks = []
    for photo_id, data in alices_photos.items():
        for method, template in _photo_routes():
            for name in ("thumb", "preview"):
                path = template.replace("{photo_id}", photo_id).replace("{name}", name)
                for headers in HEADER_SETS:
                    response = bob.request(method, path, headers=headers)
                    if response.status_code != 404:
                        leaks.append(f"{method} {path} {headers}: {response.status_code}")
                        continue
                    if method != "HEAD" and response.json().get("code") != "photo_not_found":
                        leaks.append(f"{method} {path} {headers}: {response.json().get('code')}")
                    if data[:64] in response.content or photo_id[-12:] in response.text:
                        leaks.append(f"{method} {path} {headers}: the body names or holds her photo")
                if "{name}" not in template:
                    break  # one pass is enough for routes without a variant name
    assert leaks == []

    # Bob's own listing holds none of hers; hers are all there, unchanged, after his DELETEs.
    assert not {item["id"] for item in bob.get("/v1/photos").json()["items"]} & set(alices_photos)
    for photo_id, data in alices_photos.items():
        assert alice.get(f"/v1/photos/{photo_id}/original").content == data
    assert [alice.get(f"/v1/photos/{pid}").json() for pid in alices_photos] == secrets_of_alice
    assert {item["id"] for item in alice.get("/v1/photos").json()["items"]} >= set(alices_photos)


def test_no_key_and_a_wrong_key_get_401_and_nothing(
    server: ServerProcess, alices_photos: dict[str, bytes]
) -> None:
    photo_id, data = next(iter(alices_photos.items()))
    for headers in ({}, {"authorization": "Bearer psk_not_a_real_key"}, {"authorization": "Basic YTpi"}):
        for method, template in _photo_routes():
            path = template.replace("{photo_id}", photo_id).replace("{name}", "thumb")
            response = httpx.request(method, f"{server.url}{path}", headers=headers, timeout=10)
            assert response.status_code == 401, (method, path, headers, response.status_code)
            assert data[:64] not in response.content
