"""The BlobStore contract: every backend must pass these.

Backends: ``local`` (folders in a temp dir) and ``s3`` (the session's shared SeaweedFS, see
tests/support/engines/seaweedfs.py; skipped without ``weed``, failed under CI=true). A backend is
described by ``BlobBackend``: how to open a started store in this process, and the Python source
that opens the same store in another process (for the SIGKILL durability test). S3-only behaviour
(multipart, placement, credentials, outages) is tested in tests/engines/test_s3_blob_store.py.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from photostore.blobs.local import LocalBlobStore
from photostore.blobs.paths import original_key, variant_key
from photostore.blobs.port import BlobStore
from photostore.blobs.s3 import S3BlobStore
from photostore.errors import BadRequest, BlobNotFound, ConfigError, RangeNotSatisfiable
from photostore.ids import make_id
from tests.support.engines.seaweedfs import SeaweedFS

BUCKETS = ["photos-0", "photos-1"]


@dataclass
class BlobBackend:
    open: Callable[[], Awaitable[BlobStore]]
    # Source of ``async def open_store()`` returning a started store on the same storage.
    subprocess_source: str


def _local_backend(root: Path) -> BlobBackend:
    async def open_store() -> BlobStore:
        store = LocalBlobStore(root, BUCKETS)
        await store.start()
        return store

    source = f"""
        from pathlib import Path
        from photostore.blobs.local import LocalBlobStore

        async def open_store():
            store = LocalBlobStore(Path({str(root)!r}), {BUCKETS!r})
            await store.start()
            return store
    """
    return BlobBackend(open_store, textwrap.dedent(source))


def _s3_backend(server: SeaweedFS) -> BlobBackend:
    async def open_store() -> BlobStore:
        store = S3BlobStore.from_settings(server.s3_settings(), BUCKETS)
        await store.start()
        return store

    source = f"""
        from pydantic import SecretStr
        from photostore.blobs.s3 import S3BlobStore
        from photostore.settings import S3EndpointSettings, S3Settings

        async def open_store():
            endpoint = S3EndpointSettings(
                name="seaweedfs",
                url={server.endpoint_url!r},
                access_key_id={server.admin.access_key!r},
                secret_access_key=SecretStr({server.admin.secret_key!r}),
                allow_http=True,
            )
            store = S3BlobStore.from_settings(S3Settings(endpoints=(endpoint,)), {BUCKETS!r})
            await store.start()
            return store
    """
    return BlobBackend(open_store, textwrap.dedent(source))


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> BlobBackend:
    if request.param == "s3":
        return _s3_backend(request.getfixturevalue("seaweedfs"))
    return _local_backend(tmp_path / "blobs")


@pytest.fixture
async def store(backend: BlobBackend) -> AsyncIterator[BlobStore]:
    opened = await backend.open()
    yield opened
    await opened.close()


@pytest.fixture
def bucket(store: BlobStore) -> str:
    return store.buckets()[0]


def _key(suffix: str = "") -> str:
    """A fresh key in the spec's layout, so reruns against a shared server never collide."""
    return original_key(make_id(secrets.randbits(32))) + suffix


async def _keys(store: BlobStore, bucket: str, prefix: str) -> list[str]:
    return [info.key async for info in store.list(bucket, prefix)]


# --- round trips ----------------------------------------------------------------------------------


async def test_put_then_get_returns_the_same_bytes(store: BlobStore, bucket: str) -> None:
    data = os.urandom(300_000)
    key = _key()
    await store.put(bucket, key, data, "image/jpeg")
    assert await store.get(bucket, key) == data


async def test_an_empty_object_round_trips(store: BlobStore, bucket: str) -> None:
    key = _key()
    await store.put(bucket, key, b"")
    assert await store.get(bucket, key) == b""
    assert (await store.head(bucket, key)).size == 0
    with pytest.raises(RangeNotSatisfiable):  # no byte 0 to start from
        await store.get_range(bucket, key, 0, 1)


async def test_buckets_are_separate(store: BlobStore) -> None:
    first, second = store.buckets()[:2]
    key = _key()
    await store.put(first, key, b"first")
    with pytest.raises(BlobNotFound):
        await store.get(second, key)


async def test_overwrite_replaces_the_whole_object(store: BlobStore, bucket: str) -> None:
    key = _key()
    await store.put(bucket, key, b"a much longer first version")
    await store.put(bucket, key, b"short")
    assert await store.get(bucket, key) == b"short"
    assert (await store.head(bucket, key)).size == 5


