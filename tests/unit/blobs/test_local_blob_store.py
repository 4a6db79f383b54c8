"""What only the folder-backed store promises: where files land, key checks, fsync bookkeeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from photostore.blobs.local import LocalBlobStore, check_key
from photostore.errors import BackendUnavailable, BadRequest, ConfigError


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalBlobStore]:
    opened = LocalBlobStore(tmp_path / "root" / "blobs", ["b1", "b2"])
    await opened.start()
    yield opened
    await opened.close()


@pytest.mark.parametrize(
    "key",
    [
        "photos/2026/11/28/0190f0a2-5c1e-7abc-8def-0123456789ab",
        "photos/2026/11/28/0190f0a2-5c1e-7abc-8def-0123456789ab.thumb.webp",
        "a",
        ".hidden",
        "...",
        "x/..y/z..",
        "a=b+c_d-e",
    ],
)
def test_check_key_accepts_safe_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key",
    ["", ".", "..", "a/..", "../a", "a/../b", "/a", "a/", "a//b", "a\\b", "a b", "a#1", "é", "x" * 1025],
)
def test_check_key_refuses_unsafe_keys(key: str) -> None:
    with pytest.raises(BadRequest):
        check_key(key)


async def test_start_creates_one_folder_per_bucket(store: LocalBlobStore, tmp_path: Path) -> None:
    assert sorted(p.name for p in (tmp_path / "root" / "blobs").iterdir()) == ["b1", "b2"]
    assert store.buckets() == ["b1", "b2"]


async def test_an_object_is_a_file_at_its_key_and_no_staging_file_remains(
    store: LocalBlobStore, tmp_path: Path
) -> None:
    await store.put("b1", "photos/2026/11/28/abc", b"data")
    await store.put("b1", "photos/2026/11/28/abc", b"data2")
    folder = tmp_path / "root" / "blobs" / "b1" / "photos" / "2026" / "11" / "28"
    assert [p.name for p in folder.iterdir()] == ["abc"]
    assert (folder / "abc").read_bytes() == b"data2"


async def test_a_refused_key_writes_nothing(store: LocalBlobStore, tmp_path: Path) -> None:
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(BadRequest):
        await store.put("b1", "../../escape", b"x")
    assert sorted(tmp_path.rglob("*")) == before


async def test_new_folders_are_made_durable_once(store: LocalBlobStore, tmp_path: Path) -> None:
    bucket_dir = tmp_path / "root" / "blobs" / "b1"
    await store.put("b1", "photos/2026/11/28/abc", b"data")
    expected = {str(bucket_dir / "photos" / "2026" / "11" / "28"), str(bucket_dir / "photos")}
    assert expected <= store._durable_dirs


async def test_fsync_can_be_turned_off(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, ["b1"], fsync=False)
    await store.start()
    await store.put("b1", "a/b", b"data")
    assert await store.get("b1", "a/b") == b"data"
    assert store._durable_dirs == {str(tmp_path / "b1")}  # nothing was synced, so nothing recorded
    await store.close()


async def test_a_key_that_is_also_a_folder_is_backend_unavailable(store: LocalBlobStore) -> None:
    await store.put("b1", "a/b/c", b"data")
    with pytest.raises(BackendUnavailable):
        await store.put("b1", "a/b", b"data")


async def test_listing_a_prefix_with_no_folder_is_empty(store: LocalBlobStore) -> None:
    assert [info async for info in store.list("b1", "nothing/here/")] == []


async def test_use_before_start_is_backend_unavailable(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, ["b1"])
    with pytest.raises(BackendUnavailable, match="not started"):
        await store.get("b1", "a")


@pytest.mark.parametrize("names", [[], ["UPPER"], ["a/b"], ["..", "b"], ["dup", "dup"]])
def test_bad_bucket_names_are_refused(tmp_path: Path, names: list[str]) -> None:
    with pytest.raises(ConfigError):
        LocalBlobStore(tmp_path, names)
