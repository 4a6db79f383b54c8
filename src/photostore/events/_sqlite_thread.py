"""One stdlib sqlite3 connection driven from one dedicated thread.

Each operation is a plain function of the connection that runs whole in that thread (a transaction
is one call, not one await per statement), which keeps the event loop free and the per-operation
overhead to one thread hop. Calls run one at a time, in the order they were made.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from photostore.errors import BackendUnavailable

T = TypeVar("T")


def connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with ``synchronous=FULL``: a commit is fsynced before it returns."""
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=True)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@contextmanager
def write_txn(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the write lock at once (no upgrade deadlocks)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (e.g. on SQLITE_FULL)
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def read_txn(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction: every query inside sees one snapshot of the file."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


class SqliteThread:
    """Runs functions of one sqlite3 connection in one thread; sqlite3 errors become BackendUnavailable."""

    def __init__(self, path: Path, busy_timeout_s: float = 30.0) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="photostore-sqlite")
        try:
            self._conn = await self._submit(lambda: connect(self._path, self._busy_timeout_s))
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            raise

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise BackendUnavailable(f"the event log {self._path} is not open")
        return await self._submit(lambda: fn(conn))

    async def close(self) -> None:
        if self._executor is None:
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._submit(conn.close)
        self._executor.shutdown(wait=True)  # its one thread is idle now: returns at once
        self._executor = None

    async def _submit(self, call: Callable[[], T]) -> T:
        assert self._executor is not None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"event log {self._path}: {exc}") from exc
