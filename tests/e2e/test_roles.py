"""The roles split across processes: an api-only server, then a separate relay and worker finish
the photo. Also shows variant_not_ready while no worker runs."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import images
from tests.support.server import ServerProcess, create_user, wait_ready_photo


def test_api_relay_and_worker_as_separate_processes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    api = ServerProcess(data_dir, role="api").start()
    others: list[ServerProcess] = []
    try:
        _, key = create_user(api.url, "split")
        headers = {"authorization": f"Bearer {key}"}
        with httpx.Client(base_url=api.url, headers=headers, timeout=30) as client:
            photo = client.post("/v1/photos", content=images.jpeg(500, 400, seed=42)).json()
            assert photo["status"] == "processing"
            early = client.get(f"/v1/photos/{photo['id']}/variants/thumb")
            assert early.status_code == 404
            assert early.json()["code"] == "variant_not_ready"
            for role in ("relay", "worker"):
                others.append(ServerProcess(data_dir, role=role).start())
            ready = wait_ready_photo(client, photo["id"], timeout_s=30)
            assert set(ready["variants"]) == {"thumb", "preview"}  # type: ignore[arg-type]
            assert client.get(f"/v1/photos/{photo['id']}/variants/thumb").status_code == 200
    finally:
        for proc in others:
            proc.stop()
        api.stop()
