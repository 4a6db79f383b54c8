"""The placement store: first start, persisted maps win, version conflicts, reload, crash safety."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from photostore.errors import ConfigError, Conflict
from photostore.placement.bucket_map import BucketMap
from photostore.placement.shard_map import ShardMap
from photostore.placement.store import PlacementStore
from photostore.settings import PlacementSettings, Settings


def _settings(data_dir: Path, shards: int = 3, buckets: int = 2, power: int = 8) -> Settings:
    placement = PlacementSettings(
        shards=shards, buckets=buckets, partition_power=power, bucket_prefix="pics-"
    )
    return Settings(data_dir=data_dir, placement=placement)


def test_first_start_creates_version_one_from_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = PlacementStore.for_settings(settings)
    shard_map, bucket_map = store.load_or_init(settings)
    assert store.directory == tmp_path / "placement"
    assert shard_map == ShardMap.create(3, partition_power=8)
    assert bucket_map == BucketMap.create(2, prefix="pics-", partition_power=8)
    assert sorted(p.name for p in store.directory.iterdir()) == [".lock", "buckets.json", "shards.json"]
    assert json.loads((store.directory / "shards.json").read_text())["map"] == shard_map.to_dict()
    assert store.settings_mismatch(settings) is None


def test_later_starts_load_the_persisted_maps_and_report_a_mismatch(tmp_path: Path) -> None:
    first = PlacementStore(tmp_path)
    shard_map, _ = first.load_or_init(_settings(tmp_path))
    first.save(shard_map.with_shard_added(3))

    changed = _settings(tmp_path, shards=8, buckets=5, power=10)
    again = PlacementStore(tmp_path)
    shard_map2, bucket_map2 = again.load_or_init(changed)
    assert shard_map2.version == 2
    assert shard_map2.shard_ids == (0, 1, 2, 3)
    assert bucket_map2.buckets == ("pics-0", "pics-1")
    message = again.settings_mismatch(changed)
    assert message is not None
    for fragment in ("8 shards", "has 4", "5 buckets", "has 2", "partition_power 10"):
        assert fragment in message


def test_save_refuses_versions_that_are_not_newer(tmp_path: Path) -> None:
    store = PlacementStore(tmp_path)
    shard_map, bucket_map = store.load_or_init(_settings(tmp_path))
    v2 = shard_map.with_shard_added(3)
    store.save(v2)
    before = (tmp_path / "shards.json").read_bytes()
    for stale in (shard_map, v2, shard_map.with_shard_removed(0)):  # versions 1, 2, 2
        with pytest.raises(Conflict, match="not newer"):
            store.save(stale)
    assert (tmp_path / "shards.json").read_bytes() == before
    store.save(bucket_map.with_bucket_added("pics-2"))
    assert store.reload()[1].buckets == ("pics-0", "pics-1", "pics-2")


def test_reload_picks_up_a_version_saved_elsewhere(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    reader, writer = PlacementStore(tmp_path), PlacementStore(tmp_path)
    shard_map, _ = reader.load_or_init(settings)
    writer.load_or_init(settings)
    writer.save(shard_map.with_shard_added(3).with_shard_weight(0, 2.0))
    assert reader.shard_map.version == 1
    new_map, _ = reader.reload()
    assert new_map.version == 3
    assert reader.shard_map == new_map == writer.shard_map


def test_history_keeps_every_saved_version(tmp_path: Path) -> None:
    store = PlacementStore(tmp_path)
    shard_map, _ = store.load_or_init(_settings(tmp_path))
    store.save(shard_map := shard_map.with_shard_added(3))
    store.save(shard_map.with_shard_removed(1))
    history = store.history("shards")
    assert [(h.version, h.nodes) for h in history] == [(1, (0, 1, 2)), (2, (0, 1, 2, 3)), (3, (0, 2, 3))]
    assert all(h.saved_at.tzinfo is not None for h in history)
    assert history[0].saved_at <= history[1].saved_at <= history[2].saved_at
    assert [h.version for h in store.history("buckets")] == [1]


def test_concurrent_savers_of_the_same_version_cannot_both_win(tmp_path: Path) -> None:
    store = PlacementStore(tmp_path)
    shard_map, _ = store.load_or_init(_settings(tmp_path))
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def save(candidate: ShardMap) -> None:
        barrier.wait()
        try:
            PlacementStore(tmp_path).save(candidate)
            outcomes.append("saved")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=save, args=(shard_map.with_shard_added(10 + i),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 3 + ["saved"]
    assert store.reload()[0].version == 2


def test_leftover_temp_files_are_ignored_and_cleaned(tmp_path: Path) -> None:
    store = PlacementStore(tmp_path)
    shard_map, _ = store.load_or_init(_settings(tmp_path))
    torn = tmp_path / ".shards.json.999.abcd.tmp"
    torn.write_text('{"format": "photostore.placement/1", "kind": "sha')  # a write cut short
    assert PlacementStore(tmp_path).reload()[0] == shard_map
    store.save(shard_map.with_shard_added(3))
    assert not torn.exists()


def test_unreadable_or_missing_maps_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no placement maps"):
        PlacementStore(tmp_path).reload()
    store = PlacementStore(tmp_path)
    store.load_or_init(_settings(tmp_path))
    (tmp_path / "buckets.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"buckets\.json"):
        PlacementStore(tmp_path).reload()


_WRITER = """
import sys
from pathlib import Path
from photostore.placement.store import PlacementStore

store = PlacementStore(Path(sys.argv[1]))
shard_map = store.reload()[0]
while True:
    if len(shard_map.shard_ids) < 6:
        shard_map = shard_map.with_shard_added(shard_map.next_shard_id)
    else:
        shard_map = shard_map.with_shard_removed(shard_map.shard_ids[-1])
    store.save(shard_map)
    print(shard_map.version, flush=True)
"""


def test_a_writer_killed_at_any_moment_leaves_a_whole_map(tmp_path: Path) -> None:
    """SIGKILL a process that saves in a loop; readers and restarts only ever see whole maps."""
    PlacementStore(tmp_path).load_or_init(_settings(tmp_path, power=14))
    reader = PlacementStore(tmp_path)
    rng = random.Random(11)
    for _ in range(3):
        with subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None
            proc.stdout.readline()  # the writer is saving
            seen, reads = 0, 0
            deadline = time.monotonic() + 0.2 + rng.random() / 10
            while time.monotonic() < deadline:  # read as often as possible while it writes
                version = reader.reload()[0].version  # never a torn file, never going back
                assert version >= seen
                seen, reads = version, reads + 1
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            acknowledged = max(int(v) for v in proc.stdout.read().split())
        assert reads > 10
        restarted = PlacementStore(tmp_path).reload()[0]
        # Everything acknowledged survives; at most the one save in flight also landed.
        assert acknowledged <= restarted.version <= acknowledged + 1
        history = PlacementStore(tmp_path).history("shards")
        assert [h.version for h in history] == list(range(1, restarted.version + 1))
    final = PlacementStore(tmp_path)
    final.save(final.shard_map.with_shard_weight(0, 2.0))
    assert not list(tmp_path.glob("*.tmp"))
