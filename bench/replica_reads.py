"""Replica reads: metadata reads/s of one shard with its primary alone, with 1 and with 2 streaming
replicas, the same read workload side by side in one run (configurations alternate per round).

A private PostgreSQL primary (tests/support/engines/postgres.py; the system server refuses
replication) gets one shard database with ``--users`` users and ``--photos`` photos (COPY); two hot
standbys stream from it. Each configuration is a ``SqlMetadataStore`` with a ``ReadRouter`` (round
robin over the healthy replicas; with none, every read goes to the primary); ``--concurrency`` tasks
read for ``--seconds``: half ``get_photo`` of a random photo, half ``list_photos(owner, 21)`` of a
random user. No writes, so read-your-writes never sends a read to the primary. Reports reads/s
(median of rounds) and 2 replicas / 1 replica, with CPU use of the client and the PostgreSQL servers.

    .venv/bin/python -m bench.replica_reads [--rounds 3] [--seconds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import asyncpg

from bench.ingest import own_cpu_s
from bench.report import write_result
from photostore.ids import make_id, new_user_id, placement_key_of
from photostore.metadata.engines import build_postgres_engine
from photostore.metadata.replicas import ReadRouter, ReplicaSet
from photostore.metadata.selectors import make_selector
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.settings import PoolSettings
from tests.support.engines.postgres import (
    PgServer,
    Postmaster,
    execute,
    private_postmaster,
    run_async,
    streaming_replica,
    wait_for_replay,
)

DATABASE = "bench_shard_0"
CONFIGS = ("primary only", "1 replica", "2 replicas")


async def load(server: PgServer, users: int, photos: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Migrate the shard, COPY users and photos; (owner, photo id) of every photo."""
    store = SqlMetadataStore({0: build_postgres_engine(server.dsn(DATABASE), PoolSettings())}, lambda _k: 0)
    await store.start()
    await store.close()
    now = datetime.now(UTC)
    owners = [new_user_id() for _ in range(users)]
    start_ms = int(time.time() * 1000) - photos * 1000
    pairs, records = [], []
    for i in range(photos):
        owner = owners[i % users]
        photo_id = make_id(placement_key_of(owner), start_ms + i * 1000)
        pairs.append((owner, photo_id))
        names = (f"IMG_{i:06d}.jpg", "photos-0", f"photos/{photo_id}", f"{i:064x}")
        records.append(
            (photo_id, owner, *names, 4_300_000, "jpeg", "image/jpeg", 4000, 3000, now, "ready", now, now)
        )
    conn = await asyncpg.connect(**server.connect_args(DATABASE))
    try:
        user_rows = [(owner, f"user {n}", now) for n, owner in enumerate(owners)]
        await conn.copy_records_to_table("users", records=user_rows, columns=["id", "name", "created_at"])
        columns = "id user_id filename bucket storage_path sha256 bytes format content_type width height"
        columns += " taken_at status created_at updated_at"
        await conn.copy_records_to_table("photos", records=records, columns=columns.split())
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return pairs


def open_store(primary: PgServer, replicas: Sequence[PgServer]) -> SqlMetadataStore:
    pool = PoolSettings(max_open_conns=20, max_idle_conns=20)
    engine = build_postgres_engine(primary.dsn(DATABASE), pool)
    replica_engines = [build_postgres_engine(r.dsn(DATABASE), pool) for r in replicas]
    replica_set = ReplicaSet(0, engine, replica_engines, make_selector("round_robin"), check_interval_s=1.0)
    return SqlMetadataStore({0: engine}, lambda _k: 0, reads=ReadRouter([replica_set], read_your_writes_s=0))


async def read_for(
    store: SqlMetadataStore, pairs: list[tuple[uuid.UUID, uuid.UUID]], seconds: float, concurrency: int
) -> tuple[float, dict[tuple[str, str], int]]:
    """Reads/s of ``concurrency`` tasks for ``seconds``, and the reads each server served."""
    owners = sorted({owner for owner, _ in pairs})
    before = {(stat.role, stat.target): stat.reads for stat in store.replica_stats()}
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker(seed: int) -> None:
        nonlocal count
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            if rng.random() < 0.5:
                owner, photo_id = rng.choice(pairs)
                if await store.get_photo(owner, photo_id) is None:
                    raise RuntimeError(f"photo {photo_id} not found")
            else:
                await store.list_photos(rng.choice(owners), 21)
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    served: dict[tuple[str, str], int] = {
        (stat.role, stat.target): stat.reads - before.get((stat.role, stat.target), 0)
        for stat in store.replica_stats()
    }
    return count / elapsed, served


