"""``photostore cost optimize``, run as the real executable on an embedded deployment whose originals
were last read at known times, with a real ``photostore serve`` process for the CPU readings."""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from photostore import ids
from photostore.cli import app
from photostore.domain import Photo, PhotoChanges, PhotoStatus, User, Variant
from photostore.metadata.port import MetadataStore
from photostore.pipeline.users import create_user
from photostore.runtime import open_runtime
from photostore.settings import load_settings
from tests.cli.test_cli import Result, cli_env, ok, photostore
from tests.support.photo_rows import jpeg_row
from tests.support.server import ServerProcess, free_port

GB = 10**9
COLD_BUCKET = "cold-0"
# pricing.json per logical GB-month: hot 3 copies x 0.023, warm 1.5 x 0.0125, cold 1.25 x 0.004
HOT, WARM, COLD = 3 * 0.023, 1.5 * 0.0125, 1.25 * 0.004
PROCESS_MONTH = 0.68 / 16 * 730  # one process = one core of a 16-core server


@dataclass(frozen=True)
class Stored:
    """(created days ago, last read days ago or None, GB, in the cold bucket)"""

    created_days: int
    read_days: int | None
    gb: int
    cold: bool = False


# Band 0 (read in the last 30 days): 1 + 2 GB; band 1 (30 to 90 days): 3 + 4 GB; band 2: 5 GB hot, 6 GB cold.
LIBRARY = (
    Stored(1, None, 1),
    Stored(200, 5, 2),
    Stored(200, 45, 3),
    Stored(60, None, 4),
    Stored(200, None, 5),
    Stored(300, None, 6, cold=True),
)
VARIANT_BYTES = GB // 4  # one thumbnail on each of the first two photos


def _photo(owner: User, spec: Stored, hot_bucket: str, now: datetime) -> Photo:
    created = now - timedelta(days=spec.created_days)
    photo_id = ids.make_id(ids.placement_key_of(owner.id), unix_ms=int(created.timestamp() * 1000))
    bucket = COLD_BUCKET if spec.cold else hot_bucket
    return jpeg_row(photo_id, owner.id, created, filename="IMG.jpg", bucket=bucket, bytes=spec.gb * GB)


async def _ready(metadata: MetadataStore, photo: Photo, variant_bytes: int) -> None:
    """What the derivative worker does: the photo ready, with its variants."""
    thumb = Variant(
        photo_id=photo.id,
        name="thumb",
        bucket=photo.bucket,
        storage_path=f"variants/{photo.id}/thumb",
        format="WEBP",
        content_type="image/webp",
        width=256,
        height=192,
        bytes=variant_bytes,
        sha256=secrets.token_hex(32),
        created_at=photo.created_at,
    )
    variants = [thumb] if variant_bytes else []
    changes = PhotoChanges(status=PhotoStatus.READY)
    await metadata.apply_photo_update("test", uuid.uuid4(), photo.id, changes, variants, [])


def _store_library(data_dir: Path) -> None:
    async def store() -> None:
        settings = load_settings(data_dir=data_dir, placement={"partition_power": 12})
        runtime = await open_runtime(settings)
        try:
            owner, _ = await create_user(runtime.metadata, "archivist")
            now = datetime.now(UTC)
            reads: dict[uuid.UUID, datetime] = {}
            for n, spec in enumerate(LIBRARY):
                photo = _photo(owner, spec, runtime.bucket_map.buckets[0], now)
                await runtime.metadata.insert_photo(photo, [])
                await _ready(runtime.metadata, photo, VARIANT_BYTES if n < 2 else 0)
                if spec.read_days is not None:
                    reads[photo.id] = now - timedelta(days=spec.read_days)
            await runtime.metadata.record_accesses(reads)
        finally:
            await runtime.close()

    asyncio.run(store())


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ServerProcess]]:
    data_dir = tmp_path_factory.mktemp("cost") / "data"
    _store_library(data_dir)
    server = ServerProcess(data_dir, env={"PHOTOSTORE_SERVER__METRICS_REFRESH_S": "0.3"}).start()
    try:
        yield data_dir, server
    finally:
        server.stop()


def _env(*urls: str, cold_bucket: str | None = COLD_BUCKET) -> dict[str, str]:
    env = {"PHOTOSTORE_AUTOSCALE__SERVICE_URLS": json.dumps(list(urls))}
    if cold_bucket is not None:
        env["PHOTOSTORE_TIERING__COLD_BUCKET"] = cold_bucket
    return env


