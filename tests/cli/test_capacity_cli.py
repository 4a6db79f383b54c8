"""``photostore capacity plan``, run as the real executable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PHOTOSTORE = str(Path(sys.executable).with_name("photostore"))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PHOTOSTORE_")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [PHOTOSTORE, "capacity", "plan", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_plan_reproduces_the_specs_growth_and_says_when_targets_are_reached() -> None:
    result = _run("--months", "12", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [row["month"] for row in plan["months"]] == list(range(13))
    assert plan["months"][12]["users"] == pytest.approx(12e6)
    assert plan["months"][12]["storage_bytes"] == pytest.approx(1.5e15)
    assert plan["years_to_targets"]["users"] == pytest.approx(25.26, abs=0.01)
    assert plan["years_to_targets"]["storage"] == pytest.approx(11.36, abs=0.01)
    table = _run("--months", "24", "--every", "12")
    assert table.returncode == 0
    assert "12,000,000" in table.stdout
    assert "1.50 PB" in table.stdout
    assert "in 25.3 years" in table.stdout


def test_a_bad_history_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = _run("--history", str(tmp_path / "none.csv"))
    assert missing.returncode == 2
    assert "cannot read history" in missing.stderr


def test_the_chart_renders_as_a_png(tmp_path: Path) -> None:
    from PIL import Image

    chart = tmp_path / "plan.png"
    result = _run("--months", "36", "--chart", str(chart))
    assert result.returncode == 0, result.stderr
    with Image.open(chart) as image:
        assert image.format == "PNG"
        assert image.size[0] > 800
        assert image.size[1] > 500
    plan = json.loads(_run("--months", "1", "--json").stdout)
    assert plan["months"][0]["servers"]["upload"] >= 1
    assert plan["at_targets"]["users"]["month"] == 304  # ceil(25.26 years x 12)
    assert plan["at_targets"]["users"]["servers"] > plan["months"][0]["servers"]["upload"]


def test_record_appends_the_deployments_own_figures_and_the_plan_grows_from_them(tmp_path: Path) -> None:
    import csv
    from datetime import datetime, timedelta

    import httpx

    from tests.support.images import jpeg
    from tests.support.server import ServerProcess, create_user

    server = ServerProcess(tmp_path / "data").start()
    try:
        env = {
            **server._environment(),
            "PHOTOSTORE_AUTOSCALE__SERVICE_URLS": json.dumps([server.url]),
            "COLUMNS": "200",
        }
        history = tmp_path / "history.csv"

        def record(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [PHOTOSTORE, "capacity", "record", str(history), "--rate-window", "0.5", *extra],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )

        uploaded = []
        for n, name in enumerate(("ann", "ben")):
            _, key = create_user(server.url, name)
            data = jpeg(64, 48, seed=n)
            response = httpx.post(
                f"{server.url}/v1/photos",
                files={"file": ("a.jpg", data, "image/jpeg")},
                headers={"authorization": f"Bearer {key}"},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            uploaded.append(len(data))
            done = record()
            assert done.returncode == 0, done.stderr
            assert f"{n + 1:,} users" in done.stdout
    finally:
        server.stop()

    with history.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(r["users"]), int(r["storage"])) for r in rows] == [(1, uploaded[0]), (2, sum(uploaded))]
    assert all(float(r["requests"]) > 0 for r in rows)  # the api answered the scrapes themselves

    # Seconds apart: no yearly rate can be fitted yet, and the plan says so.
    too_short = _run("--history", str(history))
    assert too_short.returncode == 2
    assert "1 day apart" in too_short.stderr
    # As if the first row had been recorded a year earlier, at the same request rate (a rate read
    # over half a second is noise): the plan starts from the last row, users doubling a year.
    first = datetime.fromisoformat(rows[0]["timestamp"]) - timedelta(days=365.25)
    lines = history.read_text().splitlines()
    lines[1] = ",".join([first.isoformat(), *lines[1].split(",")[1:3], "10"])
    lines[2] = ",".join([*lines[2].split(",")[:3], "10"])
    history.write_text("\n".join(lines) + "\n")
    planned = _run("--history", str(history), "--months", "1", "--json")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["start"]["users"] == 2
    assert plan["start"]["storage_bytes"] == sum(uploaded)
    assert plan["rates"]["users"] == pytest.approx(1.0, abs=0.01)  # doubling in a year
    assert plan["rates"]["requests"] == pytest.approx(0.0, abs=1e-9)

    # Doubling in two days is noise, not a plan: refused with what to do.
    lines[1] = ",".join([(first + timedelta(days=363.25)).isoformat(), *lines[1].split(",")[1:]])
    history.write_text("\n".join(lines) + "\n")
    noisy = _run("--history", str(history), "--json")
    assert noisy.returncode == 2
    assert "beyond any plan" in noisy.stderr
