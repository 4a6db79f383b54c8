"""The SHA-256 of object bytes, hashed off the event loop when large."""

from __future__ import annotations

import asyncio
import hashlib

_HASH_IN_THREAD_BYTES = 1 << 20


async def sha256_hex(data: bytes) -> str:
    if len(data) >= _HASH_IN_THREAD_BYTES:
        return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    return hashlib.sha256(data).hexdigest()
