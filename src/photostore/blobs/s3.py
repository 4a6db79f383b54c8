"""The cluster BlobStore: one obstore ``S3Store`` per bucket, each bucket on its own S3 endpoint.

Guarantees (the port's, made concrete):
- ``put`` returns when the S3 endpoint has acknowledged the whole object, and is atomic: a single
  PUT, or above ``multipart_threshold_bytes`` a multipart upload (parts of ``multipart_part_bytes``)
  that becomes visible only when it is completed. Readers see the whole old or the whole new object.
- Keys are checked with the same ``check_key`` as the embedded store, before any request.
- ``list(bucket, prefix)`` matches keys by plain string prefix and yields them in lexicographic
  order on any S3 server: it walks the folders under the prefix with delimiter listings (one folder's
  listing in memory at a time) because some servers (SeaweedFS) list a flat prefix in directory-walk
  order instead. Only objects are yielded: SeaweedFS also lists each folder emptied by deletes.
- Errors are translated: a missing object is ``BlobNotFound``; a range starting at or past the end
  is ``RangeNotSatisfiable``; an unknown bucket name is ``ConfigError``; access denied is
  ``BackendUnavailable`` saying to check the credentials; refused or timed-out connections, 5xx and
  everything else are ``BackendUnavailable`` naming the endpoint. Client options are tight (short
  connect and read timeouts, two retries within a few seconds), so an outage surfaces in seconds.
- ``start`` makes each bucket exist (HEAD, then CreateBucket when ``create_buckets``) and checks that
  it answers an object listing with these credentials; ``add_bucket`` does the same for a bucket
  taken into use while running.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, NoReturn

import httpx
import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.exceptions import PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from photostore.blobs.buckets import (
    BucketPlacement,
    StorageBucket,
    access_denied,
    ensure_bucket,
    place_buckets,
)
from photostore.blobs.listing import list_by_prefix
from photostore.blobs.local import check_key, is_empty_range
from photostore.blobs.port import BlobInfo
from photostore.errors import (
    BackendUnavailable,
    BlobNotFound,
    ConfigError,
    RangeNotSatisfiable,
)
from photostore.settings import S3Settings

if TYPE_CHECKING:
    from obstore import ObjectMeta

_STATUS_RE = re.compile(r"status code: (\d{3})")
_CODE_RE = re.compile(r"<Code>([^<]{1,100})</Code>")
_ERRORS = (ObstoreError, OSError, ValueError)


@dataclass(frozen=True, slots=True)
class S3ClientOptions:
    """HTTP limits for every request, chosen so that an outage is reported in seconds, not minutes."""

    connect_timeout_s: float = 2.0
    # Longest silence while waiting for response bytes: bounds a hung (not dead) server.
    read_timeout_s: float = 15.0
    request_timeout_s: float = 120.0  # a whole request, including an 8 MiB part on a slow link
    max_retries: int = 2
    retry_timeout_s: float = 5.0  # no new retry starts after this long
    max_concurrent_parts: int = 4


def _check_prefix(prefix: str) -> str:
    """A list prefix may end in ``/`` or in a partial segment, but must otherwise be a safe key."""
    if prefix:
        check_key(prefix.removesuffix("/"))
    return prefix


def _first_line(exc: BaseException) -> str:
    line = (str(exc).splitlines() or [type(exc).__name__])[0]
    return line if len(line) <= 300 else line[:300] + "..."


class S3BlobStore:
    """Buckets on S3-compatible endpoints (SeaweedFS, MinIO, AWS S3), addressed path-style."""

    def __init__(
        self,
        placements: Sequence[BucketPlacement],
        *,
        multipart_threshold_bytes: int = 16 * 1024 * 1024,
        multipart_part_bytes: int = 8 * 1024 * 1024,
        create_buckets: bool = True,
        options: S3ClientOptions | None = None,
    ) -> None:
        if not placements:
            raise ConfigError("S3BlobStore needs at least one bucket")
        self._placements = {p.name: p for p in placements}
        if len(self._placements) != len(placements):
            raise ConfigError(f"duplicate bucket names in {[p.name for p in placements]}")
        self._names = [p.name for p in placements]
        self._threshold = multipart_threshold_bytes
        self._part_bytes = multipart_part_bytes
        self._create = create_buckets
        self._options = options or S3ClientOptions()
        self._stores: dict[str, S3Store] = {}

    @classmethod
    def from_settings(
        cls, s3: S3Settings, bucket_names: Sequence[str], options: S3ClientOptions | None = None
    ) -> S3BlobStore:
        """Place ``bucket_names`` on the configured endpoints (see ``place_buckets``)."""
        return cls(
            place_buckets(s3, bucket_names),
            multipart_threshold_bytes=s3.multipart_threshold_bytes,
            multipart_part_bytes=s3.multipart_part_bytes,
            create_buckets=s3.create_buckets,
            options=options,
        )

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create missing buckets (when allowed) and check that each one answers a listing."""
        self._stores = await self._open(list(self._placements.values()))

    async def add_bucket(self, name: str, *, endpoint: str | None = None) -> None:
        """Start using bucket ``name`` now, on the endpoint named ``endpoint`` (one this store's
        buckets already use; default: the first bucket's), in that endpoint's region.

        The bucket is created when missing and ``create_buckets`` allows it, then checked like at
        start. Idempotent for a bucket already in use. Before ``start()`` it is only recorded.
        """
        if name in self._placements:
            return
        endpoints = {p.endpoint.name: p.endpoint for p in self._placements.values()}
        chosen = endpoints.get(endpoint or self._placements[self._names[0]].endpoint.name)
        if chosen is None:
            raise ConfigError(f"no endpoint {endpoint!r} among this store's endpoints {sorted(endpoints)}")
        # place_buckets checks the name against S3's rules and takes the endpoint's region.
        (placement,) = place_buckets(S3Settings(endpoints=(chosen,)), [name])
        opened = await self._open([placement]) if self._stores else {}
        if name in self._placements:  # a concurrent call added it meanwhile
            return
        self._stores |= opened
        self._placements[name] = placement
        self._names.append(name)

    async def _open(self, placements: Sequence[BucketPlacement]) -> dict[str, S3Store]:
        """Make each bucket exist (creating it when allowed), then check it answers a listing."""
        opts = self._options
        timeout = httpx.Timeout(
            opts.request_timeout_s, connect=opts.connect_timeout_s, read=opts.read_timeout_s
        )
        transport = httpx.AsyncHTTPTransport(retries=opts.max_retries)  # retries failed connects only
        async with httpx.AsyncClient(timeout=timeout, transport=transport) as client:
            for placement in placements:
                await ensure_bucket(client, placement, self._create)
        stores = {p.name: self._make_store(p) for p in placements}
        for placement in placements:
            try:
                await obstore.list_with_delimiter_async(stores[placement.name], "photostore-start-check")
            except _ERRORS as exc:
                _raise_translated(exc, placement, "")
        return stores

    def _make_store(self, placement: BucketPlacement) -> S3Store:
        endpoint, opts = placement.endpoint, self._options
        return S3Store(
            placement.name,
            endpoint=endpoint.url,
            region=placement.region,
            access_key_id=endpoint.access_key_id,
            secret_access_key=endpoint.secret_access_key.get_secret_value(),
            virtual_hosted_style_request=False,
            client_options={
                "allow_http": endpoint.allow_http,
                "connect_timeout": timedelta(seconds=opts.connect_timeout_s),
                "read_timeout": timedelta(seconds=opts.read_timeout_s),
                "timeout": timedelta(seconds=opts.request_timeout_s),
            },
            retry_config={
                "max_retries": opts.max_retries,
                "retry_timeout": timedelta(seconds=opts.retry_timeout_s),
                "backoff": {
                    "init_backoff": timedelta(milliseconds=100),
                    "max_backoff": timedelta(seconds=1),
                    "base": 2,
                },
            },
        )

    async def close(self) -> None:
        self._stores.clear()

    def buckets(self) -> list[str]:
        return list(self._names)

    async def bucket_info(self) -> list[StorageBucket]:
        """Each bucket as the spec's StorageBucket, ``used`` measured now by listing the bucket.

        The listing costs one request per 1000 objects: fine for checks and tests, not for a hot path.
        """
        infos = []
        for name in self._names:
            placement = self._placements[name]
            used = 0
            async for info in self.list(name):
                used += info.size
            infos.append(
                StorageBucket(
                    name=name,
                    region=placement.region,
                    endpoint=placement.endpoint.url,
                    endpoint_name=placement.endpoint.name,
                    capacity=placement.capacity,
                    used=used,
                )
            )
        return infos

    def placement_of(self, bucket: str) -> BucketPlacement:
        """Where ``bucket`` lives (its endpoint and region); ConfigError for an unknown bucket."""
        return self._store(bucket)[1]

    def _store(self, bucket: str) -> tuple[S3Store, BucketPlacement]:
        try:
            return self._stores[bucket], self._placements[bucket]
        except KeyError:
            if bucket in self._placements:
                raise BackendUnavailable("S3BlobStore is not started (call start())") from None
            raise ConfigError(f"unknown bucket {bucket!r}; this store has {self._names}") from None

    # --- writes ---------------------------------------------------------------------------------

    async def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> None:
        """Store ``data`` atomically; returns once the endpoint has acknowledged it.

        Objects larger than ``multipart_threshold_bytes`` go up as a multipart upload, parts sent
        concurrently; the object appears only when the upload completes.
        """
        store, placement = self._store(bucket)
        check_key(key)
        try:
            await obstore.put_async(
                store,
                key,
                data,
                attributes={"Content-Type": content_type} if content_type else None,
                use_multipart=len(data) > self._threshold,
                chunk_size=self._part_bytes,
                max_concurrency=self._options.max_concurrent_parts,
            )
        except _ERRORS as exc:
            _raise_translated(exc, placement, key)

    async def delete(self, bucket: str, key: str) -> None:
        """Remove the object; a missing object is not an error."""
        store, placement = self._store(bucket)
        check_key(key)
        try:
            await obstore.delete_async(store, key)
        except _ERRORS as exc:
            if isinstance(exc, FileNotFoundError) and _s3_code(exc) != "NoSuchBucket":
                return
            _raise_translated(exc, placement, key)

    # --- reads ----------------------------------------------------------------------------------

    async def get(self, bucket: str, key: str) -> bytes:
        store, placement = self._store(bucket)
        check_key(key)
        try:
            result = await obstore.get_async(store, key)
            return (await result.bytes_async()).to_bytes()
        except _ERRORS as exc:
            _raise_translated(exc, placement, key)

    async def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` (inclusive) to ``end`` (exclusive), ``end`` clamped to the size.

        ``start < 0`` or ``end < start`` is a ``BadRequest``; ``start`` at or past the end of the
        object is ``RangeNotSatisfiable``; ``start == end`` gives ``b""`` when the object exists.
        """
        store, placement = self._store(bucket)
        check_key(key)
        if is_empty_range(start, end):
            await self.head(bucket, key)  # BlobNotFound when missing
            return b""
        try:
            data = await obstore.get_range_async(store, key, start=start, end=end)
            return data.to_bytes()
        except _ERRORS as exc:
            if _status(exc) == 416:
                raise RangeNotSatisfiable(f"range [{start}, {end}) starts past the end of {key!r}") from exc
            _raise_translated(exc, placement, key)

    async def head(self, bucket: str, key: str) -> BlobInfo:
        store, placement = self._store(bucket)
        check_key(key)
        try:
            meta = await obstore.head_async(store, key)
        except _ERRORS as exc:
            _raise_translated(exc, placement, key)
        return _info(meta)

    async def list(self, bucket: str, prefix: str = "") -> AsyncIterator[BlobInfo]:
        """Objects whose key starts with ``prefix`` (plain string match), in key order."""
        store, placement = self._store(bucket)
        _check_prefix(prefix)

        def translate(exc: Exception) -> NoReturn:
            _raise_translated(exc, placement, prefix)

        async for meta in list_by_prefix(store, prefix, translate):
            if not _is_folder_marker(meta):
                yield _info(meta)


# --- error translation ------------------------------------------------------------------------------


def _status(exc: BaseException) -> int | None:
    """The HTTP status obstore's message reports, if any (obstore has no attribute for it)."""
    match = _STATUS_RE.search(str(exc))
    return int(match.group(1)) if match else None


def _s3_code(exc: BaseException) -> str | None:
    match = _CODE_RE.search(str(exc))
    return match.group(1) if match else None


def _raise_translated(exc: BaseException, placement: BucketPlacement, key: str) -> NoReturn:
    where = placement.describe() + (f", key {key!r}" if key else "")
    code = _s3_code(exc)
    if isinstance(exc, FileNotFoundError):
        if code == "NoSuchBucket":
            raise BackendUnavailable(f"{where}: the bucket does not exist (deleted after start?)") from exc
        raise BlobNotFound(f"no object {key!r} in bucket {placement.name!r}") from exc
    status = _status(exc)
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError) or status in (401, 403):
        raise access_denied(where, code or f"HTTP {status}") from exc
    raise BackendUnavailable(f"{where}: {_first_line(exc)}") from exc


def _is_folder_marker(meta: ObjectMeta) -> bool:
    """SeaweedFS lists a folder whose objects were all deleted as a zero-byte entry of the folder's
    name with an empty ETag. It is no object (HEAD finds none), and every real one, even an empty
    one, has an ETag."""
    return meta["size"] == 0 and not (meta.get("e_tag") or "").strip('"')


def _info(meta: ObjectMeta) -> BlobInfo:
    return BlobInfo(key=meta["path"], size=meta["size"], last_modified=meta["last_modified"])
