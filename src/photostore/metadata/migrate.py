"""Apply the Alembic migrations to a shard, programmatically (no alembic CLI, no alembic.ini).

Guarantees:

- Idempotent: a shard already at head is left untouched.
- Atomic: all pending revisions run in one transaction (DDL is transactional on both engines), so a
  crash mid-migration leaves the shard at its previous revision.
- A shard at a revision this code does not know (written by a newer release) is refused with
  ConfigError instead of being touched.
- Safe under concurrent starts: the transaction first takes the migration lock (PostgreSQL: a
  transaction-level advisory lock; SQLite: ``BEGIN IMMEDIATE``, the file's write lock). A second
  starter waits, then finds the shard at head and does nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from photostore.errors import ConfigError
from photostore.metadata.engines import is_sqlite, write_options

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# pg_advisory_xact_lock key for "migrating this database" (any constant; b"photo" as an int).
_PG_MIGRATION_LOCK = int.from_bytes(b"photo", "big")
_SQLITE_LOCKED_ATTEMPTS = 6


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations, optionally carrying ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def migrate(engine: AsyncEngine) -> None:
    """Bring the shard behind ``engine`` to the head revision (see the module guarantees)."""
    for attempt in range(_SQLITE_LOCKED_ATTEMPTS):
        try:
            await _migrate_once(engine)
            return
        except OperationalError as error:
            # SQLite answers "database is locked" without waiting out busy_timeout when starters
            # race on a fresh file (switching it to WAL needs it alone). Migrating is atomic and
            # idempotent, so trying again is safe.
            locked = is_sqlite(engine) and "database is locked" in str(error)
            if not locked or attempt == _SQLITE_LOCKED_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.05 * 2**attempt)


async def _migrate_once(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execution_options(**write_options(engine))
        async with conn.begin():
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            try:
                await conn.run_sync(_upgrade)
            except CommandError as error:
                raise ConfigError(f"cannot migrate {engine.url.render_as_string()}: {error}") from error


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the shard is at, None before the first migration."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)
