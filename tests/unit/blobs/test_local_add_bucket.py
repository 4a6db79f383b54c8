"""A bucket taken into use while the folder-backed store runs (``photostore buckets add``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from photostore.blobs.local import LocalBlobStore
from photostore.errors import ConfigError


async def test_a_bucket_added_while_running_gets_its_folder_and_is_usable_at_once(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", ["b1"])
    await store.start()
    await store.add_bucket("b2")
    await store.add_bucket("b2")  # idempotent
    assert store.buckets() == ["b1", "b2"]
    assert (tmp_path / "blobs" / "b2").is_dir()
    await store.put("b2", "photos/2026/05/28/a", b"data")
    assert await store.get("b2", "photos/2026/05/28/a") == b"data"
    assert [info.key async for info in store.list("b2")] == ["photos/2026/05/28/a"]
    await store.close()


async def test_a_bucket_added_before_start_is_created_by_start(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", ["b1"])
    await store.add_bucket("b2")
    assert not (tmp_path / "blobs" / "b2").exists()
    await store.start()
    assert (tmp_path / "blobs" / "b2").is_dir()
    await store.put("b2", "k", b"x")
    await store.close()


async def test_an_invalid_bucket_name_is_refused_before_touching_the_disk(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", ["b1"])
    await store.start()
    for bad in ("../escape", "UPPER", ""):
        with pytest.raises(ConfigError):
            await store.add_bucket(bad)
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == ["b1"]
    await store.close()
