"""Serving: cached ``thumb`` GETs per second through photostore, beside nginx serving the same file
and a bare Starlette route returning the same bytes from memory (the floor of any Python server),
all measured with wrk in one run. Reports service/nginx, bare/nginx and service/bare.

    .venv/bin/python -m bench.serving [--seconds 10] [--rounds 3] [--connections 64]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.report import write_result
from photostore.imaging.samples import make_photo_jpeg
from tests.support.server import ServerProcess, create_user, free_port, wait_ready_photo

NGINX_CONF = """
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types {{ image/webp webp; }}
  server {{
    listen 127.0.0.1:{port};
    location = /thumb.webp {{ root {prefix}; etag on; }}
  }}
}}
"""


def wrk(url: str, seconds: int, connections: int, headers: dict[str, str] | None = None) -> float:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors from {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def wait_http(url: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start_nginx(prefix: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, workers=workers))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(prefix)], start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/thumb.webp")
    return proc


def start_bare(thumb: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_BARE_FILE": str(thumb)}
    granian = str(Path(sys.executable).with_name("granian"))
    args = [granian, "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", str(workers), "--log-level", "warning", "bench.bare_app:app"]
    proc = subprocess.Popen(args, env=env, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/thumb.webp")
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="server processes for each contender")
    opts = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("nginx"):
        sys.exit("needs wrk and nginx: apt-get install -y wrk nginx-light")

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    service = ServerProcess(
        work / "data",
        env={
            "PHOTOSTORE_SERVER__WORKERS": str(opts.workers),
            "PHOTOSTORE_LOG_LEVEL": "error",
            "PHOTOSTORE_RATELIMIT__ENABLED": "false",
        },
    ).start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _, key = create_user(service.url, "bench")
        headers = {"authorization": f"Bearer {key}"}
        with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
            photo = client.post("/v1/photos", content=make_photo_jpeg(4000, 3000, seed=7)).json()
            wait_ready_photo(client, photo["id"])
            thumb_path = f"/v1/photos/{photo['id']}/variants/thumb"
            body = client.get(thumb_path).content
        (work / "thumb.webp").write_bytes(body)
        # nginx's workers drop root: they must be able to read the file.
        work.chmod(0o755)
        (work / "thumb.webp").chmod(0o644)
        nginx_port, bare_port = free_port(), free_port()
        procs.append(start_nginx(work, nginx_port, opts.workers))
        procs.append(start_bare(work / "thumb.webp", bare_port, opts.workers))
        targets = {
            "nginx": (f"http://127.0.0.1:{nginx_port}/thumb.webp", None),
            "bare starlette": (f"http://127.0.0.1:{bare_port}/thumb.webp", None),
            "photostore": (f"{service.url}{thumb_path}", headers),
        }
        for url, hdrs in targets.values():  # warm every cache and connection path
            wrk(url, 2, opts.connections, hdrs)
        runs: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(opts.rounds):
            for name, (url, hdrs) in targets.items():
                runs[name].append(wrk(url, opts.seconds, opts.connections, hdrs))
    finally:
        for proc in procs:
            stop(proc)
        service.stop()
        shutil.rmtree(work, ignore_errors=True)

    med = {name: statistics.median(values) for name, values in runs.items()}
    rows = [f"| {name} | {med[name]:,.0f} | {', '.join(f'{v:,.0f}' for v in runs[name])} |" for name in runs]
    table = "\n".join(
        [
            f"thumb = {len(body)} bytes; wrk -t2 -c{opts.connections} -d{opts.seconds}s; "
            f"{opts.workers} server process(es) each; median of {opts.rounds} rounds",
            "",
            "| server | req/s (median) | runs |",
            "|---|---:|---|",
            *rows,
            "",
            "| ratio | value | goal |",
            "|---|---:|---|",
            f"| photostore / nginx | {med['photostore'] / med['nginx']:.3f} | >= 0.5 |",
            f"| bare starlette / nginx (floor) | {med['bare starlette'] / med['nginx']:.3f} | ~0.35 here |",
            f"| photostore / bare starlette | {med['photostore'] / med['bare starlette']:.3f} | >= 0.9 |",
        ]
    )
    print(table)
    write_result("serving", table)


if __name__ == "__main__":
    main()