async def test_concurrent_readers_see_whole_versions_only(store: BlobStore, bucket: str) -> None:
    key = _key()
    size = 2 * 1024 * 1024
    versions = [bytes([v]) * size for v in range(4)]
    await store.put(bucket, key, versions[0])
    seen: set[bytes] = set()
    writing = True

    async def writer() -> None:
        nonlocal writing
        for i in range(1, 16):
            await store.put(bucket, key, versions[i % 4])
        writing = False

    async def reader() -> None:
        while writing:
            data = await store.get(bucket, key)
            assert data in versions, "a reader saw a partly written object"
            seen.add(data[:1])

    await asyncio.gather(writer(), reader(), reader())
    assert seen, "the readers never ran"


# --- ranges ---------------------------------------------------------------------------------------


async def test_get_range_edges(store: BlobStore, bucket: str) -> None:
    data = bytes(range(256)) * 4  # 1024 bytes
    key = _key()
    await store.put(bucket, key, data)
    assert await store.get_range(bucket, key, 0, 1) == data[:1]  # first byte
    assert await store.get_range(bucket, key, 1023, 1024) == data[1023:]  # last byte
    assert await store.get_range(bucket, key, 0, 1024) == data  # whole
    assert await store.get_range(bucket, key, 100, 200) == data[100:200]
    assert await store.get_range(bucket, key, 1000, 5000) == data[1000:]  # end past the size: clamped
    assert await store.get_range(bucket, key, 10, 10) == b""  # empty range


async def test_get_range_starting_past_the_end_is_not_satisfiable(store: BlobStore, bucket: str) -> None:
    key = _key()
    await store.put(bucket, key, b"0123456789")
    with pytest.raises(RangeNotSatisfiable):
        await store.get_range(bucket, key, 10, 11)
    with pytest.raises(RangeNotSatisfiable):
        await store.get_range(bucket, key, 50, 60)


async def test_get_range_refuses_inverted_or_negative_ranges(store: BlobStore, bucket: str) -> None:
    key = _key()
    await store.put(bucket, key, b"0123456789")
    with pytest.raises(BadRequest):
        await store.get_range(bucket, key, 5, 4)
    with pytest.raises(BadRequest):
        await store.get_range(bucket, key, -1, 4)


# --- head, missing, delete ------------------------------------------------------------------------


async def test_head_gives_key_size_and_time(store: BlobStore, bucket: str) -> None:
    key = _key()
    await store.put(bucket, key, b"x" * 1234)
    info = await store.head(bucket, key)
    assert info.key == key
    assert info.size == 1234
    assert info.last_modified is not None


async def test_a_missing_object_is_blob_not_found(store: BlobStore, bucket: str) -> None:
    key = _key()
    with pytest.raises(BlobNotFound):
        await store.get(bucket, key)
    with pytest.raises(BlobNotFound):
        await store.head(bucket, key)
    with pytest.raises(BlobNotFound):
        await store.get_range(bucket, key, 0, 10)
    with pytest.raises(BlobNotFound):
        await store.get_range(bucket, key, 0, 0)


async def test_delete_removes_and_is_idempotent(store: BlobStore, bucket: str) -> None:
    key = _key()
    await store.put(bucket, key, b"bye")
    await store.delete(bucket, key)
    with pytest.raises(BlobNotFound):
        await store.get(bucket, key)
    await store.delete(bucket, key)  # already gone: not an error
    await store.delete(bucket, _key())  # never existed, folder never existed: not an error


# --- keys and listing -----------------------------------------------------------------------------


async def test_keys_with_dates_and_dots(store: BlobStore, bucket: str) -> None:
    photo_id = make_id(secrets.randbits(32))
    original = original_key(photo_id)
    thumb = variant_key(photo_id, "thumb", "WEBP")
    assert thumb.endswith(".thumb.webp")
    await store.put(bucket, original, b"original")
    await store.put(bucket, thumb, b"thumb")
    assert await store.get(bucket, original) == b"original"
    assert await store.get(bucket, thumb) == b"thumb"
    # The original's key is a string prefix of its variants' keys.
    assert await _keys(store, bucket, original) == [original, thumb]


