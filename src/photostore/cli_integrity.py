"""``photostore audit`` and ``photostore gc``: scrub every object against its SHA-256, and collect
objects no row names."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from photostore.cli_support import ConfigOption, console, err, human_bytes, run_command, settings_or_exit
from photostore.integrity.audit import AuditReport
from photostore.integrity.gc import GcReport

JsonOption = Annotated[bool, typer.Option("--json", help="print a machine-readable report")]


def audit(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Read every live object and check its size and SHA-256 against its row; quarantine what
    fails (it is never served again) and list every corrupt or missing object. Exit 1 unless the
    store is whole."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from photostore.integrity import audit as auditing
    from photostore.integrity.quarantine import Quarantine, quarantine_bucket
    from photostore.runtime import open_runtime
    from photostore.tiering.buckets import cold_buckets

    settings = settings_or_exit(config)

    async def go() -> AuditReport:
        runtime = await open_runtime(settings)
        try:
            quarantine = Quarantine(runtime.blobs, quarantine_bucket(settings))
            columns = (
                TextColumn("auditing photos"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=err, transient=True, disable=not sys.stderr.isatty()) as progress:
                task = progress.add_task("audit", total=None)
                return await auditing.audit(
                    runtime.metadata,
                    runtime.blobs,
                    quarantine,
                    runtime.placement.reload()[1],
                    pinned=cold_buckets(settings),
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
        finally:
            await runtime.close()

    report = run_command(go)
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        console.print(
            f"{report.objects} objects of {report.photos} photos read ({human_bytes(report.bytes_read)}): "
            f"{len(report.quarantined_now)} corrupt now (quarantined), "
            f"{len(report.quarantined_before)} quarantined before, {len(report.missing)} missing, "
            f"{len(report.misplaced)} misplaced"
        )
        for record in report.quarantined_now:
            console.print(
                f"  [red]corrupt[/red] {record.bucket}/{record.key} ({record.photo_id} {record.object})"
            )
        for problem in (*report.quarantined_before, *report.missing):
            label = "quarantined" if problem in report.quarantined_before else "missing"
            console.print(
                f"  [red]{label}[/red] {problem.bucket}/{problem.key} ({problem.photo_id} {problem.object})"
            )
        if not report.whole:
            console.print("restore these objects from a copy, or delete their photos")
    if not report.whole:
        raise typer.Exit(1)


def gc(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the orphans, delete nothing")] = False,
    grace_s: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="keep orphans younger than this many seconds (default: integrity.gc_grace)"
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Delete objects that no live photo's row names (left by crashes, or by deletes whose cleanup
    never ran) once they are older than the grace period. The quarantine is never touched."""
    from photostore.integrity import gc as collecting
    from photostore.integrity.quarantine import quarantine_bucket
    from photostore.runtime import open_runtime

    settings = settings_or_exit(config)
    grace = settings.integrity.gc_grace if grace_s is None else timedelta(seconds=grace_s)

    def progress(bucket: str, listed: int) -> None:
        if sys.stderr.isatty():
            err.print(f"  {bucket}: {listed} objects listed", end="\r")

    async def go() -> GcReport:
        runtime = await open_runtime(settings)
        try:
            quarantine = quarantine_bucket(settings)
            return await collecting.collect(
                runtime.metadata,
                runtime.blobs,
                [bucket for bucket in runtime.blobs.buckets() if bucket != quarantine],
                now=datetime.now(UTC),
                grace=grace,
                dry_run=dry_run,
                progress=progress,
            )
        finally:
            await runtime.close()

    report = run_command(go)
    if as_json:
        print(json.dumps({"dry_run": dry_run, "grace_s": grace.total_seconds(), **report.to_dict()}))
        return
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"{report.listed} objects listed: {report.orphans} orphans ({human_bytes(report.orphan_bytes)}) "
        f"{verb}; {report.young} younger than {grace} kept; {report.foreign} foreign keys kept"
    )
    for example in report.examples:
        console.print(f"  {example}")


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
    app.command("gc")(gc)
