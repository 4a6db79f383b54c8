"""The edge's cost: cached ``thumb`` GETs per second straight to a region, and through the edge.

One embedded service is the only region; an edge sits in front of it, proxying (the default) or
answering byte reads with a 307 to the region. wrk drives all three in one run, in alternating
rounds, from one client address placed by GeoLite2 (``X-Forwarded-For``, the edge trusts
loopback). Reports proxied / direct, the share of a region's throughput left after the extra hop
on the same 2 cores, and the rate of 307 answers, which is the edge's own routing work.

    .venv/bin/python -m bench.edge [--seconds 10] [--rounds 3] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

from bench.report import write_result
from bench.serving import wrk
from photostore.imaging.samples import make_photo_jpeg
from tests.support.regions import EUROPE_CLIENT, EdgeProcess
from tests.support.server import ServerProcess, create_user, wait_ready_photo


def _edge_env(region_url: str, byte_reads: str) -> dict[str, str]:
    region = {
        "name": "eu-west-1",
        "lat": 53.35,
        "lon": -6.26,
        "role": "primary",
        "api_endpoints": [region_url],
    }
    return {
        "PHOTOSTORE_REGIONS__REGIONS": json.dumps([region]),
        "PHOTOSTORE_GEO__TRUSTED_PROXIES": '["127.0.0.0/8"]',
        "PHOTOSTORE_EDGE__BYTE_READS": byte_reads,
        "PHOTOSTORE_LOG_LEVEL": "error",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    opts = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk: apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    service = ServerProcess(
        work / "data", env={"PHOTOSTORE_LOG_LEVEL": "error", "PHOTOSTORE_RATELIMIT__ENABLED": "false"}
    ).start()
    proxying = EdgeProcess(work / "edge-proxy", _edge_env(service.url, "proxy"))
    redirecting = EdgeProcess(work / "edge-redirect", _edge_env(service.url, "redirect"))
    try:
        proxying.start()
        redirecting.start()
        _, key = create_user(service.url, "bench")
        with httpx.Client(base_url=service.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as c:
            photo = c.post("/v1/photos", content=make_photo_jpeg(2000, 1500, seed=3)).json()
            wait_ready_photo(c, photo["id"])
        path = f"/v1/photos/{photo['id']}/variants/thumb"
        keyed = {"authorization": f"Bearer {key}", "x-forwarded-for": EUROPE_CLIENT}
        # A 307 goes only to reads without credentials (a keyed read is proxied: see regions/edge.py).
        unkeyed = {"x-forwarded-for": EUROPE_CLIENT}
        targets = {
            "direct to the region": (service.url, keyed),
            "through the edge (proxy)": (proxying.url, keyed),
            "edge answering 307 (redirect, no key)": (redirecting.url, unkeyed),
        }
        for base, headers in targets.values():  # warm caches and connection pools
            wrk(f"{base}{path}", 2, opts.connections, headers)
        runs: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(opts.rounds):
            for name, (base, headers) in targets.items():
                runs[name].append(wrk(f"{base}{path}", opts.seconds, opts.connections, headers))
    finally:
        proxying.stop()
        redirecting.stop()
        service.stop()
        shutil.rmtree(work, ignore_errors=True)

    med = {name: statistics.median(values) for name, values in runs.items()}
    direct, proxied = med["direct to the region"], med["through the edge (proxy)"]
    rows = [f"| {name} | {med[name]:,.0f} | {', '.join(f'{v:,.0f}' for v in runs[name])} |" for name in runs]
    table = "\n".join(
        [
            f"wrk -t2 -c{opts.connections} -d{opts.seconds}s; one process each; "
            f"median of {opts.rounds} rounds",
            "",
            "| path | req/s (median) | runs |",
            "|---|---:|---|",
            *rows,
            "",
            "| ratio | value |",
            "|---|---:|",
            f"| proxied / direct | {proxied / direct:.3f} |",
        ]
    )
    print(table)
    write_result("edge", table)


if __name__ == "__main__":
    main()
