"""The rebalance control file: the running plan, its journal and the switched keys, shared by processes.

A SQLite file beside the placement maps (``<data_dir>/placement/rebalance.db``), WAL mode and
``synchronous=FULL``: every journal step is durable before the step it records is taken, so a mover
killed at any instant resumes where it stopped. ``version`` grows at every change that alters routing
(a plan started, a key switched, a range folded into the map, a plan finished); processes poll it.

Tables
    ``control``: one row: the routing version and the running plan (JSON), if any.
    ``ranges``: the plan's key ranges [lo, hi) with their source, target and step.
    ``moves``: the journal, one row per placement key being moved: its step, rows and bytes copied.
    ``overrides``: keys switched to their target before their range is folded into the map.
    ``finished``: a summary of each finished plan.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photostore.errors import Conflict

FILENAME = "rebalance.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS control (
    id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, plan TEXT);
INSERT OR IGNORE INTO control (id, version, plan) VALUES (1, 0, NULL);
CREATE TABLE IF NOT EXISTS ranges (
    lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL, src INTEGER NOT NULL, dst INTEGER NOT NULL,
    step TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS moves (
    key INTEGER PRIMARY KEY, src INTEGER NOT NULL, dst INTEGER NOT NULL, step TEXT NOT NULL,
    rows INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
    fenced_s REAL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS overrides (key INTEGER PRIMARY KEY, shard INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS finished (
    plan_id TEXT PRIMARY KEY, summary TEXT NOT NULL, finished_at REAL NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class RangeRecord:
    lo: int
    hi: int
    src: int
    dst: int
    step: str  # "pending", "moved" (every key switched), "folded" (in the map), "cleaned"


@dataclass(frozen=True, slots=True)
class MoveRecord:
    key: int
    src: int
    dst: int
    step: str  # "copying", "fenced", "switched", "cleaned"
    rows: int
    bytes: int
    fenced_s: float | None


@dataclass(frozen=True, slots=True)
class ControlSnapshot:
    version: int
    plan: Mapping[str, Any] | None
    ranges: tuple[RangeRecord, ...]
    overrides: Mapping[int, int]


class ControlStore:
    """Synchronous and short: each call is one small transaction on a local file."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / FILENAME
        self._local = (
            threading.local()
        )  # one connection per thread, reused: opening one costs more than a step
        with self._connection() as conn:
            conn.executescript(_SCHEMA)

    @property
    def path(self) -> Path:
        return self._path

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        yield conn

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE control SET version = version + 1 WHERE id = 1")

    # --- reading ----------------------------------------------------------------------------------

    def version(self) -> int:
        with self._connection() as conn:
            return int(conn.execute("SELECT version FROM control WHERE id = 1").fetchone()[0])

    def snapshot(self) -> ControlSnapshot:
        with self._connection() as conn:
            conn.execute("BEGIN")  # one snapshot for the three reads
            try:
                version, plan = conn.execute("SELECT version, plan FROM control WHERE id = 1").fetchone()
                ranges = tuple(
                    RangeRecord(*row)
                    for row in conn.execute("SELECT lo, hi, src, dst, step FROM ranges ORDER BY lo")
                )
                overrides = dict(conn.execute("SELECT key, shard FROM overrides").fetchall())
            finally:
                conn.execute("COMMIT")
        return ControlSnapshot(int(version), None if plan is None else json.loads(plan), ranges, overrides)

    def moves(self, lo: int = 0, hi: int = 1 << 32) -> dict[int, MoveRecord]:
        """The journal of keys in [lo, hi)."""
        with self._connection() as conn:
            found = conn.execute(
                "SELECT key, src, dst, step, rows, bytes, fenced_s FROM moves WHERE key >= ? AND key < ?",
                (lo, hi),
            ).fetchall()
        return {row[0]: MoveRecord(*row) for row in found}

    def totals(self) -> dict[str, float]:
        """What every rebalance moved so far (finished plans and the running one's journal), and
        the running plan's keys by step: the figures /metrics exports."""
        with self._connection() as conn:
            finished = [json.loads(row[0]) for row in conn.execute("SELECT summary FROM finished")]
            keys, rows, size = conn.execute(
                "SELECT count(*), coalesce(sum(rows), 0), coalesce(sum(bytes), 0) FROM moves"
                " WHERE step IN ('switched', 'cleaned')"
            ).fetchone()
            steps = dict(conn.execute("SELECT step, count(*) FROM moves GROUP BY step").fetchall())
            version, plan = conn.execute("SELECT version, plan FROM control WHERE id = 1").fetchone()
        totals: dict[str, float] = {
            "routing_version": version,
            "running": float(plan is not None),
            "keys": keys + sum(f.get("keys", 0) for f in finished),
            "rows": rows + sum(f.get("rows", 0) for f in finished),
            "bytes": size + sum(f.get("bytes", 0) for f in finished),
            "objects": sum(f.get("objects_moved", 0) for f in finished),
            "object_bytes": sum(f.get("bytes_moved", 0) for f in finished),
        }
        totals.update({f"keys_{step}": float(count) for step, count in steps.items()})
        return totals

    def record_finished(self, summary: Mapping[str, Any]) -> None:
        """Keep the summary of work done outside a shard plan (an object move)."""
        with self._writing() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO finished (plan_id, summary, finished_at) VALUES (?, ?, ?)",
                (summary["plan_id"], json.dumps(summary), time.time()),
            )

    def finished(self) -> list[dict[str, Any]]:
        with self._connection() as conn:
            found = conn.execute("SELECT summary FROM finished ORDER BY finished_at").fetchall()
        return [json.loads(row[0]) for row in found]

    # --- the plan ---------------------------------------------------------------------------------

    def start_plan(self, plan: Mapping[str, Any], ranges: list[tuple[int, int, int, int]]) -> None:
        """Record a new plan; Conflict while another one runs (finish or resume it first)."""
        with self._writing() as conn:
            (running,) = conn.execute("SELECT plan FROM control WHERE id = 1").fetchone()
            if running is not None:
                raise Conflict(
                    f"a rebalance is already planned ({json.loads(running)['describe']}): "
                    "run `photostore rebalance` to finish it first"
                )
            conn.execute("DELETE FROM ranges")
            conn.execute("DELETE FROM moves")
            conn.execute("DELETE FROM overrides")
            conn.executemany(
                "INSERT INTO ranges (lo, hi, src, dst, step) VALUES (?, ?, ?, ?, 'pending')", ranges
            )
            conn.execute("UPDATE control SET plan = ? WHERE id = 1", (json.dumps(plan),))
            self._bump(conn)

    def set_range_step(self, los: Iterable[int], step: str) -> None:
        with self._writing() as conn:
            conn.executemany("UPDATE ranges SET step = ? WHERE lo = ?", [(step, lo) for lo in los])

    def fold_ranges(self, ranges: Iterable[tuple[int, int]]) -> None:
        """The ranges are in the shard map now: their overrides go, in the same change as their step."""
        with self._writing() as conn:
            for lo, hi in ranges:
                conn.execute("DELETE FROM overrides WHERE key >= ? AND key < ?", (lo, hi))
                conn.execute("UPDATE ranges SET step = 'folded' WHERE lo = ?", (lo,))
            self._bump(conn)

    def finish_plan(self, summary: Mapping[str, Any]) -> None:
        with self._writing() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO finished (plan_id, summary, finished_at) VALUES (?, ?, ?)",
                (summary["plan_id"], json.dumps(summary), time.time()),
            )
            conn.execute("UPDATE control SET plan = NULL WHERE id = 1")
            conn.execute("DELETE FROM overrides")
            conn.execute("DELETE FROM ranges")
            conn.execute("DELETE FROM moves")
            self._bump(conn)

    # --- the journal ------------------------------------------------------------------------------

    def record_moves(
        self,
        keys: Sequence[int],
        src: int,
        dst: int,
        step: str,
        loads: Mapping[int, tuple[int, int]] | None = None,
    ) -> None:
        """Journal ``step`` for each key in one transaction; ``loads``: key -> (rows, bytes) copied."""
        now = time.time()
        rows = [(k, src, dst, step, *(loads or {}).get(k, (None, None)), now) for k in keys]
        with self._writing() as conn:
            conn.executemany(
                "INSERT INTO moves (key, src, dst, step, rows, bytes, updated_at)"
                " VALUES (?, ?, ?, ?, coalesce(?, 0), coalesce(?, 0), ?)"
                " ON CONFLICT (key) DO UPDATE SET step = excluded.step, src = excluded.src,"
                " dst = excluded.dst, updated_at = excluded.updated_at,"
                " rows = CASE WHEN excluded.rows > 0 THEN excluded.rows ELSE rows END,"
                " bytes = CASE WHEN excluded.bytes > 0 THEN excluded.bytes ELSE bytes END",
                rows,
            )

    def switch_keys(self, keys: Sequence[int], dst: int, fenced_s: float) -> None:
        """Route ``keys`` to ``dst`` from now on: overrides and journal steps, in one change."""
        now = time.time()
        with self._writing() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO overrides (key, shard) VALUES (?, ?)", [(k, dst) for k in keys]
            )
            conn.executemany(
                "UPDATE moves SET step = 'switched', fenced_s = ?, updated_at = ? WHERE key = ?",
                [(fenced_s, now, k) for k in keys],
            )
            self._bump(conn)

    def bump(self) -> None:
        with self._writing() as conn:
            self._bump(conn)
