"""Rebalancing: users' placement keys by index, and the per-key and per-range write fences.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

The placement key of existing users is computed from their ids here, in batches, so an old shard
can be rebalanced like a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from photostore.ids import placement_key_of

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_BATCH = 1000


def _fill_placement_keys() -> None:
    users = sa.table("users", sa.column("id", sa.Uuid()), sa.column("placement_key", sa.BigInteger()))
    conn = op.get_bind()
    while True:
        ids = conn.execute(
            sa.select(users.c.id).where(users.c.placement_key.is_(None)).limit(_BATCH)
        ).scalars()
        batch = [{"user_id": user_id, "key": placement_key_of(user_id)} for user_id in ids]
        if not batch:
            return
        conn.execute(
            users.update()
            .where(users.c.id == sa.bindparam("user_id"))
            .values(placement_key=sa.bindparam("key")),
            batch,
        )


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("placement_key", sa.BigInteger(), nullable=True))
    _fill_placement_keys()
    op.create_index("ix_users_placement_key", "users", ["placement_key"])
    op.create_table(
        "placement_fences",
        sa.Column("placement_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("moved_to", sa.Integer(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("placement_key", name="pk_placement_fences"),
    )
    op.create_table(
        "range_fences",
        sa.Column("lo", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hi", sa.BigInteger(), nullable=False),
        sa.Column("moved_to", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lo", name="pk_range_fences"),
    )


def downgrade() -> None:
    op.drop_table("range_fences")
    op.drop_table("placement_fences")
    op.drop_index("ix_users_placement_key", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("placement_key")
