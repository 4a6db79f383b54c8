"""With ``imaging.keep_gps_for_owner = false`` even the owner gets no location: not in the photo's
JSON, not in the original's bytes (removed in place, the pixels untouched)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from photostore.imaging.exif import read_exif
from photostore.imaging.samples import sample_exif
from tests.support import images
from tests.support.server import ServerProcess, create_user, embedded_server, wait_ready_photo


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"PHOTOSTORE_IMAGING__KEEP_GPS_FOR_OWNER": "false"}
    yield from embedded_server(tmp_path_factory, "no-gps", env)


def test_the_owner_gets_no_location_when_the_settings_keep_none(server: ServerProcess) -> None:
    _, key = create_user(server.url, "private")
    located = images.jpeg(160, 120, seed=31, exif=sample_exif(gps=True))
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as owner:
        photo = owner.post("/v1/photos", content=located).json()
        body = wait_ready_photo(owner, photo["id"])
        original = owner.get(f"/v1/photos/{photo['id']}/original")
    assert "gps" not in (body["exif"] or {})
    assert original.status_code == 200
    assert "gps" not in read_exif(original.content).data
    assert read_exif(original.content).data["model"] == read_exif(located).data["model"]
    with Image.open(io.BytesIO(original.content)) as a, Image.open(io.BytesIO(located)) as b:
        assert a.tobytes() == b.tobytes()
