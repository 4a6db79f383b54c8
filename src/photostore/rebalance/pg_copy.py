"""The bulk copy of a batch of keys between two PostgreSQL shards with binary ``COPY``.

The first copy of a batch is most of a move's rows, so on PostgreSQL it skips SQLAlchemy's row
handling: each table's rows of the keys stream out of the source with ``COPY (SELECT ...) TO
STDOUT (FORMAT binary)`` in one REPEATABLE READ snapshot and into the target with ``COPY ... FROM
STDIN`` in one transaction, after the leftovers of an interrupted try are deleted. Both sides run
the same migrations, so the columns are named, in the same order, on both. Catch-up passes (small)
go through :mod:`.shard_rows` as on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from photostore.errors import BackendUnavailable
from photostore.metadata import fences
from photostore.metadata.engines import is_sqlite
from photostore.metadata.schema import api_keys, photos, uploads, users, variants
from photostore.metadata.translate import translated
from photostore.rebalance import shard_rows

# The rows of the keys $1 (a bigint[]), per table, in the order the target takes them.
_OWNERS = "SELECT id FROM users WHERE placement_key = ANY($1::bigint[])"
_SELECTS: tuple[tuple[Table, str], ...] = (
    (users, "placement_key = ANY($1::bigint[])"),
    (api_keys, f"user_id IN ({_OWNERS})"),
    (photos, f"user_id IN ({_OWNERS})"),
    (variants, f"photo_id IN (SELECT id FROM photos WHERE user_id IN ({_OWNERS}))"),
    (uploads, f"user_id IN ({_OWNERS})"),
)
_LOADS = f"""
SELECT u.placement_key,
       1 + (SELECT count(*) FROM api_keys k WHERE k.user_id = u.id)
         + (SELECT count(*) FROM photos p WHERE p.user_id = u.id)
         + (SELECT count(*) FROM variants v JOIN photos p ON p.id = v.photo_id WHERE p.user_id = u.id)
         + (SELECT count(*) FROM uploads t WHERE t.user_id = u.id),
       (SELECT coalesce(sum(p.bytes), 0) FROM photos p WHERE p.user_id = u.id)
         + (SELECT coalesce(sum(v.bytes), 0) FROM variants v JOIN photos p ON p.id = v.photo_id
            WHERE p.user_id = u.id)
FROM users u WHERE u.id IN ({_OWNERS})
"""


@dataclass(frozen=True, slots=True)
class BulkCopy:
    rows: int
    size: int
    loads: dict[int, tuple[int, int]]  # key -> (rows, bytes), for the journal


def applies(source: AsyncEngine, target: AsyncEngine) -> bool:
    return not is_sqlite(source) and not is_sqlite(target)


async def _driver(conn: AsyncConnection) -> Any:
    raw = await conn.get_raw_connection()
    return raw.driver_connection  # the asyncpg connection


def _columns(table: Table) -> str:
    return ", ".join(f'"{column.name}"' for column in table.columns)


async def copy_keys(source: AsyncEngine, target: AsyncEngine, keys: Sequence[int]) -> BulkCopy:
    """Replace whatever ``keys`` have on ``target`` with their rows on ``source`` now."""
    try:
        return await _copy_keys(source, target, keys)
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:  # raised by the driver itself
        raise BackendUnavailable(f"copying users' rows between shards: {error!r}"[:400]) from error


async def _copy_keys(source: AsyncEngine, target: AsyncEngine, keys: Sequence[int]) -> BulkCopy:
    wanted = sorted(set(keys))
    dumps: list[tuple[Table, bytes]] = []
    loads: dict[int, list[int]] = {}
    with translated("copying users' rows between shards"):
        async with source.connect() as conn:
            driver = await _driver(conn)
            async with driver.transaction(isolation="repeatable_read", readonly=True):
                for table, where in _SELECTS:
                    chunks: list[bytes] = []

                    async def keep(data: bytes, into: list[bytes] = chunks) -> None:
                        into.append(bytes(data))

                    query = f"SELECT {_columns(table)} FROM {table.name} WHERE {where}"
                    await driver.copy_from_query(query, wanted, output=keep, format="binary")
                    dumps.append((table, b"".join(chunks)))
                for key, rows, size in await driver.fetch(_LOADS, wanted):
                    counts = loads.setdefault(int(key), [0, 0])
                    counts[0] += int(rows)
                    counts[1] += int(size)
        async with target.connect() as conn, conn.begin():
            await shard_rows.delete_keys(conn, wanted)
            await fences.unfence_keys(conn, wanted)
            driver = await _driver(conn)
            copied = 0
            for table, data in dumps:
                columns = [column.name for column in table.columns]
                status = await driver.copy_to_table(
                    table.name, source=_once(data), columns=columns, format="binary"
                )
                copied += int(status.split()[-1])
    return BulkCopy(
        copied, sum(size for _, size in loads.values()), {k: (r, b) for k, (r, b) in loads.items()}
    )


async def _once(data: bytes) -> Any:
    yield data
