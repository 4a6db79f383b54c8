"""Ingest: photos/s through ``POST /v1/photos`` beside raw obstore puts of the same bytes into the
same kind of store, made as durable as the service makes them (fsync of the file and its folder),
at the same concurrency, in one run. Reports service / raw.

The service runs with ``--role api`` (the relay and workers would run on other machines, and here
they would take CPU from the measured path); the client is a lean raw-HTTP one on keep-alive
connections so that it costs little of the 2 cores.

    .venv/bin/python -m bench.ingest [--photos 120] [--rounds 3] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import obstore
from obstore.store import LocalStore

from bench.rawhttp import post_request, run_concurrently
from bench.report import write_result
from photostore.durable import fsync_path
from photostore.imaging.samples import make_photo_jpeg
from tests.support.server import ServerProcess, create_user


def unique_variant(base: bytes, index: int, run: str) -> bytes:
    """The same JPEG with a COM segment after SOI: distinct bytes (no dedup), same decode cost."""
    text = f"photostore bench {run} {index:08d}".encode()
    segment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return base[:2] + segment + base[2:]


def _make_durable(path: str) -> None:
    fsync_path(path)
    fsync_path(os.path.dirname(path))


async def puts_per_second(count: int, concurrency: int, put: Callable[[int], Awaitable[None]]) -> float:
    """Call ``put(index)`` for indexes ``0 .. count - 1`` from ``concurrency`` workers; puts/s."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await put(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def raw_puts(root: Path, base: bytes, count: int, concurrency: int, run: str) -> float:
    store = LocalStore(prefix=root, mkdir=True)

    async def put(index: int) -> None:
        key = f"photos/2026/11/28/{run}-{index:08d}"
        await obstore.put_async(store, key, unique_variant(base, index, run))
        await asyncio.to_thread(_make_durable, str(root / key))

    return await puts_per_second(count, concurrency, put)


async def service_uploads(
    server: ServerProcess, key: str, base: bytes, count: int, concurrency: int, run: str
) -> float:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "image/jpeg"}

    def make(index: int) -> bytes:
        body = unique_variant(base, index, run)
        return post_request("127.0.0.1", server.port, "/v1/photos", body, headers)

    started = time.perf_counter()
    statuses = await run_concurrently(count, concurrency, make, "127.0.0.1", server.port)
    elapsed = time.perf_counter() - started
    if statuses.count(201) != count:
        raise RuntimeError(f"expected {count} x 201, got {sorted(set(statuses))}:\n{server.log_tail()}")
    return count / elapsed


def session_cpu_s(session_id: int) -> float:
    """CPU seconds (user + system) of every live process in a session (the server's group)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[3]) == session_id:  # field 6 of stat: the session id
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def parse_options(description: str | None, photos: int, photos_help: str) -> argparse.Namespace:
    """The command line the ingest benchmarks share; they differ only in how many photos a run is."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=photos, help=photos_help)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    return parser.parse_args()


def rate_row(path: str, runs: list[float]) -> str:
    """A results-table row: the path, its median photos/s and every run's."""
    return f"| {path} | {statistics.median(runs):.1f} | " + ", ".join(f"{v:.1f}" for v in runs) + " |"


def main() -> None:
    opts = parse_options(__doc__, photos=120, photos_help="uploads per run")

    base = make_photo_jpeg(opts.width, opts.height, seed=1)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    server = ServerProcess(
        work / "data",
        role="api",
        env={"PHOTOSTORE_LOG_LEVEL": "error", "PHOTOSTORE_RATELIMIT__ENABLED": "false"},
    ).start()
    service_runs: list[float] = []
    raw_runs: list[float] = []
    cpu = {"server": 0.0, "client": 0.0, "raw": 0.0}
    try:
        _, key = create_user(server.url, "bench")
        for round_no in range(opts.rounds):
            run = f"r{round_no}"
            assert server.process is not None
            server_before, client_before = session_cpu_s(server.process.pid), own_cpu_s()
            service_runs.append(
                asyncio.run(service_uploads(server, key, base, opts.photos, opts.concurrency, run))
            )
            cpu["server"] += session_cpu_s(server.process.pid) - server_before
            cpu["client"] += own_cpu_s() - client_before
            raw_before = own_cpu_s()
            raw_runs.append(
                asyncio.run(raw_puts(work / "raw" / "photos-0", base, opts.photos, opts.concurrency, run))
            )
            cpu["raw"] += own_cpu_s() - raw_before
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    service, raw = statistics.median(service_runs), statistics.median(raw_runs)
    uploads = opts.photos * opts.rounds
    table = "\n".join(
        [
            f"{opts.photos} distinct {opts.width}x{opts.height} JPEGs of {len(base) / 1e6:.1f} MB per run, "
            f"concurrency {opts.concurrency}, median of {opts.rounds} rounds",
            "",
            "| path | photos/s (median) | runs |",
            "|---|---:|---|",
            rate_row("POST /v1/photos (photostore, role api)", service_runs),
            rate_row("raw obstore put + fsync file and folder", raw_runs),
            "",
            "| ratio | value | goal |",
            "|---|---:|---|",
            f"| service / raw put | {service / raw:.3f} | >= 0.8 |",
            "",
            "CPU per photo (user + system, all rounds): "
            f"server {cpu['server'] / uploads * 1e3:.1f} ms + load client "
            f"{cpu['client'] / uploads * 1e3:.1f} ms "
            f"for an upload, {cpu['raw'] / uploads * 1e3:.1f} ms for a raw put "
            f"(on {os.cpu_count()} cores).",
        ]
    )
    print(table)
    write_result("ingest", table)


if __name__ == "__main__":
    main()
