"""Listing objects by plain string prefix, in key order, for every BlobStore backed by obstore.

It walks folders with delimiter listings because obstore matches whole segments only (a listing
of ``photos/2026/11/2`` would miss ``photos/2026/11/28/...``), and some S3 servers (SeaweedFS) list
a flat prefix in directory-walk order rather than key order. Sorting each folder's objects by key
and its subfolders by key + ``/`` yields plain lexicographic order (S3's) whatever order the store
used, and only one folder's listing is held in memory at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, NoReturn

import obstore
from obstore.exceptions import BaseError as ObstoreError

if TYPE_CHECKING:
    from obstore import ObjectMeta
    from obstore.store import ObjectStore

_ERRORS = (ObstoreError, OSError, ValueError)


async def list_by_prefix(
    store: ObjectStore,
    prefix: str,
    translate: Callable[[Exception], NoReturn],
    *,
    missing_folder_is_empty: bool = False,
) -> AsyncIterator[ObjectMeta]:
    """Objects of ``store`` whose key starts with ``prefix`` (plain string match), in key order.

    A failed listing goes to ``translate``, which raises the store's own error. With
    ``missing_folder_is_empty``, a folder that does not exist (``FileNotFoundError``) lists as empty.
    """
    async for meta in _walk(store, prefix.rpartition("/")[0], prefix, translate, missing_folder_is_empty):
        yield meta


async def _walk(
    store: ObjectStore,
    folder: str,
    prefix: str,
    translate: Callable[[Exception], NoReturn],
    missing_folder_is_empty: bool,
) -> AsyncIterator[ObjectMeta]:
    try:
        listing = await obstore.list_with_delimiter_async(store, folder or None)
    except _ERRORS as exc:
        if missing_folder_is_empty and isinstance(exc, FileNotFoundError):
            return
        translate(exc)
    entries: list[tuple[str, ObjectMeta | None]] = [(m["path"], m) for m in listing["objects"]]
    entries.extend((f"{sub}/", None) for sub in listing["common_prefixes"])
    entries.sort(key=lambda entry: entry[0])
    for name, meta in entries:
        if meta is not None:
            if name.startswith(prefix):
                yield meta
        elif name.startswith(prefix) or prefix.startswith(name):
            async for inner in _walk(store, name[:-1], prefix, translate, missing_folder_is_empty):
                yield inner
