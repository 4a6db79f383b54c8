"""Cluster ingest: photos/s through ``POST /v1/photos`` of a service in cluster mode (metadata on
PostgreSQL, blobs on SeaweedFS S3, events and cache the local cluster's) beside raw obstore S3 puts
of the same bytes to the same SeaweedFS at the same concurrency, alternating rounds, in one run.
Reports service / raw (goal >= 0.8).

The cluster is ``photostore cluster up`` (tests/support/cluster.py) with a private tenant (own shard
databases and buckets, dropped at the end); the service runs with ``--role api``. The raw path puts
with ``obstore.store.S3Store`` + ``obstore.put_async`` into one of the tenant's buckets, with the
endpoint and credentials from the cluster's settings file. CPU per photo is counted for the server,
the load client, SeaweedFS and the PostgreSQL server processes.

    .venv/bin/python -m bench.cluster_ingest [--photos 60] [--rounds 3] [--concurrency 8]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path

import obstore
from obstore.store import S3Store

from bench.ingest import (
    own_cpu_s,
    parse_options,
    puts_per_second,
    rate_row,
    service_uploads,
    session_cpu_s,
    unique_variant,
)
from bench.report import write_result
from photostore.imaging.samples import make_photo_jpeg
from photostore.settings import load_settings
from tests.support.cluster import local_cluster, tenant_of
from tests.support.server import ServerProcess, create_user


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of one process, all its threads."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_s(database_prefix: str) -> float:
    """CPU seconds of the live PostgreSQL backends serving databases named ``database_prefix...``
    (titled ``postgres: [15/main:] user database host ...``); other sessions' backends are not counted."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            if text.split("(", 1)[1].rsplit(")", 1)[0] != "postgres":
                continue
            title = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        words = title.split()  # "postgres: [cluster name:] user database host(port) state"
        if words[:1] == ["postgres:"] and any(word.startswith(database_prefix) for word in words[1:4]):
            fields = text.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def s3_store(settings_file: Path, bucket: str) -> S3Store:
    endpoint = load_settings(settings_file).blobs.s3.endpoints[0]
    return S3Store(
        bucket,
        endpoint=endpoint.url,
        region=endpoint.region,
        access_key_id=endpoint.access_key_id,
        secret_access_key=endpoint.secret_access_key.get_secret_value(),
        virtual_hosted_style_request=False,
        client_options={"allow_http": endpoint.allow_http},
    )


async def raw_puts(store: S3Store, base: bytes, count: int, concurrency: int, run: str) -> float:
    async def put(index: int) -> None:
        key = f"bench-raw/2026/11/28/{run}-{index:08d}"
        await obstore.put_async(store, key, unique_variant(base, index, run))

    return await puts_per_second(count, concurrency, put)


def main() -> None:
    opts = parse_options(__doc__, photos=60, photos_help="uploads per round and path")
    # SIGTERM unwinds like Ctrl-C, so the servers started below are stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    base = make_photo_jpeg(opts.width, opts.height, seed=1)
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-ingest-"))
    service_runs: list[float] = []
    raw_runs: list[float] = []
    cpu = dict.fromkeys(("server", "client", "weed_service", "pg_service", "raw", "weed_raw"), 0.0)
    try:
        with local_cluster(work / "cluster") as state:
            weed_pid = next(p.pid for p in state.processes if p.name.lower().startswith(("weed", "seaweed")))
            tenant = tenant_of(state)
            server = ServerProcess(
                work / "data",
                role="api",
                env={"PHOTOSTORE_LOG_LEVEL": "error", "PHOTOSTORE_RATELIMIT__ENABLED": "false"},
                tenant=tenant,
            )
            try:
                server.start(timeout_s=60)
                assert server.process is not None
                _, key = create_user(server.url, "bench")
                store = s3_store(state.settings_file, f"{tenant.bucket_prefix}0")
                # Warm-up, not measured: pools, connections and the buckets' first volumes.
                warm = opts.concurrency * 2
                asyncio.run(service_uploads(server, key, base, warm, opts.concurrency, "warm"))
                asyncio.run(raw_puts(store, base, warm, opts.concurrency, "warm"))
                for round_no in range(opts.rounds):
                    run = f"r{round_no}"
                    before = (
                        session_cpu_s(server.process.pid),
                        own_cpu_s(),
                        process_cpu_s(weed_pid),
                        postgres_cpu_s(f"ps_{tenant.token}_"),
                    )
                    service_runs.append(
                        asyncio.run(service_uploads(server, key, base, opts.photos, opts.concurrency, run))
                    )
                    cpu["server"] += session_cpu_s(server.process.pid) - before[0]
                    cpu["client"] += own_cpu_s() - before[1]
                    cpu["weed_service"] += process_cpu_s(weed_pid) - before[2]
                    cpu["pg_service"] += postgres_cpu_s(f"ps_{tenant.token}_") - before[3]
                    raw_before = own_cpu_s(), process_cpu_s(weed_pid)
                    raw_runs.append(asyncio.run(raw_puts(store, base, opts.photos, opts.concurrency, run)))
                    cpu["raw"] += own_cpu_s() - raw_before[0]
                    cpu["weed_raw"] += process_cpu_s(weed_pid) - raw_before[1]
            finally:
                server.stop()
                tenant.drop_databases()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    service, raw = statistics.median(service_runs), statistics.median(raw_runs)
    n = opts.photos * opts.rounds

    def ms(seconds: float) -> str:
        return f"{seconds / n * 1e3:.1f} ms"

    table = "\n".join(
        [
            f"{opts.photos} distinct {opts.width}x{opts.height} JPEGs of {len(base) / 1e6:.1f} MB per round "
            f"and path, concurrency {opts.concurrency}, median of {opts.rounds} alternating rounds, "
            "one local cluster (SeaweedFS S3 + PostgreSQL)",
            "",
            "| path | photos/s (median) | runs |",
            "|---|---:|---|",
            rate_row("POST /v1/photos (photostore, cluster mode, role api)", service_runs),
            rate_row("raw obstore S3Store put_async, same SeaweedFS", raw_runs),
            "",
            "| ratio | value | goal |",
            "|---|---:|---|",
            f"| service / raw S3 put | {service / raw:.3f} | >= 0.8 |",
            "",
            "CPU per photo (user + system, all rounds; PostgreSQL: this tenant's backends): "
            f"an upload costs server {ms(cpu['server'])} + "
            f"load client {ms(cpu['client'])} + SeaweedFS {ms(cpu['weed_service'])} + PostgreSQL backends "
            f"{ms(cpu['pg_service'])}; a raw put costs client {ms(cpu['raw'])} + SeaweedFS "
            f"{ms(cpu['weed_raw'])} (on {os.cpu_count()} cores).",
        ]
    )
    print(table)
    write_result("cluster_ingest", table)


if __name__ == "__main__":
    main()
