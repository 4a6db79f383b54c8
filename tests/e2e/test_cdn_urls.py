"""Signed CDN URLs end to end: handed out with photos, served by the origin, refused when wrong.

One embedded server is configured with a CDN provider whose only endpoint is the server itself (the
CDN's origin). Key rotation is a restart with the new settings, as an operator would do it.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from photostore.regions.signing import UrlSigner
from tests.support import images
from tests.support.http import assert_problem
from tests.support.server import ServerProcess, create_user, wait_ready_photo

OLD_SECRET = "old-signing-secret-0123456789abcdef"
NEW_SECRET = "new-signing-secret-0123456789abcdef"
TTL_S = 600


def _cdn_env(url: str, keys: dict[str, str], active: str) -> dict[str, str]:
    provider = {"name": "origin", "regions": ["here"], "endpoints": {"here": url}, "priority": 1}
    return {
        "PHOTOSTORE_CDN__PROVIDERS": json.dumps([provider]),
        "PHOTOSTORE_CDN__LOCATIONS": json.dumps({"here": {"lat": 48.85, "lon": 2.35}}),
        "PHOTOSTORE_CDN__SIGNING_KEYS": json.dumps([{"id": kid, "secret": s} for kid, s in keys.items()]),
        "PHOTOSTORE_CDN__ACTIVE_KEY": active,
        "PHOTOSTORE_CDN__URL_TTL_S": str(TTL_S),
    }


class Origin:
    """The server, restartable with other signing keys on the same port and data."""

    def __init__(self, data_dir: Path) -> None:
        self.server = ServerProcess(data_dir)
        self.server.env = _cdn_env(self.server.url, {"k1": OLD_SECRET}, "k1")

    def restart(self, keys: dict[str, str], active: str) -> None:
        self.server.stop()
        self.server = ServerProcess(
            self.server.data_dir, env=_cdn_env(self.server.url, keys, active), port=self.server.port
        ).start()


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    made = Origin(tmp_path_factory.mktemp("cdn") / "data")
    made.server.start()
    try:
        yield made
    finally:
        made.server.stop()


@pytest.fixture(scope="module")
def photo(origin: Origin) -> tuple[dict[str, object], bytes, str]:
    """A ready photo's JSON, its original bytes, and the owner's API key."""
    _, key = create_user(origin.server.url, "cdn-owner")
    data = images.jpeg(640, 480, seed=77)
    with httpx.Client(
        base_url=origin.server.url, headers={"authorization": f"Bearer {key}"}, timeout=30
    ) as c:
        created = c.post("/v1/photos", content=data, params={"filename": "cdn.jpg"})
        assert created.status_code == 201, created.text
        return wait_ready_photo(c, created.json()["id"]), data, key


def _owner_view(origin: Origin, photo_id: object, key: str) -> dict[str, object]:
    answer = httpx.get(
        f"{origin.server.url}/v1/photos/{photo_id}", headers={"authorization": f"Bearer {key}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    view: dict[str, object] = answer.json()
    return view


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    query.update(changes)
    return f"{parts.scheme}://{parts.netloc}{parts.path}?" + "&".join(f"{k}={v}" for k, v in query.items())


def test_signed_urls_serve_the_bytes_without_an_api_key(
    origin: Origin, photo: tuple[dict[str, object], bytes, str]
) -> None:
    body, data, _ = photo
    cdn = body["cdn"]
    assert isinstance(cdn, dict)
    assert cdn["original"].startswith(f"{origin.server.url}/cdn/")
    original = httpx.get(cdn["original"], timeout=30)
    assert original.status_code == 200
    assert original.content == data
    max_age = int(original.headers["cache-control"].removeprefix("public, max-age="))
    assert 0 < max_age <= TTL_S + 300
    assert parse_qs(urlsplit(cdn["original"]).query)["kid"] == ["k1"]
    assert set(cdn["variants"]) == {"thumb", "preview"}


def test_variants_are_negotiated_by_accept(photo: tuple[dict[str, object], bytes, str]) -> None:
    body, _, _ = photo
    thumb_url = body["cdn"]["variants"]["thumb"]  # type: ignore[index]
    stored = body["variants"]["thumb"]  # type: ignore[index]
    size = (stored["width"], stored["height"])
    expected = {
        "image/avif,image/webp,image/*,*/*;q=0.8": ("image/avif", "AVIF"),
        "image/webp,*/*": ("image/webp", "WEBP"),
        "image/jpeg": ("image/jpeg", "JPEG"),
        "*/*": ("image/webp", "WEBP"),  # the stored format when the client names none
    }
    etags = set()
    for accept, (media_type, pillow_format) in expected.items():
        answer = httpx.get(thumb_url, headers={"accept": accept}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == media_type
        assert answer.headers["vary"] == "Accept"
        image = Image.open(io.BytesIO(answer.content))
        assert (image.format, image.size) == (pillow_format, size)
        etags.add(answer.headers["etag"])
        again = httpx.get(thumb_url, headers={"accept": accept, "if-none-match": answer.headers["etag"]})
        assert again.status_code == 304
    assert len(etags) == 3  # one per format: a cache never hands AVIF bytes to a JPEG-only client


def test_tampered_urls_are_refused(origin: Origin, photo: tuple[dict[str, object], bytes, str]) -> None:
    body, _, _ = photo
    url = body["cdn"]["original"]  # type: ignore[index]
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    exp = int(parse_qs(urlsplit(url).query)["exp"][0])
    other_photo = url.replace(str(body["id"]), "0192f0c4-7a1b-7c3d-8e4f-a1b2c3d4e5f6")
    thumb_path_with_original_query = body["cdn"]["variants"]["thumb"].split("?")[0] + "?" + url.split("?")[1]  # type: ignore[index]
    for tampered in (
        _with_query(url, sig=flipped),
        _with_query(url, exp=str(exp + 300)),
        _with_query(url, kid="k2"),
        other_photo,
        thumb_path_with_original_query,
        url.split("?")[0],
    ):
        assert_problem(httpx.get(tampered, timeout=30), 403, "signature_invalid")


def test_expired_and_wrong_key_urls_are_refused(
    origin: Origin, photo: tuple[dict[str, object], bytes, str]
) -> None:
    body, _, _ = photo
    path = urlsplit(body["cdn"]["original"]).path  # type: ignore[index]
    base = origin.server.url
    an_hour_ago = time.time() - 2 * TTL_S
    expired = UrlSigner({"k1": OLD_SECRET.encode()}, "k1", TTL_S, clock=lambda: an_hour_ago).sign(path)
    answer = httpx.get(base + expired, timeout=30)
    assert_problem(answer, 403, "signature_invalid")
    assert "expired" in answer.json()["detail"]
    forged = UrlSigner({"k1": b"not-the-secret-at-all-0123456789"}, "k1", TTL_S).sign(path)
    assert_problem(httpx.get(base + forged, timeout=30), 403, "signature_invalid")
    unknown = UrlSigner({"k9": OLD_SECRET.encode()}, "k9", TTL_S).sign(path)
    assert_problem(httpx.get(base + unknown, timeout=30), 403, "signature_invalid")
    # The same signer with the right key is accepted: the refusals above are about the key alone.
    assert httpx.get(base + UrlSigner({"k1": OLD_SECRET.encode()}, "k1", TTL_S).sign(path)).status_code == 200


def test_rotation_keeps_old_urls_valid_until_the_old_key_is_retired(
    origin: Origin, photo: tuple[dict[str, object], bytes, str]
) -> None:
    body, data, key = photo
    old_url = body["cdn"]["original"]  # type: ignore[index]
    origin.restart({"k1": OLD_SECRET, "k2": NEW_SECRET}, active="k2")
    assert httpx.get(old_url, timeout=30).content == data
    new_url = _owner_view(origin, body["id"], key)["cdn"]["original"]  # type: ignore[index]
    assert parse_qs(urlsplit(new_url).query)["kid"] == ["k2"]
    assert httpx.get(new_url, timeout=30).content == data

    origin.restart({"k2": NEW_SECRET}, active="k2")  # k1 retired
    assert_problem(httpx.get(old_url, timeout=30), 403, "signature_invalid")
    assert httpx.get(new_url, timeout=30).content == data


def test_a_shared_original_loses_its_location_and_the_owner_keeps_it(origin: Origin) -> None:
    from photostore.imaging.exif import read_exif
    from photostore.imaging.samples import sample_exif

    _, key = create_user(origin.server.url, "traveller")
    located = images.jpeg(320, 240, seed=78, exif=sample_exif(gps=True))
    heic = io.BytesIO()
    Image.new("RGB", (64, 48), (9, 99, 199)).save(heic, "HEIF", exif=sample_exif(gps=True).tobytes())
    with httpx.Client(
        base_url=origin.server.url, headers={"authorization": f"Bearer {key}"}, timeout=30
    ) as owner:
        jpeg_photo = owner.post("/v1/photos", content=located).json()
        heic_photo = owner.post("/v1/photos", content=heic.getvalue()).json()
        for made in (jpeg_photo, heic_photo):
            wait_ready_photo(owner, made["id"])
        assert owner.get(f"/v1/photos/{jpeg_photo['id']}/original").content == located  # the owner's bytes
        jpeg_json = owner.get(f"/v1/photos/{jpeg_photo['id']}").json()
        heic_json = owner.get(f"/v1/photos/{heic_photo['id']}").json()
    assert "gps" in read_exif(located).data

    shared = httpx.get(jpeg_json["cdn"]["original"], timeout=30)
    assert shared.status_code == 200
    assert "gps" not in read_exif(shared.content).data
    assert read_exif(shared.content).data["taken_at"] == read_exif(located).data["taken_at"]
    with Image.open(io.BytesIO(shared.content)) as a, Image.open(io.BytesIO(located)) as b:
        assert a.tobytes() == b.tobytes()  # not re-encoded
    assert shared.headers["etag"] != f'"{jpeg_json["sha256"]}"'
    head = httpx.get(jpeg_json["cdn"]["original"], headers={"range": "bytes=0-9"}, timeout=30)
    assert head.status_code == 206
    assert head.content == shared.content[:10]

    assert_problem(httpx.get(heic_json["cdn"]["original"], timeout=30), 403, "location_private")
    assert httpx.get(heic_json["cdn"]["variants"]["thumb"], timeout=30).status_code == 200