def test_recommendations_from_the_store_and_a_live_process(
    deployment: tuple[Path, ServerProcess], tmp_path: Path
) -> None:
    data_dir, server = deployment
    dead = f"http://127.0.0.1:{free_port()}"
    chart = tmp_path / "savings.png"
    # One after the other: side by side they fight over two cores and the SQLite files, and take longer.
    measured = photostore(
        data_dir, "cost", "optimize", "--json", "--rate-window", "0.5", env=_env(server.url, dead)
    )
    stated = photostore(data_dir, "cost", "optimize", "--egress-gb", "1000", env=_env(dead))
    tiering_off = photostore(
        data_dir,
        *("cost", "optimize", "--json", "--no-metrics", "--egress-gb", "1000", "--chart", str(chart)),
        env=_env(dead, cold_bucket=None),
    )
    report = json.loads(ok(measured).stdout)

    bands = {(b["band"], b["cold"]): (b["photos"], b["bytes"]) for b in report["inputs"]["storage"]["bands"]}
    assert bands == {
        (0, False): (2, 3 * GB),
        (1, False): (2, 7 * GB),
        (2, False): (1, 5 * GB),
        (2, True): (1, 6 * GB),
    }
    assert report["inputs"]["storage"]["variant_bytes"] == 2 * VARIANT_BYTES
    by_subject = {rec["subject"]: rec for rec in report["recommendations"]}
    warm, cold = by_subject["hot->warm"], by_subject["hot->cold"]
    assert (warm["figures"]["photos"], warm["figures"]["bytes"]) == (2, 7 * GB)
    assert warm["monthly_saving"] == pytest.approx(7 * (HOT - WARM))
    assert (cold["figures"]["photos"], cold["figures"]["bytes"]) == (1, 5 * GB)
    assert cold["monthly_saving"] == pytest.approx(5 * (HOT - COLD))
    assert cold["needs"] is None
    storage = next(area for area in report["areas"] if area["kind"] == "storage")
    assert storage["monthly_now"] == pytest.approx((3 + 7 + 5 + 0.5) * HOT + 6 * COLD)

    # The one process that answers is the api (role "all"); the dead URL is left out.
    (service,) = report["inputs"]["services"]
    assert (service["service"], service["replicas"]) == ("api", 1)
    api = by_subject["api"]
    recommended = max(1, math.ceil(round(service["cpu"] / 0.6, 9)))
    assert api["figures"]["recommended_replicas"] == recommended
    assert api["monthly_saving"] == pytest.approx((1 - recommended) * PROCESS_MONTH)

    # Egress from the api's measured request rate, no CDN configured: offload 0 now.
    egress = report["inputs"]["egress"]
    rate = report["inputs"]["metrics"]["api_request_rate"]
    assert rate is not None
    assert egress["monthly_gb"] == pytest.approx(rate * 730 * 3600 * 150_000 / GB)
    assert egress["offload_now"] == 0.0
    assert by_subject["egress"]["monthly_saving"] == pytest.approx(egress["monthly_gb"] * 0.9 * (0.05 - 0.02))
    savings = sum(rec["monthly_saving"] for rec in report["recommendations"])
    assert report["totals"]["monthly_saving"] == pytest.approx(savings)
    assert report["inputs"]["pricing"]["source"].startswith("illustrative list prices")

    # As a table: no process answers, right-sizing is skipped in one line, the rest stands.
    out = ok(stated).stdout
    assert f"compute: no process answered at {dead}: right-sizing skipped" in out
    assert "move originals idle 30 days to 90 days from hot to warm" in out
    total = 1000 * 0.9 * 0.03 + 7 * (HOT - WARM) + 5 * (HOT - COLD)
    assert f"total: ${total:,.2f} a month saved" in out

    # Without tiering the cold original counts as hot, and the cold move names what it needs.
    off = json.loads(ok(tiering_off).stdout)
    cold_off = next(rec for rec in off["recommendations"] if rec["subject"] == "hot->cold")
    assert cold_off["figures"]["bytes"] == 11 * GB
    assert "tiering.cold_bucket" in cold_off["needs"]
    assert off["skipped"][0]["reason"] == "--no-metrics: right-sizing skipped"
    from PIL import Image

    with Image.open(chart) as image:
        assert image.format == "PNG"


def _in_process(tmp_path: Path, *args: str) -> Result:
    """Runs that stop before any work, in this process: a start-up each would cost a second."""
    done = CliRunner().invoke(app, ["cost", "optimize", *args], env=cli_env(tmp_path / "data"))
    return Result(args, done.exit_code, done.stdout, done.stderr)


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    missing = _in_process(tmp_path, "--no-metrics", "--pricing", str(tmp_path / "none.json"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    ratio = _in_process(tmp_path, "--no-metrics", "--cdn-offload-now", "1.5")
    assert ratio.returncode == 2
    assert "--cdn-offload-now" in ratio.stderr
    target = _in_process(tmp_path, "--no-metrics", "--target-cpu", "0")
    assert target.returncode == 2
    assert "--target-cpu must be above 0" in target.stderr
    (tmp_path / "partial.json").write_text(
        json.dumps(
            {
                "server_hour": 1,
                "cores_per_server": 16,
                "storage_gb_month": {"hot": 0.02},
                "egress_gb": 0.05,
                "cdn_gb": 0.02,
            }
        )
    )
    partial = _in_process(tmp_path, "--no-metrics", "--pricing", str(tmp_path / "partial.json"))
    assert partial.returncode == 2
    assert "no price for warm, cold" in partial.stderr


def test_help_names_every_option(tmp_path: Path) -> None:
    shown = ok(_in_process(tmp_path, "--help")).stdout
    for option in (
        "--config",
        "--pricing",
        "--json",
        "--target-cpu",
        "--egress-gb",
        "--cdn-offload-now",
        "--cdn-offload-target",
        "--no-metrics",
        "--rate-window",
        "--chart",
    ):
        assert option in shown
