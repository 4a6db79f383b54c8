"""``photostore tier plan|run``: move originals nobody reads to the cold bucket, and back on access."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from photostore.cli_support import ConfigOption, console, err, human_bytes, run_command, settings_or_exit
from photostore.rebalance.bucket_results import MoveResult
from photostore.tiering.job import TierPlan

tier_app = typer.Typer(
    help=(
        "Storage tiers: originals not read for tiering.cold_after move to tiering.cold_bucket; "
        "one read again moves back. Variants always stay hot."
    ),
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a summary")]
AsOfOption = Annotated[
    datetime | None,
    typer.Option(
        "--as-of",
        help="judge idleness as of this UTC time instead of now (plan ahead; a future time moves early)",
        formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d"],
        show_default=False,
    ),
]


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def _plan_line(plan: TierPlan) -> str:
    return (
        f"{plan.photos} photos; idle since before {plan.idle_before:%Y-%m-%d %H:%M:%S} UTC: "
        f"{plan.to_cold[0]} originals to cold ({human_bytes(plan.to_cold[1])}), "
        f"{plan.to_hot[0]} read again to hot ({human_bytes(plan.to_hot[1])})"
    )


def _report(plan: TierPlan, result: MoveResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"plan": plan.to_dict(), **result.to_dict()}), flush=True)
        return
    console.print(_plan_line(plan))
    console.print(
        f"moved {result.objects_moved} originals ({human_bytes(result.bytes_moved)}); "
        f"{len(result.left_behind)} left for the next pass, {len(result.failures)} failures"
    )
    for failure in result.failures:
        console.print(f"  [red]{failure.photo_id}[/red] {failure.bucket}/{failure.key}: {failure.reason}")


@tier_app.command("plan")
def plan(config: ConfigOption = None, as_json: JsonOption = False, as_of: AsOfOption = None) -> None:
    """Show what a pass would move now (a dry run: nothing is copied or written)."""
    from photostore.runtime import open_runtime
    from photostore.tiering.job import plan_pass

    settings = settings_or_exit(config)

    async def go() -> TierPlan:
        runtime = await open_runtime(settings)
        try:
            return (await plan_pass(runtime, _utc(as_of)))[2]
        finally:
            await runtime.close()

    summary = run_command(go)
    if as_json:
        print(json.dumps(summary.to_dict()))
    else:
        console.print(_plan_line(summary))


@tier_app.command("run")
def run(
    config: ConfigOption = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="keep running: a pass every tiering.interval (Ctrl-C stops)")
    ] = False,
    as_json: JsonOption = False,
    as_of: AsOfOption = None,
) -> None:
    """Move idle originals to the cold bucket and read ones back (one pass, or --watch).

    A pass waits out the grace period, then deletes the sources. Safe to kill at any moment: the
    next run finishes or undoes what was in flight. Exits 1 if some original could not be moved.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from photostore.runtime import open_runtime
    from photostore.tiering import job

    if watch and as_of is not None:
        err.print("[red]error:[/red] --as-of judges one pass; it cannot be combined with --watch")
        raise typer.Exit(2)
    settings = settings_or_exit(config)

    async def report(plan: TierPlan, result: MoveResult) -> None:
        _report(plan, result, as_json)

    async def go() -> MoveResult | None:
        runtime = await open_runtime(settings)
        try:
            if watch:
                await job.watch(runtime, settings.tiering.interval.total_seconds(), report)
                return None
            columns = (
                TextColumn("tiering originals"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=err, transient=True, disable=not sys.stderr.isatty()) as progress:
                task = progress.add_task("tier", total=None)
                plan, result = await job.run_pass(
                    runtime,
                    _utc(as_of),
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
            _report(plan, result, as_json)
            return result
        finally:
            await runtime.close()

    try:
        result = run_command(go)
    except KeyboardInterrupt:
        err.print("stopped; an interrupted pass is finished by the next run")
        raise typer.Exit(130) from None
    if result is not None and result.failures:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(tier_app, name="tier")
