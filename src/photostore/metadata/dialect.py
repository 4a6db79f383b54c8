"""INSERT ... ON CONFLICT, which SQLite and PostgreSQL spell alike but SQLAlchemy types per dialect."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Insert, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_or_ignore(dialect_name: str, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``: a row that breaks any unique index is skipped.

    Under concurrency this is exact on both engines: PostgreSQL waits for a conflicting
    uncommitted row and skips only if it commits; SQLite serialises writers.
    """
    if dialect_name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"no ON CONFLICT support for dialect {dialect_name!r}")


def upsert(dialect_name: str, table: Table, key: Sequence[str]) -> Insert:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` setting every non-key column to the new value."""
    others = [column.name for column in table.columns if column.name not in key]
    if dialect_name == "sqlite":
        lite = sqlite.insert(table)
        return lite.on_conflict_do_update(index_elements=key, set_={c: lite.excluded[c] for c in others})
    if dialect_name == "postgresql":
        pg = postgresql.insert(table)
        return pg.on_conflict_do_update(index_elements=key, set_={c: pg.excluded[c] for c in others})
    raise NotImplementedError(f"no ON CONFLICT support for dialect {dialect_name!r}")
