"""Alembic environment for one metadata shard.

photostore runs migrations itself (``photostore.metadata.migrate``): it passes an open connection,
already inside a transaction and holding the migration lock, in ``config.attributes["connection"]``.
The alembic CLI also works, for writing new revisions against a scratch database::

    alembic -c src/photostore/metadata/alembic.ini -x url=sqlite+aiosqlite:///scratch.db upgrade head
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from photostore.metadata.schema import metadata

config = context.config


def _configure_and_run(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; autogenerate then writes batch operations.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the shard's URL: alembic -x url=sqlite+aiosqlite:///path.db ...")
    return url


async def _run_cli_online() -> None:
    engine = create_async_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure_and_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _run() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _configure_and_run(given)
    elif context.is_offline_mode():
        context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(_run_cli_online())


_run()
