"""The tables of one metadata shard: the same schema on SQLite and PostgreSQL.

Every shard holds the complete schema; which rows it holds is decided by the shard map.
Guarantees the schema itself enforces (on both engines):

- ``uq_photos_live_sha256``: a user has at most one *live* photo per SHA-256 (a partial unique
  index, ``WHERE deleted_at IS NULL``). This is the upload dedup; a deleted photo frees its hash.
- ``outbox.seq`` increases per shard and is never reused (``AUTOINCREMENT`` on SQLite, a sequence
  on PostgreSQL).
- Datetimes go in and come out timezone-aware in UTC (:class:`UtcDateTime`), also on SQLite, which
  has no timezone-aware type of its own. Naive datetimes are refused.

The migrations in ``migrations/versions`` create exactly this schema; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB

FILENAME_MAX = 255  # the spec's VARCHAR(255); checked in Python so SQLite refuses it too
IDEMPOTENCY_KEY_MAX = 200
STORAGE_PATH_MAX = 500  # the spec's VARCHAR(500)

# Named constraints so migrations and both engines agree on the names.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that binds only aware datetimes and always reads back aware UTC.

    SQLite stores the UTC wall time as text and returns it naive: the UTC zone is re-attached on
    read. PostgreSQL returns aware values already; they are normalised to UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: photostore stores only timezone-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - the drivers always give datetimes
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> JSON:
    # JSONB on PostgreSQL (compact, indexable); SQL NULL (not JSON 'null') for None on both.
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


metadata = MetaData(naming_convention=NAMING_CONVENTION)

users = Table(
    "users",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # The id's placement key, stored so a rebalance finds a key range's users by index (ids lead
    # with their time, not their key). Nullable only for rows written before migration 0003.
    Column("placement_key", BigInteger(), nullable=True),
)
Index("ix_users_placement_key", users.c.placement_key)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("user_id", Uuid(), ForeignKey("users.id"), nullable=False),
    Column("secret_sha256", LargeBinary(32), nullable=False),
    Column("scopes", Text(), nullable=False),  # space-separated, sorted
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

photos = Table(
    "photos",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("user_id", Uuid(), ForeignKey("users.id"), nullable=False),
    Column("filename", String(FILENAME_MAX), nullable=False),
    Column("bucket", String(64), nullable=False),
    Column("storage_path", String(STORAGE_PATH_MAX), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("bytes", BigInteger(), nullable=False),
    Column("format", String(16), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("width", Integer(), nullable=False),
    Column("height", Integer(), nullable=False),
    Column("taken_at", UtcDateTime(), nullable=True),
    Column("exif", _json(), nullable=True),
    Column("placeholder", String(200), nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("deleted_at", UtcDateTime(), nullable=True),
    Column("idempotency_key", String(IDEMPOTENCY_KEY_MAX), nullable=True),
    # When the original was last read, batched (migration 0004); NULL: never since upload.
    Column("last_accessed_at", UtcDateTime(), nullable=True),
)
# Keyset pages: WHERE user_id = ? AND id < ? ORDER BY id DESC.
Index("ix_photos_user_id_id", photos.c.user_id, photos.c.id)
# The dedup guarantee: one live photo per (user, bytes). Partial on both engines.
Index(
    "uq_photos_live_sha256",
    photos.c.user_id,
    photos.c.sha256,
    unique=True,
    sqlite_where=photos.c.deleted_at.is_(None),
    postgresql_where=photos.c.deleted_at.is_(None),
)
# A retried upload with the same Idempotency-Key finds the photo its first attempt stored.
Index(
    "uq_photos_live_idempotency_key",
    photos.c.user_id,
    photos.c.idempotency_key,
    unique=True,
    sqlite_where=photos.c.deleted_at.is_(None) & photos.c.idempotency_key.is_not(None),
    postgresql_where=photos.c.deleted_at.is_(None) & photos.c.idempotency_key.is_not(None),
)
# The reconciler's scan: live photos still in the pipeline, by when they last moved (migration 0002).
Index(
    "ix_photos_in_flight",
    photos.c.updated_at,
    sqlite_where=(photos.c.status == "processing") & photos.c.deleted_at.is_(None),
    postgresql_where=(photos.c.status == "processing") & photos.c.deleted_at.is_(None),
)

# Resumable (tus) uploads in progress, on the owner's shard (migration 0005). A lease (token and
# expiry) lets one request at a time append, across processes; the offset only moves under it.
uploads = Table(
    "uploads",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("user_id", Uuid(), nullable=False),
    Column("upload_length", BigInteger(), nullable=False),
    Column("upload_offset", BigInteger(), nullable=False),
    Column("upload_metadata", Text(), nullable=False),
    Column("filename", String(FILENAME_MAX), nullable=True),
    Column("storage", _json(), nullable=False),
    Column("photo_id", Uuid(), nullable=True),
    Column("lease_token", String(64), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)
# The sweep of expired uploads.
Index("ix_uploads_expires_at", uploads.c.expires_at)

variants = Table(
    "variants",
    metadata,
    Column("photo_id", Uuid(), ForeignKey("photos.id"), primary_key=True),
    Column("name", String(32), primary_key=True),
    Column("bucket", String(64), nullable=False),
    Column("storage_path", String(STORAGE_PATH_MAX), nullable=False),
    Column("format", String(16), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("width", Integer(), nullable=False),
    Column("height", Integer(), nullable=False),
    Column("bytes", BigInteger(), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    # SQLite only autoincrements an INTEGER primary key (a rowid alias); AUTOINCREMENT (below)
    # keeps it from reusing the seq of a deleted last row.
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", Uuid(), nullable=False),
    Column("topic", String(64), nullable=False),
    Column("key", String(200), nullable=False),
    Column("payload", _json(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("published_at", UtcDateTime(), nullable=True),
    sqlite_autoincrement=True,
)
# The relay's scan: pending rows in seq order, small however long the published history grows.
Index(
    "ix_outbox_pending",
    outbox.c.seq,
    sqlite_where=outbox.c.published_at.is_(None),
    postgresql_where=outbox.c.published_at.is_(None),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(100), primary_key=True),
    Column("event_id", Uuid(), primary_key=True),
    Column("processed_at", UtcDateTime(), nullable=False),
)

# Rebalancing (migration 0003): a write to a key with a row here waits ("fenced": the key's users are
# being switched to another shard) or goes elsewhere ("moved": they now live on ``moved_to``).
placement_fences = Table(
    "placement_fences",
    metadata,
    Column("placement_key", BigInteger(), primary_key=True, autoincrement=False),
    Column("state", String(16), nullable=False),
    Column("moved_to", Integer(), nullable=True),
    Column("since", UtcDateTime(), nullable=False),
)

# A key range [lo, hi) leaving this shard: no new user is created in it here.
range_fences = Table(
    "range_fences",
    metadata,
    Column("lo", BigInteger(), primary_key=True, autoincrement=False),
    Column("hi", BigInteger(), nullable=False),
    Column("moved_to", Integer(), nullable=False),
    Column("since", UtcDateTime(), nullable=False),
)
