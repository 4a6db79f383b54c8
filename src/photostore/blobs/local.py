"""The embedded BlobStore: one folder per bucket, through obstore's ``LocalStore``.

Guarantees (the port's, made concrete):
- ``put`` is atomic: obstore writes a staging file in the target folder and renames it over the key,
  so a reader sees the whole old object or the whole new one.
- ``put`` is durable when it returns (with ``fsync=True``): the file, its folder, and every folder on
  the way up that this process has not yet made durable are fsynced before ``put`` returns.
- Keys are relative, ``/``-separated paths of ``[A-Za-z0-9._=+-]`` segments; ``.``, ``..``, empty
  segments, absolute keys and anything else are refused with ``BadRequest`` before touching the disk,
  so no key reaches outside its bucket's folder.
- ``list(bucket, prefix)`` matches keys by plain string prefix, as S3 does (``photos/2026/11/2``
  matches ``photos/2026/11/28/...``), and yields keys in lexicographic order, as S3 does.
- obstore's errors are translated: a missing object is ``BlobNotFound``, a range starting at or past
  the end is ``RangeNotSatisfiable``, an unknown bucket is ``ConfigError``, anything else is
  ``BackendUnavailable``.
- ``add_bucket`` creates (and makes durable) a new bucket's folder while running.

A local filesystem cannot hold both ``a/b`` and ``a/b/c`` (a path is a file or a folder); such a put
fails with ``BackendUnavailable``. ``paths.py`` lays out keys so this never happens.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import LocalStore

from photostore.blobs.listing import list_by_prefix
from photostore.blobs.port import BlobInfo
from photostore.durable import fsync_path
from photostore.errors import (
    BackendUnavailable,
    BadRequest,
    BlobNotFound,
    ConfigError,
    RangeNotSatisfiable,
)

if TYPE_CHECKING:
    from obstore import ObjectMeta

MAX_KEY_LENGTH = 1024
# A segment of safe characters that is not "." or ".." (the lookahead refuses those two).
_SEGMENT = r"(?!\.\.?(?:/|$))[A-Za-z0-9._=+-]+"
_KEY_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe object key, else raise ``BadRequest`` saying why."""
    if not key or len(key) > MAX_KEY_LENGTH or _KEY_RE.fullmatch(key) is None:
        raise BadRequest(
            f"invalid object key {key[:100]!r}: use 1-{MAX_KEY_LENGTH} characters of relative, "
            "'/'-separated segments of [A-Za-z0-9._=+-], without '.' or '..' segments"
        )
    return key


def is_empty_range(start: int, end: int) -> bool:
    """Whether ``[start, end)`` is empty; ``BadRequest`` when it is not a range at all."""
    if start < 0 or end < start:
        raise BadRequest(f"invalid byte range [{start}, {end})")
    return start == end


def _check_prefix(prefix: str) -> str:
    """A list prefix may end in ``/`` or in a partial segment, but must otherwise be a safe key."""
    if prefix == "":
        return prefix
    check_key(prefix.removesuffix("/"))
    return prefix


def _raise_translated(exc: Exception, bucket: str, key: str) -> NoReturn:
    if isinstance(exc, FileNotFoundError):
        raise BlobNotFound(f"no object {key!r} in bucket {bucket!r}") from exc
    raise BackendUnavailable(f"local bucket {bucket!r}, key {key!r}: {str(exc).splitlines()[0]}") from exc


def _check_bucket_name(name: str) -> None:
    if _BUCKET_RE.fullmatch(name) is None:
        raise ConfigError(f"invalid bucket name {name!r}: use [a-z0-9.-], at most 63 characters")


