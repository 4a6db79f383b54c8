"""Sampled SHA-256 checks of objects read from a bucket, before their bytes are served."""

from __future__ import annotations

import random
from collections.abc import Callable

from photostore.blobs.checksum import sha256_hex
from photostore.blobs.paths import parse_object_key
from photostore.errors import ObjectCorrupt
from photostore.integrity.quarantine import Quarantine


class ReadVerifier:
    """Checks ``fraction`` of the reads handed to it; a mismatch is quarantined and raised."""

    def __init__(
        self, quarantine: Quarantine, fraction: float, chance: Callable[[], float] = random.random
    ) -> None:
        self._quarantine = quarantine
        self._fraction = fraction
        self._chance = chance
        self.checked = 0
        self.corrupt = 0

    async def check(self, bucket: str, key: str, data: bytes, expected_sha256: str) -> None:
        """Return if ``data`` is not sampled or matches; else quarantine it and raise ObjectCorrupt."""
        if self._fraction <= 0 or self._chance() >= self._fraction:
            return
        self.checked += 1
        found = await sha256_hex(data)
        if found == expected_sha256:
            return
        self.corrupt += 1
        parsed = parse_object_key(key)
        if parsed is not None:
            photo_id, name = parsed
            await self._quarantine.isolate(photo_id, name, bucket, key, data, expected_sha256, found, "read")
        raise ObjectCorrupt(
            "the stored bytes failed their SHA-256 check; they were quarantined and reported "
            "(`photostore audit` lists them) and will not be served"
        )

    async def raise_if_quarantined(self, bucket: str, key: str) -> None:
        """For a read that found no object: ObjectCorrupt when the quarantine took it."""
        if await self._quarantine.holds(bucket, key):
            raise ObjectCorrupt(
                "this object failed its SHA-256 check earlier and was quarantined; it will not be served"
            )
