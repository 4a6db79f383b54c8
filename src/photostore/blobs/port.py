"""The BlobStore port.

Guarantees:
- ``put`` returns only when the object is durable (on disk, or acknowledged by the object store),
  and is atomic: a reader sees the whole old object, the whole new one, or none, never a part.
- ``get``/``get_range``/``head`` raise ``BlobNotFound`` for a missing object.
- ``delete`` is idempotent: deleting a missing object is not an error.
- Backend failures surface as ``BackendUnavailable``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    last_modified: datetime | None = None


class BlobStore(Protocol):
    async def start(self) -> None:
        """Create or check the buckets."""

    async def close(self) -> None: ...

    def buckets(self) -> list[str]: ...

    async def add_bucket(self, name: str) -> None:
        """Start using bucket ``name`` while running (``buckets add``): created where it lives if
        missing, then usable by every method. Idempotent: a bucket already in use is left as it is."""

    async def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> None: ...

    async def get(self, bucket: str, key: str) -> bytes: ...

    async def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` (inclusive) to ``end`` (exclusive)."""

    async def head(self, bucket: str, key: str) -> BlobInfo: ...

    async def delete(self, bucket: str, key: str) -> None: ...

    def list(self, bucket: str, prefix: str = "") -> AsyncIterator[BlobInfo]: ...