async def test_list_by_prefix(store: BlobStore, bucket: str) -> None:
    run = uuid.uuid4().hex  # a fresh top folder, so listings see only this test's objects
    keys = [
        f"{run}/2026/11/28/a",
        f"{run}/2026/11/28/b.thumb.webp",
        f"{run}/2026/11/29/c",
        f"{run}/2026/12/01/d",
    ]
    for key in reversed(keys):
        await store.put(bucket, key, key.encode())
    assert await _keys(store, bucket, f"{run}/") == keys  # sorted by key
    assert await _keys(store, bucket, f"{run}/2026/11/28/") == keys[:2]
    assert await _keys(store, bucket, f"{run}/2026/11/2") == keys[:3]  # a plain string prefix
    assert await _keys(store, bucket, f"{run}/2026/11/28/b") == keys[1:2]
    assert await _keys(store, bucket, f"{run}/2027/") == []
    sizes = {info.key: info.size async for info in store.list(bucket, f"{run}/")}
    assert sizes == {key: len(key) for key in keys}


async def test_list_yields_keys_in_lexicographic_order(store: BlobStore, bucket: str) -> None:
    run = uuid.uuid4().hex
    names = ["a0", "a/b.c", "a-b", "a.x", "a/b/z", "b"]
    for name in names:
        await store.put(bucket, f"{run}/{name}", b"x")
    expected = [f"{run}/{name}" for name in ["a-b", "a.x", "a/b.c", "a/b/z", "a0", "b"]]  # - . / 0
    assert await _keys(store, bucket, f"{run}/") == expected
    assert await _keys(store, bucket, f"{run}/a") == expected[:-1]


async def test_every_allowed_key_character_round_trips(store: BlobStore, bucket: str) -> None:
    # "+" and "=" need care in URLs (a "+" read as a space would name another object).
    run = uuid.uuid4().hex
    keys = [f"{run}/a=b+c_d-e", f"{run}/.hidden", f"{run}/...", f"{run}/x..y/z..", f"{run}/A+Z"]
    for key in keys:
        await store.put(bucket, key, key.encode())
    for key in keys:
        assert await store.get(bucket, key) == key.encode()
        assert (await store.head(bucket, key)).key == key
    assert await _keys(store, bucket, f"{run}/") == sorted(keys)


@pytest.mark.parametrize(
    "bad_key",
    ["", "/etc/passwd", "../escape", "photos/../../escape", "photos/./x", "photos//x", "photos/x/", "a\x00b"],
)
async def test_keys_that_could_escape_are_refused(store: BlobStore, bucket: str, bad_key: str) -> None:
    with pytest.raises(BadRequest):
        await store.put(bucket, bad_key, b"x")
    with pytest.raises(BadRequest):
        await store.get(bucket, bad_key)
    with pytest.raises(BadRequest):
        await store.head(bucket, bad_key)
    with pytest.raises(BadRequest):
        await store.delete(bucket, bad_key)


async def test_an_unknown_bucket_is_a_clear_error(store: BlobStore) -> None:
    with pytest.raises(ConfigError, match="unknown bucket"):
        await store.put("no-such-bucket", _key(), b"x")
    with pytest.raises(ConfigError, match="unknown bucket"):
        await store.get("no-such-bucket", _key())


# --- durability -----------------------------------------------------------------------------------

_WRITER = """
import asyncio, sys, time
{open_source}

async def main():
    store = await open_store()
    bucket, key, count, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    for i in range(count):
        await store.put(bucket, f"{{key}}.{{i}}", bytes([i % 256]) * size)
    print("stored", flush=True)
    time.sleep(60)  # SIGKILLed here, without closing anything

asyncio.run(main())
"""


async def test_a_put_survives_sigkill_right_after_it_returns(
    backend: BlobBackend, store: BlobStore, bucket: str
) -> None:
    # The writer process dies, not the storage: local shows the bytes were fsynced before put
    # returned; s3 shows put waited for the server's acknowledgement (nothing buffered client-side).
    # The server-side case (SeaweedFS SIGKILLed after acknowledging) is in tests/engines.
    key, count, size = _key(), 20, 64 * 1024
    script = _WRITER.format(open_source=backend.subprocess_source)
    with subprocess.Popen(
        [sys.executable, "-c", script, bucket, key, str(count), str(size)],
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "stored"
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    for i in range(count):
        assert await store.get(bucket, f"{key}.{i}") == bytes([i % 256]) * size
