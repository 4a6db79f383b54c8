"""Where the shard map and the bucket map live: ``shards.json`` and ``buckets.json`` in one folder.

Guarantees
    Atomic and durable
        A map is written to a temporary file in the same folder, flushed and fsynced, renamed over the
        old file with ``os.replace`` and the folder is fsynced. A reader, or a restart after a crash at
        any instant, sees either the old file or the new one, never a mix; once ``save`` returns, the
        new map survives power loss.
    Versions only grow
        ``save`` refuses (``photostore.errors.Conflict``) a map whose version is not newer than the
        stored one. The check and the write hold an exclusive ``flock`` on ``.lock``, so two processes
        cannot both install the same version.
    Persisted maps win
        ``load_or_init`` builds version 1 from settings only when no map is stored; afterwards the
        stored maps are used whatever the settings say (``PlacementStore.settings_mismatch`` reports the
        difference so the CLI can warn).
    History
        Each file keeps a summary (version, nodes, time) of every version saved, newest last, up to
        ``HISTORY_LIMIT`` entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from photostore.durable import fsync_path
from photostore.errors import ConfigError, Conflict
from photostore.placement.bucket_map import BucketMap
from photostore.placement.shard_map import ShardMap
from photostore.settings import Settings

FORMAT = "photostore.placement/1"
HISTORY_LIMIT = 1000
LOCK_FILE = ".lock"

Kind = Literal["shards", "buckets"]
_FILES: dict[Kind, str] = {"shards": "shards.json", "buckets": "buckets.json"}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A summary of one saved version of a map."""

    version: int
    nodes: tuple[int | str, ...]
    saved_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "nodes": list(self.nodes), "saved_at": self.saved_at.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryEntry:
        return cls(int(data["version"]), tuple(data["nodes"]), datetime.fromisoformat(data["saved_at"]))


@dataclass(frozen=True, slots=True)
class _Stored:
    placement_map: ShardMap | BucketMap
    history: list[HistoryEntry]


def _kind_of(placement_map: ShardMap | BucketMap) -> Kind:
    return "shards" if isinstance(placement_map, ShardMap) else "buckets"


def _nodes_of(placement_map: ShardMap | BucketMap) -> tuple[int | str, ...]:
    return placement_map.ring.nodes()


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content, durably."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)  # makes the rename itself durable


