"""Just enough AWS Signature Version 4 to sign a few bucket-level S3 requests.

obstore signs every object request itself but can neither create buckets nor keep a multipart upload
open across requests, and botocore is not a dependency: ``start()`` signs its HEAD-bucket and
CreateBucket requests with this module, and ``blobs/s3_multipart.py`` the multipart upload calls.

Guarantees and limits:
- ``sign`` returns the headers to send (``x-amz-date``, ``x-amz-content-sha256``, ``authorization``,
  plus any ``extra`` headers, all of them signed); ``host`` is signed but left to the HTTP client.
- The body is hashed into the signature (no ``UNSIGNED-PAYLOAD``), so a tampered body is refused.
- Path-style URLs; query parameters go in ``query`` (never in the URL, which raises ``ValueError``
  rather than being signed wrongly), and the request must send them as ``canonical_query(query)``.
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


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(query: Mapping[str, str] | None) -> str:
    """The query string as signed (sorted, each name and value encoded once); send it as is."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted((query or {}).items()))


def sign(
    method: str,
    url: str,
    *,
    query: Mapping[str, str] | None = None,
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
        raise ValueError(f"sigv4.sign takes the query in `query`, not in the URL: {url!r}")
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
            canonical_query(query),
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
