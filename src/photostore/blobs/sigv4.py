"""Just enough AWS Signature Version 4 to sign a few bucket-level S3 requests.

obstore signs every object request itself but cannot create buckets, and botocore is not a
dependency, so ``start()`` signs its HEAD-bucket and CreateBucket requests with this module.

Guarantees and limits:
- ``sign`` returns the headers to send (``x-amz-date``, ``x-amz-content-sha256``, ``authorization``,
  plus any ``extra`` headers, all of them signed); ``host`` is signed but left to the HTTP client.
- The body is hashed into the signature (no ``UNSIGNED-PAYLOAD``), so a tampered body is refused.
- Path-style URLs without a query string only: a URL with a query raises ``ValueError`` rather than
  being signed wrongly.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret_access_key: str, day: str, region: str, service: str = SERVICE) -> bytes:
    """The key derived for one day, region and service (AWS's four-step HMAC chain)."""
    key = _hmac(f"AWS4{secret_access_key}".encode(), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def sign(
    method: str,
    url: str,
    *,
    region: str,
    access_key_id: str,
    secret_access_key: str,
    body: bytes = b"",
    extra: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """Headers that authenticate ``method url`` with ``body`` for S3 in ``region``."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(f"sigv4.sign signs path-only URLs, got {url!r}")
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {k.lower(): " ".join(v.split()) for k, v in (extra or {}).items()}
    headers.update({"host": parts.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": stamp})
    names = sorted(headers)
    signed_names = ";".join(names)
    canonical = "\n".join(
        [
            method.upper(),
            # S3 encodes each path segment once (unlike other services, which encode twice).
            quote(parts.path or "/", safe="/-_.~"),
            "",  # no query string
            "".join(f"{name}:{headers[name]}\n" for name in names),
            signed_names,
            payload_hash,
        ]
    )
    scope = f"{day}/{region}/{SERVICE}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(
        signing_key(secret_access_key, day, region), to_sign.encode(), hashlib.sha256
    ).hexdigest()
    headers["authorization"] = (
        f"{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={signed_names}, Signature={signature}"
    )
    del headers["host"]  # the HTTP client sends it, from the same URL
    return headers
