"""An expired resumable upload is gone with its bytes, in both modes, on a server whose uploads
expire after 2 s and are swept every half second. (A module of its own: two cluster-mode servers
alive at once would share the broker's consumer groups.)"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import pytest
from tusclient.exceptions import TusCommunicationError

from tests.support.cluster import server_in_mode
from tests.support.http import assert_problem, stored_objects
from tests.support.server import ServerProcess, create_user
from tests.support.tus import PART, TUS, create_upload, large_photo, patch_upload, tus_client_of, tus_env


@pytest.fixture(scope="module", params=["embedded", "cluster"])
def short_lived(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = tus_env(
        {"PHOTOSTORE_RESUMABLE__EXPIRE_AFTER": "PT2S", "PHOTOSTORE_RESUMABLE__SWEEP_INTERVAL_S": "0.5"}
    )
    yield from server_in_mode(request, tmp_path_factory, "tus-expiry", env)


def test_an_expired_upload_is_gone_with_its_bytes(short_lived: ServerProcess) -> None:
    _, key = create_user(short_lived.url, "expiring")
    staging = "photos-uploads" if short_lived.tenant is None else f"{short_lived.tenant.bucket_prefix}uploads"
    with httpx.Client(
        base_url=short_lived.url, headers={"authorization": f"Bearer {key}"}, timeout=30
    ) as api:
        data = large_photo()[: PART + 1000]  # one whole part and a tail
        location = create_upload(api, len(large_photo()))
        upload_id = location.rsplit("/", 1)[-1]
        assert patch_upload(api, location, 0, data).status_code == 204
        assert any(upload_id in name for name in stored_objects(short_lived, [staging]))
        deadline = time.monotonic() + 20
        while api.head(location, headers=TUS).status_code != 404 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert api.head(location, headers=TUS).status_code == 404
        assert_problem(patch_upload(api, location, len(data), b"more"), 404, "upload_not_found")
        assert not any(upload_id in name for name in stored_objects(short_lived, [staging]))
        with pytest.raises(TusCommunicationError):
            tus_client_of(short_lived, key).uploader(
                file_stream=io.BytesIO(data), url=f"{short_lived.url}{location}"
            ).get_offset()
