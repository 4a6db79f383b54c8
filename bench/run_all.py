"""Run every benchmark in turn (each prints its table and keeps it in bench/results/)."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    "bench.ring",
    "bench.thumbnails",
    "bench.ingest",
    "bench.serving",
    "bench.cluster_ingest",
    "bench.timeline",
    "bench.replica_reads",
    "bench.rebalance",
    "bench.regions",
    "bench.access",
)


def main() -> None:
    for module in BENCHMARKS:
        print(f"\n## {module}\n", flush=True)
        subprocess.run([sys.executable, "-m", module], check=True)


if __name__ == "__main__":
    main()
