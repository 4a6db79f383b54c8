"""Where each object bucket lives, and making sure it exists there.

- ``place_buckets`` turns ``blobs.s3`` settings plus the placement's bucket names into one
  ``BucketPlacement`` per bucket (the spec's ``StorageBucket`` without ``used``), or raises
  ``ConfigError`` naming what does not match.
- ``ensure_bucket`` checks one bucket with a signed HEAD and, when allowed, creates it with a signed
  CreateBucket. It is idempotent and safe to race: "already owned by you" counts as success.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from photostore.blobs import sigv4
from photostore.errors import BackendUnavailable, ConfigError
from photostore.settings import S3EndpointSettings, S3Settings

# S3's rules for new buckets: 3-63 characters of [a-z0-9.-], starting and ending with a letter or digit.
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CODE_RE = re.compile(r"<Code>([^<]{1,100})</Code>")


@dataclass(frozen=True, slots=True)
class StorageBucket:
    """The spec's StorageBucket: ``capacity`` 0 means unbounded; ``used`` is bytes held now."""

    name: str
    region: str
    endpoint: str  # the endpoint's URL
    endpoint_name: str
    capacity: int
    used: int


@dataclass(frozen=True, slots=True)
class BucketPlacement:
    """One bucket and the endpoint that holds it."""

    name: str
    region: str
    capacity: int
    endpoint: S3EndpointSettings

    @property
    def url(self) -> str:
        """Path-style URL of the bucket."""
        return f"{self.endpoint.url.rstrip('/')}/{self.name}"

    def describe(self) -> str:
        return f"bucket {self.name!r} on S3 endpoint {self.endpoint.name!r} ({self.endpoint.url})"


def place_buckets(s3: S3Settings, bucket_names: Sequence[str]) -> list[BucketPlacement]:
    """One placement per name, in ``bucket_names`` order.

    With no ``s3.buckets`` every name lives on the first endpoint; otherwise the configured bucket
    names must be exactly ``bucket_names`` and each must name a configured endpoint.
    """
    if not s3.endpoints:
        raise ConfigError("blobs.s3.endpoints is empty: the s3 backend needs at least one endpoint")
    endpoints = {e.name: e for e in s3.endpoints}
    if len(endpoints) != len(s3.endpoints):
        raise ConfigError(f"duplicate endpoint names in blobs.s3.endpoints: {[e.name for e in s3.endpoints]}")
    _check_names(bucket_names)
    if not s3.buckets:
        first = s3.endpoints[0]
        return [BucketPlacement(name, first.region, 0, first) for name in bucket_names]

    configured = {b.name: b for b in s3.buckets}
    if len(configured) != len(s3.buckets):
        raise ConfigError(f"duplicate bucket names in blobs.s3.buckets: {[b.name for b in s3.buckets]}")
    missing = [n for n in bucket_names if n not in configured]
    extra = [n for n in configured if n not in set(bucket_names)]
    if missing or extra:
        raise ConfigError(
            "blobs.s3.buckets does not match the placement's buckets "
            f"{list(bucket_names)}: missing {missing}, not in the placement {extra}"
        )
    placements = []
    for name in bucket_names:
        bucket = configured[name]
        endpoint = endpoints.get(bucket.endpoint)
        if endpoint is None:
            raise ConfigError(
                f"blobs.s3.buckets[{name}] names endpoint {bucket.endpoint!r}; "
                f"blobs.s3.endpoints has {sorted(endpoints)}"
            )
        placements.append(
            BucketPlacement(name, bucket.region or endpoint.region, bucket.capacity_bytes, endpoint)
        )
    return placements


def _check_names(bucket_names: Sequence[str]) -> None:
    if not bucket_names:
        raise ConfigError("the s3 backend needs at least one bucket")
    if len(set(bucket_names)) != len(bucket_names):
        raise ConfigError(f"duplicate bucket names in {list(bucket_names)}")
    for name in bucket_names:
        if _BUCKET_RE.fullmatch(name) is None:
            raise ConfigError(f"invalid S3 bucket name {name!r}: use 3-63 characters of [a-z0-9.-]")


# --- checking and creating -------------------------------------------------------------------------


def access_denied(where: str, detail: str) -> BackendUnavailable:
    """The error for 401/403 answers: the fix is almost always the credentials."""
    return BackendUnavailable(
        f"{where}: access denied ({detail}); check credentials: the endpoint's access_key_id and "
        "secret_access_key in blobs.s3.endpoints, and that this identity may read and write the bucket"
    )


def _signed(placement: BucketPlacement, method: str, body: bytes = b"") -> dict[str, str]:
    endpoint = placement.endpoint
    return sigv4.sign(
        method,
        placement.url,
        region=placement.region,
        access_key_id=endpoint.access_key_id,
        secret_access_key=endpoint.secret_access_key.get_secret_value(),
        body=body,
    )


def _create_body(region: str) -> bytes:
    # us-east-1 is S3's default region and must not be named in a CreateBucket body.
    if region == "us-east-1":
        return b""
    return (
        '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
    ).encode()


async def _request(
    client: httpx.AsyncClient, placement: BucketPlacement, method: str, body: bytes = b""
) -> httpx.Response:
    try:
        return await client.request(
            method, placement.url, headers=_signed(placement, method, body), content=body
        )
    except httpx.TransportError as exc:  # refused, reset, timed out
        raise BackendUnavailable(
            f"{placement.describe()}: {method} failed: {type(exc).__name__}: {exc}"
        ) from exc


def s3_error_code(response: httpx.Response) -> str | None:
    """The ``<Code>`` of an S3 error body (SeaweedFS and AWS), or None."""
    found = _CODE_RE.search(response.text)
    return found.group(1) if found else None


def s3_failure(placement: BucketPlacement, action: str, response: httpx.Response) -> BackendUnavailable:
    """The error to raise for a failed S3 call: access denied names the credentials to check."""
    code = _CODE_RE.search(response.text)
    detail = f"HTTP {response.status_code}" + (f" {code.group(1)}" if code else "")
    if response.status_code in (401, 403):
        return access_denied(f"{placement.describe()}: {action}", detail)
    return BackendUnavailable(f"{placement.describe()}: {action} failed: {detail}")


async def ensure_bucket(client: httpx.AsyncClient, placement: BucketPlacement, create: bool) -> bool:
    """Make sure the bucket exists; return True when this call created it.

    Raises ``ConfigError`` when the bucket is missing and ``create`` is false, when it is in another
    region, or when another account owns the name; ``BackendUnavailable`` for everything else.
    """
    head = await _request(client, placement, "HEAD")
    if head.status_code == 200:
        return False
    region = head.headers.get("x-amz-bucket-region")
    if head.status_code in (301, 400) and region and region != placement.region:
        raise ConfigError(
            f"{placement.describe()} is in region {region!r}, settings say {placement.region!r}"
        )
    if head.status_code != 404:
        raise s3_failure(placement, "HEAD bucket", head)
    if not create:
        raise ConfigError(f"{placement.describe()} does not exist and blobs.s3.create_buckets is false")

    made = await _request(client, placement, "PUT", _create_body(placement.region))
    if made.status_code == 200:
        return True
    code = _CODE_RE.search(made.text)
    if made.status_code == 409 and code and code.group(1) == "BucketAlreadyOwnedByYou":
        return False  # another starter created it between our HEAD and PUT
    if made.status_code == 409 and code and code.group(1) == "BucketAlreadyExists":
        raise ConfigError(f"{placement.describe()}: the name belongs to another account; choose another")
    raise s3_failure(placement, "CreateBucket", made)
