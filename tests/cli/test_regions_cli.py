"""``photostore regions route|status`` and ``photostore edge``, run as the real executable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.server import free_port

PHOTOSTORE = str(Path(sys.executable).with_name("photostore"))
EXAMPLE = Path(__file__).parents[2] / "config" / "regions.example.toml"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PHOTOSTORE_")}
    env["COLUMNS"] = "200"
    return subprocess.run([PHOTOSTORE, *args], env=env, capture_output=True, text=True, timeout=60)


def test_route_sends_each_address_to_its_nearest_region() -> None:
    result = _run(
        "regions",
        "route",
        "--config",
        str(EXAMPLE),
        "--json",
        "8.8.8.8",
        "81.2.69.142",
        "202.12.27.33",
        "10.20.3.4",
        "192.168.0.1",
    )
    assert result.returncode == 0, result.stderr
    rows = {row["address"]: row for row in json.loads(result.stdout)}
    assert {address: row["region"] for address, row in rows.items()} == {
        "8.8.8.8": "us-west-2",
        "81.2.69.142": "eu-west-1",
        "202.12.27.33": "ap-southeast-1",
        "10.20.3.4": "eu-west-1",  # the example's hand-placed Frankfurt network
        "192.168.0.1": "us-west-2",  # nobody can place it: the primary
    }
    assert rows["10.20.3.4"]["lat"] == 50.11
    assert rows["192.168.0.1"]["located"] is False
    table = _run("regions", "route", "--config", str(EXAMPLE), "81.2.69.142")
    assert table.returncode == 0
    assert "eu-west-1" in table.stdout
    assert "km" in table.stdout


def test_commands_without_regions_say_what_to_set() -> None:
    for args in (("edge", "--port", str(free_port())), ("regions", "route", "8.8.8.8")):
        result = _run(*args)
        assert result.returncode == 2, result.stdout
        assert "regions.regions" in result.stderr


def test_status_names_the_edge_it_could_not_reach() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = _run("regions", "status", "--edge", url)
    assert result.returncode == 1
    assert url in result.stderr
    assert "photostore edge" in result.stderr
