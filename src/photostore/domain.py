"""The records that cross the ports: plain, immutable, free of any driver type."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from typing_extensions import dataclass_transform

JsonDict = dict[str, Any]
_Record = TypeVar("_Record")


@dataclass_transform(frozen_default=True)
def read_record(cls: type[_Record]) -> type[_Record]:
    """A record read in bulk from a shard: frozen to the type checker, plain at run time.

    mypy treats it as a frozen dataclass, so no code assigns to one. At run time it is a plain
    slotted dataclass: a frozen one builds 8x slower (one ``object.__setattr__`` per field), and a
    timeline page builds 101 photos. Not hashable (a frozen Photo was not either: its EXIF is a dict).
    """
    return dataclass(slots=True)(cls)


class PhotoStatus(enum.StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    DELETED = "deleted"


class Scope(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: only the SHA-256 of its secret is kept."""

    key_id: str
    user_id: uuid.UUID
    secret_sha256: bytes
    scopes: frozenset[Scope]
    created_at: datetime
    revoked_at: datetime | None = None


@read_record
class Photo:
    id: uuid.UUID
    owner_id: uuid.UUID
    filename: str
    bucket: str
    storage_path: str  # object key inside the bucket: photos/YYYY/MM/DD/<id>
    sha256: str  # hex
    bytes: int
    format: str  # Pillow format name: JPEG, PNG, ...
    content_type: str
    width: int
    height: int
    status: PhotoStatus
    created_at: datetime
    updated_at: datetime
    taken_at: datetime | None = None
    exif: JsonDict | None = None  # full EXIF summary, GPS included (owner only)
    placeholder: str | None = None  # blurhash
    deleted_at: datetime | None = None
    idempotency_key: str | None = None  # the client's Idempotency-Key of the upload, if sent
    last_accessed_at: datetime | None = None  # the original's last read (batched); None: never read


@read_record
class Variant:
    photo_id: uuid.UUID
    name: str
    bucket: str
    storage_path: str
    format: str
    content_type: str
    width: int
    height: int
    bytes: int
    sha256: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to publish, written to the shard's outbox in the same transaction as its cause."""

    topic: str
    key: str
    payload: JsonDict
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    seq: int  # per-shard, increasing
    shard_id: int
    event: NewEvent
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PhotoChanges:
    """Columns a worker sets on a photo; ``None`` leaves a column as it is."""

    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None
    exif: JsonDict | None = None
    placeholder: str | None = None
    status: PhotoStatus | None = None


class ApplyResult(enum.Enum):
    APPLIED = "applied"
    ALREADY_PROCESSED = "already_processed"  # the event was handled before: nothing changed
    PHOTO_GONE = "photo_gone"  # the photo is deleted or unknown: nothing changed


@dataclass(frozen=True, slots=True)
class AccessBand:
    """Live, ready originals of one shard grouped by last access (upload time if never read)."""

    band: int  # 0: at or after edges[0]; i: before edges[i-1], at or after edges[i]; len(edges): older
    cold: bool  # held in a cold-tier bucket now
    photos: int
    bytes: int


@dataclass(frozen=True, slots=True)
class ShardStats:
    shard_id: int
    users: int
    photos: int
    bytes: int
    pending_outbox: int


@dataclass(frozen=True, slots=True)
class ResumableUpload:
    """A tus upload in progress: its bytes are in the upload staging area until it completes.

    ``offset`` counts the bytes stored for good; ``storage`` is the staging area's own state (the
    multipart upload and its parts). A completed upload names the photo it became.
    """

    id: uuid.UUID
    owner_id: uuid.UUID
    length: int
    offset: int
    metadata: str  # the Upload-Metadata header as the client sent it ("" when none)
    filename: str | None
    created_at: datetime
    expires_at: datetime
    storage: JsonDict = field(default_factory=dict)
    photo_id: uuid.UUID | None = None
    lease_token: str | None = None
    lease_until: datetime | None = None
