"""Fleet and bill from a month's load: servers follow the measured throughput, storage its tiers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from photostore.errors import BadRequest
from photostore.ops.fleet import (
    DEFAULT_PRICING,
    DEFAULT_THROUGHPUT,
    GB,
    HOURS_PER_MONTH,
    FleetAssumptions,
    load_pricing,
    load_throughput,
    plan_fleet,
)
from photostore.ops.growth import PB, GrowthRates, StartingPoint, project


def _throughput(path: Path, uploads: float, derivatives: float, reads: float) -> Path:
    path.write_text(
        json.dumps(
            {"uploads_per_core_s": uploads, "derivatives_per_core_s": derivatives, "reads_per_core_s": reads}
        )
    )
    return path


def test_server_counts_move_with_the_measured_throughput(tmp_path: Path) -> None:
    month = project(StartingPoint(uploads_per_day=100e6, peak_qps=2e6), GrowthRates(), 0)[0]
    pricing, assume = load_pricing(DEFAULT_PRICING), FleetAssumptions()
    slow = load_throughput(_throughput(tmp_path / "slow.json", uploads=10, derivatives=4, reads=5_000))
    fast = load_throughput(_throughput(tmp_path / "fast.json", uploads=20, derivatives=16, reads=5_000))
    at_slow, at_fast = (plan_fleet(month, t, pricing, assume) for t in (slow, fast))
    peak_uploads = 100e6 / 86400 * assume.peak_to_average_uploads
    usable = pricing.cores_per_server * (1 - assume.headroom)
    assert at_slow.servers["upload"] == math.ceil(peak_uploads / (10 * usable))
    assert at_fast.servers["upload"] == math.ceil(peak_uploads / (20 * usable))  # twice as fast: about half
    assert at_fast.servers["worker"] == math.ceil(peak_uploads / (16 * usable))  # four times: about a quarter
    assert at_slow.servers["api"] == at_fast.servers["api"] == math.ceil(2e6 / (5_000 * usable))
    assert at_fast.monthly_cost["compute"] < at_slow.monthly_cost["compute"]
    assert at_fast.monthly_cost["compute"] == pytest.approx(
        at_fast.total_servers * pricing.server_hour * HOURS_PER_MONTH
    )


def test_storage_is_split_over_tiers_with_their_redundancy_and_priced() -> None:
    month = project(StartingPoint(), GrowthRates(), 0)[0]
    pricing = load_pricing(DEFAULT_PRICING)
    fleet = plan_fleet(month, load_throughput(DEFAULT_THROUGHPUT), pricing, FleetAssumptions())
    assert fleet.raw_storage_bytes == pytest.approx({"hot": 0.6 * PB, "warm": 0.75 * PB, "cold": 0.375 * PB})
    expected = sum(
        fleet.raw_storage_bytes[t] / GB * pricing.storage_gb_month[t] for t in ("hot", "warm", "cold")
    )
    assert fleet.monthly_cost["storage"] == pytest.approx(expected)
    parts = ("compute", "storage", "egress", "cdn")
    assert fleet.monthly_cost["total"] == pytest.approx(sum(fleet.monthly_cost[p] for p in parts))


def test_the_packaged_throughput_is_the_benchmarks_figures() -> None:
    figures = load_throughput(DEFAULT_THROUGHPUT)
    assert figures.uploads_per_core_s == pytest.approx(48.7 / 2)  # bench.ingest on 2 cores
    assert figures.derivatives_per_core_s == pytest.approx(15.17 / 2)  # bench.thumbnails, 2 threads


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "JSON object"),
        ("{", "not JSON"),
        (
            '{"uploads_per_core_s": "fast", "derivatives_per_core_s": 1, "reads_per_core_s": 1}',
            "must be a number",
        ),
        ('{"uploads_per_core_s": 0, "derivatives_per_core_s": 1, "reads_per_core_s": 1}', "above 0"),
    ],
)
def test_a_bad_throughput_file_says_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "throughput.json"
    path.write_text(content)
    with pytest.raises(BadRequest, match=message):
        load_throughput(path)
