"""An index for the reconciler: live photos still in the pipeline, by when they last moved.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Partial, so it holds only the photos in flight (a few per second of uploads), not the library.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_IN_FLIGHT = sa.text("status = 'processing' AND deleted_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_photos_in_flight",
        "photos",
        ["updated_at"],
        sqlite_where=_IN_FLIGHT,
        postgresql_where=_IN_FLIGHT,
    )


def downgrade() -> None:
    op.drop_index("ix_photos_in_flight", table_name="photos")
