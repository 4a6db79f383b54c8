"""What only the S3 store promises, against real SeaweedFS servers on loopback.

The shared session server holds most tests; the placement test starts a second, private server
(a second endpoint, ~3 s) so that "this bucket lives on that endpoint" is checked across two
real servers. Tests that kill, restart or freeze the shared server leave it running.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import obstore
import pytest
from obstore.store import S3Store
from pydantic import SecretStr

from photostore.blobs import sigv4
from photostore.blobs.buckets import BucketPlacement, ensure_bucket
from photostore.blobs.s3 import S3BlobStore, S3ClientOptions
from photostore.errors import BackendUnavailable, BlobNotFound, ConfigError
from photostore.settings import S3BucketSettings, S3Settings
from tests.support.engines.availability import free_port
from tests.support.engines.seaweedfs import SeaweedFS, seaweedfs_server, shared_seaweedfs

MiB = 1024 * 1024
# Bounded-time claims: generous for a loaded 2-core machine, far below any "hang".
QUICK_S = 5.0


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _key() -> str:
    return f"photos/2026/11/28/{uuid.uuid4()}"


def _raw(server: SeaweedFS, bucket: str) -> S3Store:
    """obstore directly, to look at what the server holds (ETags) without the adapter."""
    return S3Store(
        bucket,
        endpoint=server.endpoint_url,
        region="us-east-1",
        access_key_id=server.admin.access_key,
        secret_access_key=server.admin.secret_key,
        client_options={"allow_http": True},
    )


@pytest.fixture
def server() -> SeaweedFS:
    """The session's shared SeaweedFS (started again if an earlier test left it stopped)."""
    return shared_seaweedfs()


@pytest.fixture
async def store(server: SeaweedFS) -> AsyncIterator[S3BlobStore]:
    opened = S3BlobStore.from_settings(server.s3_settings(), ["s3-tests"])
    await opened.start()
    yield opened
    await opened.close()


# --- multipart ------------------------------------------------------------------------------------


async def test_a_20_mib_object_goes_up_in_parts_and_round_trips(
    server: SeaweedFS, store: S3BlobStore
) -> None:
    data = os.urandom(20 * MiB + 12345)  # over the 16 MiB default threshold: parts of 8 MiB
    key = _key()
    await store.put("s3-tests", key, data, "image/jpeg")
    assert await store.get("s3-tests", key) == data
    assert (await store.head("s3-tests", key)).size == len(data)
    # Across the first part boundary.
    assert (
        await store.get_range("s3-tests", key, 8 * MiB - 10, 8 * MiB + 10)
        == data[8 * MiB - 10 : 8 * MiB + 10]
    )
    # S3 gives a multipart object the ETag "<md5 of part md5s>-<part count>": 8 + 8 + 4 MiB.
    meta = await obstore.head_async(_raw(server, "s3-tests"), key)
    assert meta["e_tag"] is not None
    assert meta["e_tag"].strip('"').endswith("-3")
    got = await obstore.get_async(_raw(server, "s3-tests"), key)
    assert got.attributes.get("Content-Type") == "image/jpeg"


async def test_an_object_at_the_threshold_goes_up_in_one_put(server: SeaweedFS, store: S3BlobStore) -> None:
    key = _key()
    await store.put("s3-tests", key, b"x" * (16 * MiB))
    meta = await obstore.head_async(_raw(server, "s3-tests"), key)
    assert meta["e_tag"] is not None
    assert "-" not in meta["e_tag"]


# --- buckets: placement, creation, usage ----------------------------------------------------------


@pytest.fixture(scope="module")
def second_server() -> Iterator[SeaweedFS]:
    with seaweedfs_server() as server:
        yield server


