"""Three regions on loopback for tests: region settings, client addresses per continent, the edge.

The regions are the spec's kind: us-west-2 (primary, with the primary databases), eu-west-1 and
ap-southeast-1 (secondaries that read from their own streaming replicas). Every process gets the
same region table as JSON in ``PHOTOSTORE_REGIONS__REGIONS``; each region's processes also get
``PHOTOSTORE_REGIONS__LOCAL``. Client addresses are real public addresses that the packaged
GeoLite2 database places on the right continent (checked by tests/unit/regions/test_geo.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.server import PHOTOSTORE, free_port, stop_group


@dataclass(frozen=True)
class RegionSpec:
    name: str
    lat: float
    lon: float
    role: str = "secondary"


US_WEST = RegionSpec("us-west-2", 45.52, -122.68, "primary")  # Oregon
EU_WEST = RegionSpec("eu-west-1", 53.35, -6.26)  # Dublin
AP_SOUTHEAST = RegionSpec("ap-southeast-1", 1.29, 103.85)  # Singapore
REGIONS = (US_WEST, EU_WEST, AP_SOUTHEAST)

NORTH_AMERICA_CLIENT = "8.8.8.8"  # GeoLite2: United States (37.75, -97.82)
EUROPE_CLIENT = "81.2.69.142"  # GeoLite2: London
ASIA_CLIENT = "202.12.27.33"  # GeoLite2: Tokyo
LOOPBACK_PROXIES = '["127.0.0.0/8"]'


def regions_json(ports: Mapping[str, int], replicas: Mapping[str, Sequence[str]] | None = None) -> str:
    """The region table: each region's API on 127.0.0.1:<port>, its replica DSN templates."""
    table = []
    for region in REGIONS:
        entry: dict[str, object] = {
            "name": region.name,
            "lat": region.lat,
            "lon": region.lon,
            "role": region.role,
            "api_endpoints": [f"http://127.0.0.1:{ports[region.name]}"],
        }
        if replicas and replicas.get(region.name):
            entry["replica_dsn_templates"] = list(replicas[region.name])
        table.append(entry)
    return json.dumps(table)


def edge_env(ports: Mapping[str, int], **extra: str) -> dict[str, str]:
    return {
        "PHOTOSTORE_REGIONS__REGIONS": regions_json(ports),
        "PHOTOSTORE_GEO__TRUSTED_PROXIES": LOOPBACK_PROXIES,
        "PHOTOSTORE_EDGE__HEALTH__PROBE_INTERVAL_S": "0.2",
        "PHOTOSTORE_EDGE__HEALTH__PROBE_TIMEOUT_S": "0.5",
        "PHOTOSTORE_EDGE__HEALTH__FALL": "2",
        "PHOTOSTORE_EDGE__HEALTH__RISE": "2",
        "PHOTOSTORE_LOG_LEVEL": "warning",
        **extra,
    }


@dataclass
class EdgeProcess:
    """One ``photostore edge`` process on a free loopback port."""

    folder: Path
    env: Mapping[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / f"edge-{self.port}.log"

    def start(self, timeout_s: float = 30.0) -> EdgeProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOSTORE_")}
        env.update(self.env)
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [PHOTOSTORE, "edge", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"edge exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/edge/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"edge not up after {timeout_s}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        stop_group(self.process)


def as_client(address: str) -> dict[str, str]:
    """Headers that make a request from loopback count as one from ``address`` (loopback is trusted)."""
    return {"x-forwarded-for": address}


def wait_until_healthy(edge_url: str, names: Sequence[str], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    state: dict[str, bool] = {}
    while time.monotonic() < deadline:
        body = httpx.get(f"{edge_url}/edge/regions", timeout=2).json()
        state = {region["name"]: region["healthy"] for region in body["regions"]}
        if all(state.get(name) for name in names):
            return
        time.sleep(0.05)
    raise AssertionError(f"regions {list(names)} not all healthy after {timeout_s}s: {state}")
