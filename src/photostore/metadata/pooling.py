"""The spec's PoolConfig (Go ``database/sql``) mapped onto a SQLAlchemy connection pool.

=========================  =============================  ============================================
PoolConfig (settings)      SQLAlchemy                     behaviour
=========================  =============================  ============================================
``max_open_conns``         ``pool_size + max_overflow``   hard cap on connections open at once; a
                                                          checkout beyond it waits ``pool_timeout``
``max_idle_conns``         ``pool_size``                  connections kept open when returned; the
                                                          overflow ones are closed on return. 0 is
                                                          raised to 1: SQLAlchemy reads a pool_size
                                                          of 0 as "no limit".
``conn_max_lifetime_s``    ``pool_recycle``               a connection older than this is closed
                                                          and replaced at its next checkout
``conn_max_idle_time_s``   checkin/checkout pool events   a connection that sat idle in the pool
                           (:func:`install_idle_timeout`)  longer than this is closed and replaced
                                                          at its next checkout
=========================  =============================  ============================================

Like ``database/sql``, the limits are enforced lazily: nothing reaps idle connections in the
background, but at most ``max_idle_conns`` stay open while idle, and no stale connection is used.

A connection that sat idle for more than ``ping_after_s`` is pinged at checkout and replaced if the
ping fails (SQLAlchemy's ``pool_pre_ping`` pings at every checkout: a round trip per query, which
under load buys nothing, since a connection used a moment ago is alive). A connection broken while
in busy use (a server restart under load) fails its statement instead; reads retry that once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event, exc
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from photostore.settings import PoolSettings

_IDLE_SINCE = "photostore_idle_since"


@dataclass(frozen=True, slots=True)
class PoolPlan:
    """The SQLAlchemy pool arguments that realise one :class:`PoolSettings`."""

    pool_size: int
    max_overflow: int
    pool_recycle: float
    idle_timeout_s: float

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``create_async_engine`` (the idle timeout is an event, not one)."""
        return {
            "pool_size": self.pool_size,
            "max_overflow": self.max_overflow,
            "pool_recycle": self.pool_recycle,
        }

    @property
    def max_open(self) -> int:
        return self.pool_size + self.max_overflow


def plan_pool(pool: PoolSettings) -> PoolPlan:
    """Map PoolConfig onto SQLAlchemy's pool (see the module table)."""
    idle = min(max(pool.max_idle_conns, 1), pool.max_open_conns)
    return PoolPlan(
        pool_size=idle,
        max_overflow=pool.max_open_conns - idle,
        pool_recycle=pool.conn_max_lifetime_s,
        idle_timeout_s=pool.conn_max_idle_time_s,
    )


def install_idle_timeout(engine: Engine, idle_timeout_s: float, ping_after_s: float | None = None) -> None:
    """Replace, at checkout, any pooled connection that has been idle longer than ``idle_timeout_s``,
    or longer than ``ping_after_s`` and failing a ping.

    On checkin the pool entry remembers when it went idle. On checkout, raising DisconnectionError
    makes SQLAlchemy close that DBAPI connection and open a fresh one in its place (the entry's
    ``info`` is cleared on reconnect, so the fresh one passes).
    """

    def on_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None:  # new: just connected
            return
        idle_s = time.monotonic() - since
        if idle_s > idle_timeout_s:
            raise exc.DisconnectionError(f"connection idle for more than {idle_timeout_s} s")
        if ping_after_s is not None and idle_s > ping_after_s:
            try:
                dbapi_connection.ping()
            except Exception as error:
                raise exc.DisconnectionError(
                    f"connection idle {idle_s:.1f} s failed its ping: {error}"
                ) from error

    event.listen(engine, "checkin", on_checkin)
    event.listen(engine, "checkout", on_checkout)
