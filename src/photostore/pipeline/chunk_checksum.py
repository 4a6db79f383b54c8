"""The tus checksum extension: ``Upload-Checksum: <algorithm> <base64 digest>`` of one PATCH body."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from photostore.errors import BadRequest

# tus requires sha1; the others cost nothing more to offer.
ALGORITHMS = ("md5", "sha1", "sha256", "sha512")


@dataclass
class ChunkChecksum:
    algorithm: str
    expected: bytes
    _hash: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._hash = hashlib.new(self.algorithm)

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def matches(self) -> bool:
        return hmac.compare_digest(self._hash.digest(), self.expected)


def parse_checksum(header: str | None) -> ChunkChecksum | None:
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in ALGORITHMS:
        raise BadRequest(f"Upload-Checksum algorithm {algorithm!r} is not supported; use one of {ALGORITHMS}")
    try:
        expected = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise BadRequest("Upload-Checksum must be '<algorithm> <base64 digest>'") from None
    checksum = ChunkChecksum(algorithm, expected)
    if len(expected) != checksum._hash.digest_size:
        raise BadRequest(f"Upload-Checksum: a {algorithm} digest has {checksum._hash.digest_size} bytes")
    return checksum
