"""Connection-pool figures of one engine, for /metrics.

Read from SQLAlchemy's QueuePool counters without touching a connection: cheap enough for every
scrape, and a dead server does not make the call fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

Role = Literal["primary", "replica"]


@dataclass(frozen=True, slots=True)
class PoolStat:
    """One pool at one instant.

    ``size`` is the number of connections the pool keeps (PoolConfig ``max_idle_conns``),
    ``checked_out`` the ones in use now, ``overflow`` the ones open beyond ``size`` now (closed when
    returned), ``idle`` the ones waiting in the pool, ``max_open`` the hard cap
    (``max_open_conns``: ``size`` + max overflow).
    """

    shard_id: int
    role: Role
    target: str
    size: int
    checked_out: int
    overflow: int
    idle: int
    max_open: int


def describe_target(url: URL) -> str:
    """``host:port/database`` of a URL: what a metric label may show (never the password)."""
    host = url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    return f"{host}{port}/{url.database or ''}"


def pool_stat(engine: AsyncEngine, shard_id: int, role: Role) -> PoolStat:
    """The figures of ``engine``'s pool (all zero for a pool that is not a QueuePool)."""
    pool = engine.pool
    target = describe_target(engine.url)
    if not isinstance(pool, QueuePool):
        return PoolStat(shard_id, role, target, 0, 0, 0, 0, 0)
    size = pool.size()
    # QueuePool.overflow() counts from -size: it is "open connections - size".
    max_overflow = max(pool._max_overflow, 0)
    return PoolStat(
        shard_id=shard_id,
        role=role,
        target=target,
        size=size,
        checked_out=pool.checkedout(),
        overflow=max(pool.overflow(), 0),
        idle=pool.checkedin(),
        max_open=size + max_overflow,
    )