class LocalBlobStore:
    """Buckets as folders under ``root``: ``root/<bucket>/<key>``."""

    def __init__(self, root: Path, bucket_names: Sequence[str], fsync: bool = True) -> None:
        if not bucket_names:
            raise ConfigError("LocalBlobStore needs at least one bucket")
        for name in bucket_names:
            _check_bucket_name(name)
        if len(set(bucket_names)) != len(bucket_names):
            raise ConfigError(f"duplicate bucket names in {list(bucket_names)}")
        self._root = Path(root).absolute()
        self._names = list(bucket_names)
        self._fsync = fsync
        self._stores: dict[str, LocalStore] = {}
        # Folders whose own entry is known durable (their parent was fsynced after they appeared):
        # a put into such a folder fsyncs only the file and that folder.
        self._durable_dirs: set[str] = set()

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the bucket folders (and ``root``) and make their entries durable."""
        await asyncio.to_thread(self._start_sync)

    def _start_sync(self) -> None:
        self._open_buckets_sync(self._names)

    def _open_buckets_sync(self, names: Sequence[str]) -> None:
        """Create the folders of ``names`` (and ``root``) if missing and make their entries durable."""
        created = _missing_ancestors(self._root)
        stores = {name: LocalStore(prefix=self._root / name, mkdir=True) for name in names}
        if self._fsync:
            for name in names:
                fsync_path(str(self._root / name))
            fsync_path(str(self._root))  # holds the bucket folders' entries
            for folder in created:
                fsync_path(str(folder.parent))
        self._durable_dirs.update(str(self._root / name) for name in names)
        self._stores.update(stores)

    async def close(self) -> None:
        self._stores.clear()

    def buckets(self) -> list[str]:
        return list(self._names)

    async def add_bucket(self, name: str) -> None:
        """Start using bucket ``name`` now: its folder is created and made durable if missing.

        Idempotent. Before ``start()`` the name is only recorded; ``start()`` creates the folder.
        """
        _check_bucket_name(name)
        if name in self._names and (name in self._stores or not self._stores):
            return
        if self._stores:  # started: open it now, so it is usable as soon as it is listed
            await asyncio.to_thread(self._open_buckets_sync, [name])
        if name not in self._names:
            self._names.append(name)

    def _store(self, bucket: str) -> LocalStore:
        try:
            return self._stores[bucket]
        except KeyError:
            if bucket in self._names:
                raise BackendUnavailable("LocalBlobStore is not started (call start())") from None
            raise ConfigError(f"unknown bucket {bucket!r}; this store has {self._names}") from None

    # --- writes ---------------------------------------------------------------------------------

    async def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> None:
        """Write ``data`` atomically; durable on return when ``fsync`` is on.

        ``content_type`` is not stored: a folder keeps bytes only (the metadata row has the type).
        """
        store = self._store(bucket)
        check_key(key)
        try:
            await obstore.put_async(store, key, data)
        except (ObstoreError, OSError, ValueError) as exc:
            _raise_translated(exc, bucket, key)
        if self._fsync:
            try:
                await asyncio.to_thread(self._make_durable, bucket, key)
            except OSError as exc:
                raise BackendUnavailable(f"fsync of {bucket}/{key} failed: {exc}") from exc

    def _make_durable(self, bucket: str, key: str) -> None:
        bucket_dir = str(self._root / bucket)
        path = f"{bucket_dir}/{key}"
        fsync_path(path)
        # fsync the folder holding the new entry, then each newly seen folder's parent, up to the
        # first folder already known durable (the bucket folder at the latest).
        folder = os.path.dirname(path)
        newly_durable = []
        while True:
            fsync_path(folder)
            if folder in self._durable_dirs or folder == bucket_dir:
                break
            newly_durable.append(folder)
            folder = os.path.dirname(folder)
        # Recorded only after the whole chain is synced, so a failed fsync is retried next time.
        self._durable_dirs.update(newly_durable)

    async def delete(self, bucket: str, key: str) -> None:
        """Remove the object; a missing object is not an error. Empty folders are kept."""
        store = self._store(bucket)
        check_key(key)
        try:
            await obstore.delete_async(store, key)
        except FileNotFoundError:
            return
        except (ObstoreError, OSError, ValueError) as exc:
            _raise_translated(exc, bucket, key)

    # --- reads ----------------------------------------------------------------------------------

    async def get(self, bucket: str, key: str) -> bytes:
        store = self._store(bucket)
        check_key(key)
        try:
            result = await obstore.get_async(store, key)
            return (await result.bytes_async()).to_bytes()
        except (ObstoreError, OSError, ValueError) as exc:
            _raise_translated(exc, bucket, key)

    async def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` (inclusive) to ``end`` (exclusive), ``end`` clamped to the size.

        ``start < 0`` or ``end < start`` is a ``BadRequest``; ``start`` at or past the end of a
        non-empty object is ``RangeNotSatisfiable``; ``start == end`` gives ``b""`` when the object
        exists.
        """
        store = self._store(bucket)
        check_key(key)
        if is_empty_range(start, end):
            await self.head(bucket, key)  # BlobNotFound when missing
            return b""
        try:
            data = await obstore.get_range_async(store, key, start=start, end=end)
            return data.to_bytes()
        except FileNotFoundError as exc:
            _raise_translated(exc, bucket, key)
        except (ObstoreError, OSError, ValueError) as exc:
            # obstore reports "start past the end" as a generic error: ask for the size to tell.
            size = (await self.head(bucket, key)).size
            if start >= size:
                raise RangeNotSatisfiable(
                    f"range [{start}, {end}) starts past the end of {key!r} ({size} bytes)"
                ) from exc
            _raise_translated(exc, bucket, key)

    async def head(self, bucket: str, key: str) -> BlobInfo:
        store = self._store(bucket)
        check_key(key)
        try:
            meta = await obstore.head_async(store, key)
        except (ObstoreError, OSError, ValueError) as exc:
            _raise_translated(exc, bucket, key)
        return _info(meta)

    async def list(self, bucket: str, prefix: str = "") -> AsyncIterator[BlobInfo]:
        """Objects whose key starts with ``prefix`` (plain string match), in key order.

        Streams: one folder's listing is held at a time, never the whole bucket's.
        """
        store = self._store(bucket)
        _check_prefix(prefix)

        def translate(exc: Exception) -> NoReturn:
            _raise_translated(exc, bucket, prefix)

        # No folder yet under the prefix means no objects there, not an error.
        async for meta in list_by_prefix(store, prefix, translate, missing_folder_is_empty=True):
            yield _info(meta)


def _info(meta: ObjectMeta) -> BlobInfo:
    return BlobInfo(key=meta["path"], size=meta["size"], last_modified=meta["last_modified"])


def _missing_ancestors(path: Path) -> list[Path]:
    """Folders from ``path`` upwards that do not exist yet (deepest first)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    return missing
