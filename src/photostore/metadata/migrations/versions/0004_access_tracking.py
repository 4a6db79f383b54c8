"""Access tracking: when each photo's original was last read.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

Nullable: a photo never read since upload counts as last touched when it was uploaded. Written in
batches by the API (pipeline/access.py), read by the tiering job and ``photostore cost optimize``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("last_accessed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("last_accessed_at")