async def test_buckets_live_on_their_configured_endpoints(
    server: SeaweedFS, second_server: SeaweedFS
) -> None:
    east, west = server.endpoint_settings("east"), second_server.endpoint_settings("west")
    names = [_name("east"), _name("west")]
    settings = S3Settings(
        endpoints=(east, west),
        buckets=(
            S3BucketSettings(name=names[0], endpoint="east", capacity_bytes=10 * MiB),
            S3BucketSettings(name=names[1], endpoint="west", region="eu-west-1"),
        ),
    )
    store = S3BlobStore.from_settings(settings, names)
    await store.start()
    key = _key()
    await store.put(names[0], key, b"east" * 10)
    await store.put(names[1], key, b"west")
    assert await store.get(names[0], key) == b"east" * 10
    assert await store.get(names[1], key) == b"west"
    # Each object is on its bucket's server, and that bucket exists on no other server.
    assert (await obstore.head_async(_raw(server, names[0]), key))["size"] == 40
    assert (await obstore.head_async(_raw(second_server, names[1]), key))["size"] == 4
    for holder, absent in ((server, names[1]), (second_server, names[0])):
        with pytest.raises(FileNotFoundError):
            await obstore.head_async(_raw(holder, absent), key)

    infos = {info.name: info for info in await store.bucket_info()}
    assert infos[names[0]].endpoint == server.endpoint_url
    assert infos[names[0]].endpoint_name == "east"
    assert (infos[names[0]].region, infos[names[0]].capacity, infos[names[0]].used) == (
        "us-east-1",
        10 * MiB,
        40,
    )
    assert infos[names[1]].endpoint == second_server.endpoint_url
    assert (infos[names[1]].region, infos[names[1]].capacity, infos[names[1]].used) == ("eu-west-1", 0, 4)


async def test_bucket_creation_is_idempotent(server: SeaweedFS) -> None:
    name = _name("idem")
    placement = BucketPlacement(name, "us-east-1", 0, server.endpoint_settings())
    async with httpx.AsyncClient(timeout=5) as client:
        assert await ensure_bucket(client, placement, create=True) is True
        assert await ensure_bucket(client, placement, create=True) is False
    # Two stores starting at once, then one starting again: all succeed, the data stays.
    stores = [S3BlobStore.from_settings(server.s3_settings(), [name]) for _ in range(2)]
    await asyncio.gather(*(s.start() for s in stores))
    await stores[0].put(name, "kept", b"1")
    await stores[1].start()
    assert await stores[1].get(name, "kept") == b"1"


async def test_a_missing_bucket_is_a_config_error_when_creation_is_off(server: SeaweedFS) -> None:
    settings = server.s3_settings().model_copy(update={"create_buckets": False})
    store = S3BlobStore.from_settings(settings, [_name("absent")])
    with pytest.raises(ConfigError, match="create_buckets is false"):
        await store.start()


# --- credentials and outages ----------------------------------------------------------------------


async def test_wrong_credentials_are_backend_unavailable_quickly(server: SeaweedFS) -> None:
    wrong = server.endpoint_settings().model_copy(update={"secret_access_key": SecretStr("not-the-secret")})
    store = S3BlobStore.from_settings(S3Settings(endpoints=(wrong,)), ["s3-tests"])
    began = time.monotonic()
    with pytest.raises(BackendUnavailable, match="check credentials") as raised:
        await store.start()
    assert time.monotonic() - began < QUICK_S
    assert server.endpoint_url in raised.value.detail


async def test_an_identity_without_write_access_gets_a_credentials_hint(
    server: SeaweedFS, store: S3BlobStore
) -> None:
    key = _key()
    await store.put("s3-tests", key, b"readable")
    reader = S3BlobStore.from_settings(server.s3_settings(identity=server.reader), ["s3-tests"])
    await reader.start()  # HEAD bucket and listing are allowed
    assert await reader.get("s3-tests", key) == b"readable"
    began = time.monotonic()
    with pytest.raises(BackendUnavailable, match="check credentials"):
        await reader.put("s3-tests", _key(), b"x")
    assert time.monotonic() - began < QUICK_S


