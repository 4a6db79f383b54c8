"""The control file: one plan at a time, a journal that survives reopening, versions that grow."""

from __future__ import annotations

from pathlib import Path

import pytest

from photostore.errors import Conflict
from photostore.rebalance.control import ControlStore

PLAN = {"plan_id": "p1", "describe": "add a shard"}
RANGES = [(0, 100, 0, 4), (100, 200, 1, 4)]


def test_a_plan_bumps_the_version_and_a_second_is_refused(tmp_path: Path) -> None:
    control = ControlStore(tmp_path)
    assert control.version() == 0
    control.start_plan(PLAN, RANGES)
    snapshot = control.snapshot()
    assert snapshot.version == 1
    assert snapshot.plan == PLAN
    assert [(r.lo, r.hi, r.src, r.dst, r.step) for r in snapshot.ranges] == [
        (0, 100, 0, 4, "pending"),
        (100, 200, 1, 4, "pending"),
    ]
    with pytest.raises(Conflict, match="already planned"):
        control.start_plan({**PLAN, "plan_id": "p2"}, RANGES)


def test_the_journal_and_overrides_survive_reopening(tmp_path: Path) -> None:
    control = ControlStore(tmp_path)
    control.start_plan(PLAN, RANGES)
    control.record_moves([42], 0, 4, "copying")
    control.record_moves([42], 0, 4, "fenced", {42: (10, 2048)})
    control.switch_keys([42], 4, fenced_s=0.05)
    reopened = ControlStore(tmp_path)
    (move,) = reopened.moves().values()
    assert (move.key, move.step, move.rows, move.bytes, move.fenced_s) == (42, "switched", 10, 2048, 0.05)
    assert reopened.snapshot().overrides == {42: 4}
    assert reopened.version() == 2


def test_folding_drops_the_ranges_overrides_and_finishing_clears_the_plan(tmp_path: Path) -> None:
    control = ControlStore(tmp_path)
    control.start_plan(PLAN, RANGES)
    control.switch_keys([42, 150], 4, 0.01)
    control.fold_ranges([(0, 100)])
    snapshot = control.snapshot()
    assert snapshot.overrides == {150: 4}
    assert [r.step for r in snapshot.ranges] == ["folded", "pending"]
    control.finish_plan({"plan_id": "p1", "describe": "add a shard", "keys": 2, "rows": 20, "bytes": 0})
    after = control.snapshot()
    assert (after.plan, after.ranges, dict(after.overrides)) == (None, (), {})
    assert control.finished()[0]["keys"] == 2
    assert control.totals()["keys"] == 2
    control.start_plan({**PLAN, "plan_id": "p2"}, RANGES)  # the next plan may start
