"""Create a missing PostgreSQL shard database at start.

The database is created from a connection to the same server's ``postgres`` database (CREATE
DATABASE cannot run inside the database it creates, nor in a transaction). Safe under concurrent
starts: every process first looks the name up, and a CREATE that loses a race to another process
("already exists", or the unique index on pg_database's name) counts as success.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import URL, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from photostore.metadata.engines import postgres_url

MAINTENANCE_DATABASE = "postgres"
_ALREADY_EXISTS = {"42P04", "23505"}  # duplicate_database; unique_violation (a concurrent CREATE)
_TEMPLATE_BUSY = "55006"  # object_in_use: someone else is connected to template1 right now
_ATTEMPTS = 5


def _sqlstate(error: exc.DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(dsn: str | URL, *, connect_timeout_s: float = 5.0) -> bool:
    """Create the database ``dsn`` names unless it exists; True if this call created it.

    Raises the driver's error when the server is unreachable or refuses (no CREATEDB right).
    """
    url = postgres_url(dsn)
    name = url.database
    if not name:
        raise ValueError("the DSN names no database")
    admin = create_async_engine(
        url.set(database=MAINTENANCE_DATABASE),
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"timeout": connect_timeout_s},
    )
    try:
        attempt = 1
        while True:
            try:
                return await _create_unless_exists(admin, name)
            except exc.DBAPIError as error:
                if _sqlstate(error) != _TEMPLATE_BUSY or attempt >= _ATTEMPTS:
                    raise
            await asyncio.sleep(0.1 * attempt)  # the other session leaves template1 soon
            attempt += 1
    finally:
        await admin.dispose()


async def _create_unless_exists(admin: AsyncEngine, name: str) -> bool:
    async with admin.connect() as conn:
        found = await conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if found.first() is not None:
            return False
        try:
            await conn.execute(text(f"CREATE DATABASE {_quoted(name)}"))
        except exc.DBAPIError as error:
            if _sqlstate(error) in _ALREADY_EXISTS:
                return False
            raise
        return True