class PlacementStore:
    """The shard map and bucket map of one deployment, persisted in ``directory``.

    The store also remembers the maps it last loaded or saved (:attr:`shard_map`, :attr:`bucket_map`).
    """

    def __init__(self, directory: Path) -> None:
        self._dir = Path(directory)
        self._shard_map: ShardMap | None = None
        self._bucket_map: BucketMap | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> PlacementStore:
        """The store at ``settings.data_dir / "placement"``."""
        return cls(settings.data_dir / "placement")

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def shard_map(self) -> ShardMap:
        """The shard map last loaded or saved (read from disk on first use)."""
        if self._shard_map is None:
            self.reload()
        assert self._shard_map is not None
        return self._shard_map

    @property
    def bucket_map(self) -> BucketMap:
        """The bucket map last loaded or saved (read from disk on first use)."""
        if self._bucket_map is None:
            self.reload()
        assert self._bucket_map is not None
        return self._bucket_map

    # --- loading ----------------------------------------------------------------------------------

    def load_or_init(self, settings: Settings) -> tuple[ShardMap, BucketMap]:
        """The stored maps; at first start, version 1 of each built from ``settings.placement``.

        The maps go to this store's folder (use :meth:`for_settings` for the default one). A map that
        is already stored is never replaced, even if the settings now say otherwise.
        """
        p = settings.placement
        with self._locked():
            shards = self._read("shards")
            if shards is None:
                fresh = ShardMap.create(p.shards, partition_power=p.partition_power)
                shards = self._write(fresh, [])
            buckets = self._read("buckets")
            if buckets is None:
                fresh_buckets = BucketMap.create(
                    p.buckets, prefix=p.bucket_prefix, partition_power=p.partition_power
                )
                buckets = self._write(fresh_buckets, [])
        return self._remember(shards, buckets)

    def reload(self) -> tuple[ShardMap, BucketMap]:
        """Read both maps again, picking up versions another process saved. ConfigError if none."""
        shards, buckets = self._read("shards"), self._read("buckets")
        if shards is None or buckets is None:
            raise ConfigError(f"no placement maps in {self._dir}; they are created at first start")
        return self._remember(shards, buckets)

    def history(self, kind: Kind) -> list[HistoryEntry]:
        """Summaries of every saved version of the ``"shards"`` or ``"buckets"`` map, oldest first."""
        stored = self._read(kind)
        return [] if stored is None else stored.history

    def settings_mismatch(self, settings: Settings) -> str | None:
        """A warning when ``settings.placement`` differs from the stored maps, else None.

        The stored maps stay in force; settings only seed the first start.
        """
        p = settings.placement
        shard_map, bucket_map = self.shard_map, self.bucket_map
        problems = []
        if len(shard_map.shard_ids) != p.shards:
            problems.append(
                f"settings say {p.shards} shards but the stored shard map (version {shard_map.version}) "
                f"has {len(shard_map.shard_ids)}"
            )
        if len(bucket_map.buckets) != p.buckets:
            problems.append(
                f"settings say {p.buckets} buckets but the stored bucket map (version {bucket_map.version}) "
                f"has {len(bucket_map.buckets)}"
            )
        if not all(name.startswith(p.bucket_prefix) for name in bucket_map.buckets):
            problems.append(f"stored bucket names do not all start with bucket_prefix {p.bucket_prefix!r}")
        for name, m in (("shard", shard_map), ("bucket", bucket_map)):
            if m.ring.partition_power != p.partition_power:
                problems.append(
                    f"settings say partition_power {p.partition_power} but the stored {name} map "
                    f"uses {m.ring.partition_power}"
                )
        if not problems:
            return None
        return "; ".join(problems) + f" (the stored maps in {self._dir} are used)"

    # --- saving -----------------------------------------------------------------------------------

    def save(self, placement_map: ShardMap | BucketMap) -> None:
        """Store a new version of the shard map or the bucket map, atomically and durably.

        Raises Conflict if the stored version is the same or newer (another process got there first:
        reload, reapply the change, save again).
        """
        kind = _kind_of(placement_map)
        with self._locked():
            stored = self._read(kind)
            if stored is not None and placement_map.version <= stored.placement_map.version:
                raise Conflict(
                    f"{kind} map version {placement_map.version} is not newer than the stored "
                    f"version {stored.placement_map.version}"
                )
            written = self._write(placement_map, [] if stored is None else stored.history)
        if isinstance(written.placement_map, ShardMap):
            self._shard_map = written.placement_map
        else:
            self._bucket_map = written.placement_map

    # --- files ------------------------------------------------------------------------------------

    def _remember(self, shards: _Stored, buckets: _Stored) -> tuple[ShardMap, BucketMap]:
        shard_map, bucket_map = shards.placement_map, buckets.placement_map
        if not isinstance(shard_map, ShardMap) or not isinstance(bucket_map, BucketMap):
            raise ConfigError(f"placement files in {self._dir} hold the wrong kinds of map")
        self._shard_map, self._bucket_map = shard_map, bucket_map
        return shard_map, bucket_map

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the folder's exclusive lock: one writer at a time, across processes."""
        if not self._dir.is_dir():
            self._dir.mkdir(parents=True, exist_ok=True)
            fsync_path(self._dir.parent)
        fd = os.open(self._dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Under the lock no write is in flight, so any temporary file left is from a crash.
            for name in _FILES.values():
                for stale in self._dir.glob(f".{name}.*.tmp"):
                    stale.unlink(missing_ok=True)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _read(self, kind: Kind) -> _Stored | None:
        path = self._dir / _FILES[kind]
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(raw)
            if doc.get("format") != FORMAT or doc.get("kind") != kind:
                raise ValueError(f"expected format {FORMAT!r} and kind {kind!r}")
            loaded = ShardMap.from_dict(doc["map"]) if kind == "shards" else BucketMap.from_dict(doc["map"])
            history = [HistoryEntry.from_dict(entry) for entry in doc["history"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path} is not a valid {kind} map: {exc}") from exc
        return _Stored(loaded, history)

    def _write(self, placement_map: ShardMap | BucketMap, history: list[HistoryEntry]) -> _Stored:
        kind = _kind_of(placement_map)
        now = datetime.now(UTC)
        entries = [*history, HistoryEntry(placement_map.version, _nodes_of(placement_map), now)]
        entries = entries[-HISTORY_LIMIT:]
        doc = {
            "format": FORMAT,
            "kind": kind,
            "saved_at": now.isoformat(),
            "map": placement_map.to_dict(),
            "history": [entry.to_dict() for entry in entries],
        }
        atomic_write(self._dir / _FILES[kind], json.dumps(doc, indent=1).encode() + b"\n")
        return _Stored(placement_map, entries)
