"""Resumable uploads: MB/s of large photos sent with tus (create, then PATCHes of ``--chunk-mib``)
beside the same photos in one ``POST /v1/photos`` each, on the same embedded service (role api),
the same client (httpx) and concurrency, in one run. Reports tus / one-shot.

tus pays for what makes it resumable: every chunk is stored durably (a part or a tail object, and
the upload's row) before it is acknowledged, and the parts are read back and joined at the end.

    .venv/bin/python -m bench.resumable [--photos 8] [--rounds 3] [--concurrency 4] [--chunk-mib 8]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.ingest import rate_row, unique_variant
from bench.report import write_result
from tests.support.server import ServerProcess, create_user

TUS = {"Tus-Resumable": "1.0.0"}


def noise_jpeg(megapixels: int) -> bytes:
    """A JPEG of noise: large for its pixel count, as phone photos of busy scenes are."""
    height = int((megapixels * 1e6 * 3 / 4) ** 0.5)
    pixels = np.random.default_rng(1).integers(0, 256, (height, height * 4 // 3, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=95)
    return out.getvalue()


async def one_shot(client: httpx.AsyncClient, body: bytes) -> None:
    answer = await client.post("/v1/photos", content=body, headers={"Content-Type": "image/jpeg"})
    if answer.status_code != 201:
        raise RuntimeError(f"POST /v1/photos: {answer.status_code} {answer.text}")


async def resumable(client: httpx.AsyncClient, body: bytes, chunk: int) -> None:
    created = await client.post("/v1/uploads", headers={**TUS, "Upload-Length": str(len(body))})
    if created.status_code != 201:
        raise RuntimeError(f"POST /v1/uploads: {created.status_code} {created.text}")
    location = created.headers["location"]
    for offset in range(0, len(body), chunk):
        headers = {**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        answer = await client.patch(location, content=body[offset : offset + chunk], headers=headers)
        if answer.status_code != 204:
            raise RuntimeError(f"PATCH {location}: {answer.status_code} {answer.text}")
    if "photo-location" not in answer.headers:
        raise RuntimeError("the last PATCH named no photo")


async def megabytes_per_second(
    server: ServerProcess, key: str, bodies: list[bytes], how: str, opts: argparse.Namespace
) -> float:
    queue = list(bodies)
    limits = httpx.Limits(max_connections=opts.concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=300, limits=limits) as client:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                if how == "tus":
                    await resumable(client, body, opts.chunk_mib * 1024 * 1024)
                else:
                    await one_shot(client, body)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(opts.concurrency)))
        elapsed = time.perf_counter() - started
    return sum(map(len, bodies)) / 1e6 / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=8, help="uploads per path per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--megapixels", type=int, default=12)
    opts = parser.parse_args()

    base = noise_jpeg(opts.megapixels)
    work = Path(tempfile.mkdtemp(prefix="bench-resumable-"))
    env = {
        "PHOTOSTORE_LOG_LEVEL": "error",
        "PHOTOSTORE_RATELIMIT__ENABLED": "false",
        "PHOTOSTORE_LIMITS__MAX_UPLOAD_BYTES": str(4 * len(base)),
    }
    server = ServerProcess(work / "data", role="api", env=env).start()
    runs: dict[str, list[float]] = {"tus": [], "post": []}
    try:
        _, key = create_user(server.url, "bench")
        for round_no in range(opts.rounds):
            for how in ("post", "tus"):  # distinct bytes every time: no upload is a dedup
                bodies = [unique_variant(base, n, f"{how}{round_no}") for n in range(opts.photos)]
                runs[how].append(asyncio.run(megabytes_per_second(server, key, bodies, how, opts)))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    tus, post = statistics.median(runs["tus"]), statistics.median(runs["post"])
    table = "\n".join(
        [
            f"{opts.photos} distinct {opts.megapixels} MP JPEGs of {len(base) / 1e6:.1f} MB per path and "
            f"round, concurrency {opts.concurrency}, tus chunks of {opts.chunk_mib} MiB, "
            f"median of {opts.rounds} rounds",
            "",
            "| path | MB/s (median) | runs |",
            "|---|---:|---|",
            rate_row(f"tus: POST /v1/uploads + PATCH x {opts.chunk_mib} MiB", runs["tus"]),
            rate_row("one-shot: POST /v1/photos", runs["post"]),
            "",
            "| ratio | value |",
            "|---|---:|",
            f"| tus / one-shot | {tus / post:.3f} |",
        ]
    )
    print(table)
    write_result("resumable", table)


if __name__ == "__main__":
    main()
