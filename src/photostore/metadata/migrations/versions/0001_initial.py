"""The initial schema: users, api_keys, photos, variants, outbox, processed_events.

Revision ID: 0001
Revises:
Create Date: 2025-11-28

Written out by hand (not imported from schema.py) so this revision stays what it was when later
revisions change the live schema. Datetimes are ``TIMESTAMP WITH TIME ZONE``; JSON is JSONB on
PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str, *, nullable: bool) -> sa.Column[object]:
    kind = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
    return sa.Column(name, kind, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("secret_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_api_keys_user_id_users"),
    )
    op.create_table(
        "photos",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("storage_path", sa.String(500), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        _ts("taken_at", nullable=True),
        _json("exif", nullable=True),
        sa.Column("placeholder", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("deleted_at", nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_photos"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_photos_user_id_users"),
    )
    op.create_index("ix_photos_user_id_id", "photos", ["user_id", "id"])
    live = sa.text("deleted_at IS NULL")
    op.create_index(
        "uq_photos_live_sha256",
        "photos",
        ["user_id", "sha256"],
        unique=True,
        sqlite_where=live,
        postgresql_where=live,
    )
    live_keyed = sa.text("deleted_at IS NULL AND idempotency_key IS NOT NULL")
    op.create_index(
        "uq_photos_live_idempotency_key",
        "photos",
        ["user_id", "idempotency_key"],
        unique=True,
        sqlite_where=live_keyed,
        postgresql_where=live_keyed,
    )
    op.create_table(
        "variants",
        sa.Column("photo_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("storage_path", sa.String(500), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("photo_id", "name", name="pk_variants"),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], name="fk_variants_photo_id_photos"),
    )
    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        _json("payload", nullable=False),
        _ts("created_at"),
        _ts("published_at", nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sqlite_autoincrement=True,
    )
    pending = sa.text("published_at IS NULL")
    op.create_index("ix_outbox_pending", "outbox", ["seq"], sqlite_where=pending, postgresql_where=pending)
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        _ts("processed_at"),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
    )


def downgrade() -> None:
    for table in ("processed_events", "outbox", "variants", "photos", "api_keys", "users"):
        op.drop_table(table)
