"""Bulk import over the HTTP API, several uploads in flight, with a progress bar."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

# Files the service could accept; anything else in a folder is skipped, not sent.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".heic", ".heif", ".avif", ".tif", ".tiff"}
)
RETRIES = 3


@dataclass
class UploadReport:
    created: int = 0
    deduplicated: int = 0
    failures: list[tuple[Path, str]] = field(default_factory=list)


def collect_files(paths: Iterable[Path]) -> list[Path]:
    """Files named directly, plus image files found under folders, sorted and without repeats."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.add(path)
    return sorted(found)


async def _upload_one(client: httpx.AsyncClient, path: Path, report: UploadReport) -> None:
    data = await asyncio.to_thread(path.read_bytes)
    for attempt in range(RETRIES):
        try:
            response = await client.post("/v1/photos", content=data, params={"filename": path.name})
        except httpx.TransportError as exc:
            if attempt == RETRIES - 1:
                report.failures.append((path, f"connection failed: {exc}"))
                return
            await asyncio.sleep(0.5 * 2**attempt)
            continue
        if response.status_code == 201:
            report.created += 1
        elif response.status_code == 200:
            report.deduplicated += 1
        elif response.status_code >= 500 and attempt < RETRIES - 1:
            await asyncio.sleep(0.5 * 2**attempt)
            continue
        else:
            report.failures.append((path, _problem_text(response)))
        return


def _problem_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{response.status_code} {body.get('code')}: {body.get('detail')}"
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"


async def upload_files(
    files: list[Path], *, url: str, api_key: str, concurrency: int, console: Console
) -> UploadReport:
    report = UploadReport()
    queue: asyncio.Queue[Path] = asyncio.Queue()
    for path in files:
        queue.put_nowait(path)
    headers = {"authorization": f"Bearer {api_key}"}
    columns = (TextColumn("uploading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("upload", total=len(files))

            async def worker() -> None:
                while not queue.empty():
                    path = queue.get_nowait()
                    await _upload_one(client, path, report)
                    progress.advance(task)

            await asyncio.gather(*(worker() for _ in range(min(concurrency, len(files)))))
    return report
