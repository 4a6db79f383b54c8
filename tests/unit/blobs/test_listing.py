"""Listing by plain string prefix, in key order, whatever order the store lists a folder in."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import obstore
import pytest
from obstore.store import LocalStore, MemoryStore

from photostore.blobs.listing import list_by_prefix

# '-' and '.' sort before '/', '0' after it: a folder-by-folder listing returns "a/" before "a-b".
KEYS = ["a/b", "a-b", "a0", "a.b/c", "photos/2026/11/2/y", "photos/2026/11/28/x", "photos/2026/11/3"]


class Refused(Exception):
    """What the test's ``translate`` raises, to see that a failed listing goes through it."""


def refuse(exc: Exception) -> NoReturn:
    raise Refused(str(exc)) from exc


async def listed(store: LocalStore | MemoryStore, prefix: str) -> list[str]:
    return [meta["path"] async for meta in list_by_prefix(store, prefix, refuse)]


@pytest.fixture
async def store() -> MemoryStore:
    memory = MemoryStore()
    for key in KEYS:
        await obstore.put_async(memory, key, b"x")
    return memory


async def test_everything_is_listed_in_plain_key_order(store: MemoryStore) -> None:
    assert await listed(store, "") == sorted(KEYS)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("a", ["a-b", "a.b/c", "a/b", "a0"]),
        ("a/", ["a/b"]),
        ("photos/2026/11/2", ["photos/2026/11/2/y", "photos/2026/11/28/x"]),  # a partial segment
        ("photos/2026/11/28/x", ["photos/2026/11/28/x"]),
        ("photos/2026/12/", []),
    ],
)
async def test_a_prefix_matches_as_a_string(store: MemoryStore, prefix: str, expected: list[str]) -> None:
    assert await listed(store, prefix) == expected


async def test_a_failed_listing_is_translated(tmp_path: Path) -> None:
    local = LocalStore(prefix=tmp_path)
    await obstore.put_async(local, "a", b"x")
    with pytest.raises(Refused):
        await listed(local, "a/b/")  # "a" is a file, so the folder "a/b" cannot be walked
