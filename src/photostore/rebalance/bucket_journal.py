"""The bucket mover's journal: the copies made and the source deletes owed, in a SQLite file that
survives a crash, so the next run can settle them from the rows."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photostore.durable import fsync_path
from photostore.errors import Conflict


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One object of a move in flight: copied (or being copied) from ``source`` to ``target``;
    ``delete_after`` (Unix time) is set once the switch is recorded."""

    photo_id: uuid.UUID
    key: str
    source: str
    target: str
    delete_after: float | None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS moves (
    photo_id TEXT NOT NULL,
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    delete_after REAL,
    PRIMARY KEY (photo_id, key)
)
"""


class BucketMoveJournal:
    """Copies made and source deletes owed, in a SQLite file in ``folder`` (WAL, ``synchronous=FULL``:
    every record is on disk when its call returns).

    ``open`` takes an exclusive lock on the folder (``Conflict`` if another mover holds it); the OS
    drops it when the process dies, so a SIGKILLed mover never blocks the next run.
    """

    FILE = "bucket-moves.sqlite"
    LOCK = "bucket-moves.lock"

    def __init__(self, folder: Path) -> None:
        self._folder = Path(folder)
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._mutex = threading.Lock()  # one statement at a time on the shared connection

    def open(self) -> None:
        new_folder = not self._folder.is_dir()
        self._folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._folder / self.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Conflict(f"another bucket mover is running on the journal in {self._folder}") from None
        self._lock_fd = fd
        try:
            path = self._folder / self.FILE
            new_file = not path.exists()
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute(_SCHEMA)
            if new_file:  # the file's own entry must survive a power loss too
                fsync_path(self._folder)
            if new_folder:
                fsync_path(self._folder.parent)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _run(self, statement: str, rows: Sequence[Sequence[Any]] = ((),)) -> list[tuple[Any, ...]]:
        if self._db is None:
            raise RuntimeError("the bucket move journal is not open")
        with self._mutex:
            if len(rows) == 1:
                return self._db.execute(statement, rows[0]).fetchall()
            with self._db:  # one transaction for the batch (sqlite3 commits at the end)
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(statement, rows)
            return []

    async def record_copies(self, photo_id: uuid.UUID, moves: Sequence[tuple[str, str, str]]) -> None:
        """Before copying: each (key, source, target) of ``photo_id``; replaces an older record."""
        rows = [(str(photo_id), key, source, target) for key, source, target in moves]
        statement = "INSERT OR REPLACE INTO moves VALUES (?, ?, ?, ?, NULL)"
        await asyncio.to_thread(self._run, statement, rows)

    async def record_switch(self, photo_id: uuid.UUID, delete_after: float) -> None:
        statement = "UPDATE moves SET delete_after = ? WHERE photo_id = ?"
        await asyncio.to_thread(self._run, statement, [(delete_after, str(photo_id))])

    async def forget(self, photo_id: uuid.UUID) -> None:
        await asyncio.to_thread(self._run, "DELETE FROM moves WHERE photo_id = ?", [(str(photo_id),)])

    async def entries(self, photo_id: uuid.UUID | None = None) -> list[JournalEntry]:
        """The entries of ``photo_id``, or all of them, by photo then key."""
        statement = "SELECT photo_id, key, source, target, delete_after FROM moves"
        args: tuple[Any, ...] = ()
        if photo_id is not None:
            statement += " WHERE photo_id = ?"
            args = (str(photo_id),)
        found = await asyncio.to_thread(self._run, statement + " ORDER BY photo_id, key", [args])
        return [JournalEntry(uuid.UUID(row[0]), row[1], row[2], row[3], row[4]) for row in found]