async def test_start_against_an_unreachable_endpoint_fails_quickly(server: SeaweedFS) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}"
    dead = server.endpoint_settings("dead").model_copy(update={"url": dead_url})
    store = S3BlobStore.from_settings(S3Settings(endpoints=(dead,)), ["s3-tests"])
    began = time.monotonic()
    with pytest.raises(BackendUnavailable, match=f"'dead' \\({dead_url}\\)"):
        await store.start()
    assert time.monotonic() - began < QUICK_S


async def _assert_unavailable_quickly(store: S3BlobStore, key: str, endpoint_url: str) -> None:
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "put": lambda: store.put("s3-tests", _key(), b"x"),
        "get": lambda: store.get("s3-tests", key),
        "get_range": lambda: store.get_range("s3-tests", key, 0, 2),
        "head": lambda: store.head("s3-tests", key),
        "delete": lambda: store.delete("s3-tests", _key()),
        "list": lambda: store.bucket_info(),
    }
    for name, call in calls.items():
        began = time.monotonic()
        with pytest.raises(BackendUnavailable) as raised:
            await call()
        took = time.monotonic() - began
        assert took < QUICK_S, f"{name} took {took:.1f} s"
        assert endpoint_url in raised.value.detail, name


async def test_a_killed_server_is_unavailable_fast_and_after_restart_everything_is_back(
    server: SeaweedFS, store: S3BlobStore
) -> None:
    keys = [_key() for _ in range(5)]
    for i, key in enumerate(keys):
        await store.put("s3-tests", key, bytes([i]) * 100_000)
    big = _key()
    await store.put("s3-tests", big, b"m" * (17 * MiB))  # multipart
    try:
        server.stop()  # SIGKILL, right after the puts were acknowledged
        await _assert_unavailable_quickly(store, keys[0], server.endpoint_url)
    finally:
        server.start()  # same ports and data folder
    # The same store object works again: no reconnect or restart step.
    for i, key in enumerate(keys):
        assert await store.get("s3-tests", key) == bytes([i]) * 100_000
    assert (await store.head("s3-tests", big)).size == 17 * MiB
    after = _key()
    await store.put("s3-tests", after, b"after")
    assert await store.get("s3-tests", after) == b"after"


async def test_a_frozen_server_is_unavailable_within_the_read_timeout(server: SeaweedFS) -> None:
    options = S3ClientOptions(read_timeout_s=1.0, retry_timeout_s=1.0)
    store = S3BlobStore.from_settings(server.s3_settings(), ["s3-tests"], options=options)
    await store.start()
    key = _key()
    await store.put("s3-tests", key, b"frozen")
    server.freeze()  # SIGSTOP: the kernel still accepts connections, nothing answers
    try:
        for call in (lambda: store.get("s3-tests", key), lambda: store.put("s3-tests", _key(), b"x")):
            began = time.monotonic()
            with pytest.raises(BackendUnavailable):
                await call()
            assert time.monotonic() - began < QUICK_S
    finally:
        server.thaw()
    assert await store.get("s3-tests", key) == b"frozen"


async def test_a_bucket_deleted_behind_the_stores_back_is_not_reported_as_a_missing_object(
    server: SeaweedFS,
) -> None:
    name = _name("gone")
    store = S3BlobStore.from_settings(server.s3_settings(), [name])
    await store.start()
    # Delete the (empty) bucket with a signed request, as an operator might.
    url = f"{server.endpoint_url}/{name}"
    headers = sigv4.sign(
        "DELETE",
        url,
        region="us-east-1",
        access_key_id=server.admin.access_key,
        secret_access_key=server.admin.secret_key,
    )
    async with httpx.AsyncClient() as client:
        assert (await client.delete(url, headers=headers)).status_code == 204
    with pytest.raises(BackendUnavailable, match="bucket does not exist"):
        await store.get(name, _key())
    with pytest.raises(BlobNotFound):
        await store.head(name, _key())  # a HEAD answer has no body to tell the two apart