def servers_cpu_s(postmasters: Sequence[Postmaster]) -> float:
    """CPU seconds of our PostgreSQL servers: each postmaster and its children (backends, WAL
    sender and receiver, startup process), not the system server's."""
    roots = {int((p.data_dir / "postmaster.pid").read_text().split()[0]) for p in postmasters}
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) in roots or int(fields[1]) in roots:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def run_config(
    primary: PgServer,
    replicas: Sequence[PgServer],
    postmasters: Sequence[Postmaster],
    pairs: list[tuple[uuid.UUID, uuid.UUID]],
    seconds: float,
    concurrency: int,
) -> tuple[float, dict[tuple[str, str], int], float, float]:
    """(reads/s, reads per server, client CPU s, PostgreSQL CPU s) of one configuration, one round."""
    store = open_store(primary, replicas)
    await store.start()
    try:
        await read_for(store, pairs, 1.0, concurrency)  # warm-up: pools, health checks, caches
        if replicas and not all(s.healthy for s in store.replica_stats() if s.role != "primary"):
            raise RuntimeError(f"replicas not healthy: {store.replica_stats()}")
        client, pg = own_cpu_s(), servers_cpu_s(postmasters)
        rate, served = await read_for(store, pairs, seconds, concurrency)
        return rate, served, own_cpu_s() - client, servers_cpu_s(postmasters) - pg
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured reading per config and round")
    parser.add_argument("--concurrency", type=int, default=16)
    opts = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the servers started below are stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
    cpu: dict[str, list[float]] = {name: [0.0, 0.0, 0.0] for name in CONFIGS}  # client, pg, seconds
    shares: dict[str, list[float]] = {name: [] for name in CONFIGS}
    reads = dict.fromkeys(CONFIGS, 0.0)
    with ExitStack() as stack:
        primary_pm = stack.enter_context(private_postmaster())
        primary = primary_pm.server
        run_async(lambda: execute(primary, f'CREATE DATABASE "{DATABASE}"'))
        pairs = run_async(lambda: load(primary, opts.users, opts.photos))
        replica_pms = [stack.enter_context(streaming_replica(primary)) for _ in range(2)]
        replicas = [pm.server for pm in replica_pms]
        postmasters = [primary_pm, *replica_pms]
        for replica in replicas:
            wait_for_replay(primary, replica, timeout_s=60)
        for _ in range(opts.rounds):
            for n, name in enumerate(CONFIGS):
                config = partial(
                    run_config, primary, replicas[:n], postmasters, pairs, opts.seconds, opts.concurrency
                )
                rate, served, client_s, pg_s = run_async(config)
                rates[name].append(rate)
                cpu[name][0] += client_s
                cpu[name][1] += pg_s
                cpu[name][2] += opts.seconds
                reads[name] += rate * opts.seconds
                primary_reads = sum(v for (role, _), v in served.items() if role == "primary")
                # Without replicas there are no per-server counts: every read is the primary's.
                shares[name].append(primary_reads / sum(served.values()) if served else 1.0)

    median = {name: statistics.median(rates[name]) for name in CONFIGS}
    lines = [
        f"One shard: {opts.users:,} users, {opts.photos:,} photos on a private PostgreSQL 15 primary; "
        f"concurrency {opts.concurrency}, {opts.seconds:g} s per configuration and round, "
        f"median of {opts.rounds} alternating rounds; reads: 1/2 get_photo, 1/2 list_photos(owner, 21)",
        "",
        "| configuration | reads/s (median) | runs | reads served by the primary "
        "| client CPU: cores, ms per read | PostgreSQL CPU: cores, ms per read |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name in CONFIGS:
        client_s, pg_s, wall = cpu[name]
        lines.append(
            f"| {name} | {median[name]:,.0f} | "
            + ", ".join(f"{v:,.0f}" for v in rates[name])
            + f" | {statistics.median(shares[name]) * 100:.0f} %"
            + f" | {client_s / wall:.2f}, {client_s / reads[name] * 1e3:.2f} ms"
            + f" | {pg_s / wall:.2f}, {pg_s / reads[name] * 1e3:.2f} ms |"
        )
    lines += [
        "",
        "| ratio | value |",
        "|---|---:|",
        f"| 2 replicas / 1 replica | {median['2 replicas'] / median['1 replica']:.3f} |",
        f"| 1 replica / primary only | {median['1 replica'] / median['primary only']:.3f} |",
        f"| 2 replicas / primary only | {median['2 replicas'] / median['primary only']:.3f} |",
    ]
    table = "\n".join(lines)
    print(table)
    write_result("replica_reads", table)


if __name__ == "__main__":
    main()
