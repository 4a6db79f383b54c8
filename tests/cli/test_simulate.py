"""``photostore simulate placement``, run as the real executable: table, JSON, chart, help and refusals."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import ok, photostore, photostore_many, tables

SMALL = (
    "simulate",
    "placement",
    "--users",
    "1000000",
    "--shards",
    "16",
    "--buckets",
    "8",
    "--sample",
    "4000",
)
TITLE = "placement of 1,000,000 users on 16 shards and 8 buckets"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_prints_the_table_and_needs_no_settings_or_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # A broken setting stops every service command; the simulation reads no settings at all.
    result = ok(photostore(data_dir, *SMALL, env={"PHOTOSTORE_SERVER__PORT": "notaport"}))
    rows = {row[0]: row[1:] for row in tables(result.stdout)[TITLE]}
    assert rows["users"] == ["4,000", "1,000,000"]
    for label in ("per shard: users, max/mean", "per shard: rows and bytes, max/mean"):
        assert all(float(value) >= 1.0 for value in rows[label]), rows[label]
    assert "per bucket: objects and bytes, max/mean" in rows
    assert "add shard 16: users moved" in rows
    assert "users moved / ideal 1/17" in rows
    assert "simulated in" in result.stderr
    assert not data_dir.exists()


def test_json_has_the_figures(tmp_path: Path) -> None:
    data = json.loads(ok(photostore(tmp_path / "data", *SMALL, "--json", "--seed", "3")).stdout)
    assert data["params"] == {
        "users": 1_000_000,
        "shards": 16,
        "buckets": 8,
        "sample": 4_000,
        "zipf": 1.1,
        "max_photos": 100_000,
        "mean_photo_bytes": 3_000_000,
        "seed": 3,
        "partition_power": 16,
    }
    for kind in ("users", "rows", "bytes"):
        assert data["shards"][kind]["max_over_mean"] >= 1.0
        assert data["shards"][kind]["sample_max_over_mean"] >= 1.0
    for kind in ("objects", "bytes"):
        assert data["buckets"][kind]["max_over_mean"] >= 1.0
    moves = data["add_shard"]
    assert moves["shard_id"] == 16
    assert moves["only_to_new_shard"] is True
    assert 0.5 < moves["users_over_ideal"] < 1.5
    assert data["estimate"]["users"] == 1_000_000
    assert data["estimate"]["bytes"] == data["estimate"]["photos"] * 3_000_000


def test_chart_writes_a_png(tmp_path: Path) -> None:
    chart = tmp_path / "placement.png"
    result = ok(photostore(tmp_path / "data", *SMALL, "--chart", str(chart)))
    assert TITLE in result.stdout
    assert f"chart written to {chart}" in result.stderr
    data = chart.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000  # four panels of lines and text, not an empty image


def test_help_and_refusals(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    help_text, group_help, sample_too_big, no_shards, bad_zipf, bad_chart = photostore_many(
        data_dir,
        [
            ["simulate", "placement", "--help"],
            ["simulate", "--help"],
            [*SMALL[:-1], "2000000"],
            [*SMALL, "--shards", "0"],
            [*SMALL, "--zipf", "steep"],
            [*SMALL, "--chart", str(tmp_path / "missing" / "chart.png")],
        ],
    )
    for option in ("--users", "--shards", "--buckets", "--sample", "--zipf", "--mean-photo-bytes", "--seed"):
        assert option in ok(help_text).stdout
    assert "--chart" in help_text.stdout
    assert "--json" in help_text.stdout
    assert "Load per shard and bucket" in help_text.stdout
    assert "placement" in ok(group_help).stdout
    for result, text in (
        (sample_too_big, "sample (2000000) cannot exceed users (1000000)"),
        (no_shards, "shards must be 1 .."),
        (bad_zipf, "Invalid value for '--zipf'"),
    ):
        assert result.returncode == 2, str(result)
        assert text in result.stderr, str(result)
        assert result.stdout == "", str(result)
    assert bad_chart.returncode == 1, str(bad_chart)
    assert "cannot write the chart" in bad_chart.stderr, str(bad_chart)
    assert not data_dir.exists()
