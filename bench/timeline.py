"""Timeline page: one 100-photo page of a user with 100,000 photos, at several keyset depths.

Side by side in one run, alternating per depth and round, on one PostgreSQL shard database:

- ``SqlMetadataStore.list_photos(owner, 101, before)``: the MetadataStore call the API makes;
- the same statement through raw asyncpg (prepared once, same columns, no row mapping);
- ``GET /v1/photos?limit=100&cursor=...`` through a running service (``--role api``) on the same
  database, with a raw keep-alive HTTP client.

Reports p50 latencies and store / asyncpg (goal <= 1.5). The shard is a throwaway database on the
system PostgreSQL (dropped at the end); the service creates and migrates it (one shard), the user is
created over HTTP and its photos are loaded with COPY, ids from ``make_id(placement_key, unix_ms)``.

    .venv/bin/python -m bench.timeline [--photos 100000] [--rounds 5] [--calls 40]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.rawhttp import KeepAliveConnection
from bench.report import write_result
from photostore.ids import make_id, placement_key_of
from photostore.metadata.engines import build_postgres_engine
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.settings import PoolSettings
from tests.support.engines.postgres import SYSTEM, drop_databases
from tests.support.server import ServerProcess, create_user

PAGE = 100
COLUMNS = (
    "id, user_id, filename, bucket, storage_path, sha256, bytes, format, content_type, width, height, "
    "taken_at, exif, placeholder, status, created_at, updated_at, deleted_at, idempotency_key"
)
RAW_SQL = (
    f"SELECT {COLUMNS} FROM photos WHERE user_id = $1 AND id < $2 AND deleted_at IS NULL "
    "ORDER BY id DESC LIMIT $3"
)
RAW_SQL_FIRST = (
    f"SELECT {COLUMNS} FROM photos WHERE user_id = $1 AND deleted_at IS NULL ORDER BY id DESC LIMIT $2"
)


async def load_photos(dsn: str, owner: uuid.UUID, count: int) -> list[uuid.UUID]:
    """COPY ``count`` live photos of ``owner`` (one a second, ending now); their ids, newest first."""
    key = placement_key_of(owner)
    start_ms = int(time.time() * 1000) - count * 1000
    now = datetime.now(UTC)
    records = []
    ids = []
    for i in range(count):
        ms = start_ms + i * 1000
        photo_id = make_id(key, ms)
        ids.append(photo_id)
        taken = datetime.fromtimestamp(ms / 1000, tz=UTC)
        records.append(
            (
                photo_id,
                owner,
                f"IMG_{i:06d}.jpg",
                "photos-0",
                f"photos/{taken:%Y/%m/%d}/{photo_id}",
                f"{i:064x}",
                4_300_000 + i % 1000,
                "jpeg",
                "image/jpeg",
                4000,
                3000,
                taken,
                None,
                "LEHV6nWB2yk8pyo0adR*.7kCMdnj",
                "ready",
                taken,
                now,
                None,
                None,
            )
        )
    conn = await asyncpg.connect(dsn)
    try:
        columns = [c.strip() for c in COLUMNS.split(",")]
        await conn.copy_records_to_table("photos", records=records, columns=columns)
        await conn.execute("ANALYZE photos")
    finally:
        await conn.close()
    return ids[::-1]


def cursor_of(photo_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(photo_id.bytes).decode().rstrip("=")


class Paths:
    """The three ways to get one page, each returning a count to check."""

    def __init__(
        self, store: SqlMetadataStore, raw: asyncpg.Connection, http: KeepAliveConnection, owner: uuid.UUID
    ) -> None:
        self.store, self.raw, self.http, self.owner = store, raw, http, owner
        self.api_key = ""

    async def store_call(self, before: uuid.UUID | None) -> int:
        return len(await self.store.list_photos(self.owner, PAGE + 1, before))

    async def raw_call(self, before: uuid.UUID | None) -> int:
        if before is None:
            return len(await self.raw.fetch(RAW_SQL_FIRST, self.owner, PAGE + 1))
        return len(await self.raw.fetch(RAW_SQL, self.owner, before, PAGE + 1))

    async def http_call(self, before: uuid.UUID | None) -> int:
        path = f"/v1/photos?limit={PAGE}" + (f"&cursor={cursor_of(before)}" if before else "")
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {self.http.host}:{self.http.port}\r\n"
            f"Authorization: Bearer {self.api_key}\r\n\r\n"
        ).encode()
        status, body = await self.http.request(request)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
        return PAGE + 1  # the HTTP page holds PAGE items; the store call behind it asked for PAGE + 1


async def run_rounds(
    paths: Paths, ids: list[uuid.UUID], depths: list[int], rounds: int, calls: int
) -> dict[tuple[str, int], list[float]]:
    named = {"store": paths.store_call, "asyncpg": paths.raw_call, "http": paths.http_call}
    for _ in range(3):  # warm-up: caches, prepared statements, pools
        for call in named.values():
            for depth in depths:
                await call(ids[depth - 1] if depth else None)
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for depth in depths:
            before = ids[depth - 1] if depth else None
            for name, call in named.items():
                for _ in range(calls):
                    started = time.perf_counter()
                    got = await call(before)
                    samples.setdefault((name, depth), []).append(time.perf_counter() - started)
                    if got != PAGE + 1:
                        raise RuntimeError(f"{name} at depth {depth}: {got} rows, expected {PAGE + 1}")
    return samples


async def measure(
    dsn: str, sa_dsn: str, port: int, api_key: str, owner: uuid.UUID, ids: list[uuid.UUID], opts: Any
) -> dict[tuple[str, int], list[float]]:
    depths = [d for d in opts.depths if d < len(ids)]
    store = SqlMetadataStore({0: build_postgres_engine(sa_dsn, PoolSettings())}, lambda _key: 0)
    await store.start()
    raw = await asyncpg.connect(dsn)
    http = KeepAliveConnection("127.0.0.1", port)
    paths = Paths(store, raw, http, owner)
    paths.api_key = api_key
    try:
        return await run_rounds(paths, ids, depths, opts.rounds, opts.calls)
    finally:
        await http.close()
        await raw.close()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=100_000, help="photos of the one user")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=40, help="calls per path, depth and round")
    parser.add_argument(
        "--depths",
        type=lambda text: [int(d) for d in text.split(",")],
        default=[0, 1_000, 10_000, 50_000, 99_000],
        help="photos skipped before the page (comma-separated)",
    )
    opts = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the servers started below are stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    prefix = f"bench_tl_{secrets.token_hex(4)}"
    database = f"{prefix}_0"
    dsn = f"postgresql://{SYSTEM.user}:{SYSTEM.password}@{SYSTEM.host}:{SYSTEM.port}/{database}"
    work = Path(tempfile.mkdtemp(prefix="bench-timeline-"))
    env = {
        "PHOTOSTORE_LOG_LEVEL": "error",
        "PHOTOSTORE_RATELIMIT__ENABLED": "false",  # measures the store, not the limits
        "PHOTOSTORE_PLACEMENT__SHARDS": "1",
        "PHOTOSTORE_METADATA__BACKEND": "postgres",
        "PHOTOSTORE_METADATA__POSTGRES__DSN_TEMPLATE": dsn.replace(database, f"{prefix}_{{shard}}"),
    }
    server = ServerProcess(work / "data", role="api", env=env)
    try:
        server.start(timeout_s=60)
        user_id, api_key = create_user(server.url, "bench")
        owner = uuid.UUID(user_id)
        started = time.perf_counter()
        ids = asyncio.run(load_photos(dsn, owner, opts.photos))
        load_s = time.perf_counter() - started
        samples = asyncio.run(measure(dsn, SYSTEM.dsn(database), server.port, api_key, owner, ids, opts))
    finally:
        server.stop()
        drop_databases(SYSTEM, [database])
        shutil.rmtree(work, ignore_errors=True)

    def p50_ms(name: str, depth: int) -> float:
        return statistics.median(samples[(name, depth)]) * 1e3

    depths = sorted({depth for _, depth in samples})
    lines = [
        f"One user with {opts.photos:,} photos on one PostgreSQL shard (loaded with COPY in {load_s:.1f} s); "
        f"a {PAGE}-photo page (LIMIT {PAGE + 1}) at each depth, {opts.rounds} rounds x {opts.calls} "
        "sequential calls per path, paths alternating; p50 latency in ms",
        "",
        "| depth (photos before the page) | store.list_photos | raw asyncpg | store / asyncpg "
        "| GET /v1/photos (HTTP) | HTTP / asyncpg |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for depth in depths:
        store, raw, http = p50_ms("store", depth), p50_ms("asyncpg", depth), p50_ms("http", depth)
        ratios.append(store / raw)
        lines.append(
            f"| {depth:,} | {store:.2f} | {raw:.2f} | {store / raw:.2f} | {http:.2f} | {http / raw:.2f} |"
        )
    lines += [
        "",
        "| ratio | value | goal |",
        "|---|---:|---|",
        f"| store / asyncpg p50, median over depths | {statistics.median(ratios):.2f} | <= 1.5 |",
        f"| store / asyncpg p50, worst depth | {max(ratios):.2f} | <= 1.5 |",
    ]
    table = "\n".join(lines)
    print(table)
    write_result("timeline", table)


if __name__ == "__main__":
    main()
