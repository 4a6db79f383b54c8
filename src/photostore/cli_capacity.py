"""``photostore capacity plan``: the spec's growth month by month, the fleet and bill it needs, and
when its targets (1B users, 100 PB, 1M QPS) are reached."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from photostore.cli_support import ConfigOption, console, err, human_bytes, run_command, settings_or_exit
from photostore.errors import BadRequest
from photostore.ops.fleet import (
    DEFAULT_PRICING,
    DEFAULT_THROUGHPUT,
    FleetAssumptions,
    MonthFleet,
    Pricing,
    Throughput,
    load_pricing,
    load_throughput,
    plan_fleet,
)
from photostore.ops.growth import (
    PB,
    GrowthRates,
    MonthProjection,
    StartingPoint,
    fitted_rates,
    project,
    read_history,
    years_to,
)

capacity_app = typer.Typer(
    help="Capacity planning: growth of users, photos, storage and requests; fleet and cost.",
    no_args_is_help=True,
)

TARGET_STORAGE_BYTES = 100 * PB
TARGET_QPS = 1_000_000


@capacity_app.command("plan")
def plan(
    months: Annotated[int, typer.Option(min=0, max=1200, help="months to project")] = 24,
    history: Annotated[
        Path | None, typer.Option(help="CSV of timestamp,users,storage,requests: rates fitted to it")
    ] = None,
    target_users: Annotated[float, typer.Option(help="the users target (the spec's 1e9)")] = 1e9,
    every: Annotated[int, typer.Option(min=1, help="show every Nth month in the table")] = 1,
    throughput: Annotated[
        Path, typer.Option(help="per-core throughput measured by bench/ (JSON)")
    ] = DEFAULT_THROUGHPUT,
    pricing: Annotated[
        Path, typer.Option(help="prices (JSON): server-hour, GB-month per tier, egress, CDN")
    ] = DEFAULT_PRICING,
    chart: Annotated[Path | None, typer.Option(help="write a PNG of growth, fleet and cost")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Users, photos, storage, peak requests, servers per role and monthly cost per month, from the
    spec's rates (users +20 %/year, storage +50 %/year, 10M uploads/day, from 10M users and 1 PB) or
    from rates fitted to --history; and when 1B users, 100 PB and 1M QPS are reached, with what fleet."""
    start, rates = StartingPoint(), GrowthRates()
    try:
        if history is not None:
            found = read_history(history, start)
            start, rates = found.last, fitted_rates(found, rates)
        figures, prices = load_throughput(throughput), load_pricing(pricing)
    except BadRequest as exc:
        err.print(f"[red]error:[/] {exc.detail}")
        raise typer.Exit(2) from None
    assume = FleetAssumptions()
    rows = project(start, rates, months)
    fleets = [plan_fleet(row, figures, prices, assume) for row in rows]
    targets = {
        "users": years_to(target_users, start.users, rates.users),
        "storage": years_to(TARGET_STORAGE_BYTES, start.storage_bytes, rates.storage),
        "requests": years_to(TARGET_QPS, start.peak_qps, rates.requests),
    }
    at_targets = _fleet_at_targets(start, rates, targets, figures, prices, assume)
    if chart is not None:
        from photostore.ops.capacity_chart import draw_plan

        draw_plan(rows, fleets, chart)
        err.print(f"chart written to {chart}")
    if as_json:
        report = {
            "start": asdict(start),
            "rates": asdict(rates),
            "throughput": asdict(figures),
            "months": [_month_json(row, fleet) for row, fleet in zip(rows, fleets, strict=True)],
            "years_to_targets": targets,
            "at_targets": at_targets,
            "targets": {"users": target_users, "storage_bytes": TARGET_STORAGE_BYTES, "peak_qps": TARGET_QPS},
        }
        print(json.dumps(report))
        return
    _print_table(rows, fleets, every, months)
    rates_text = ", ".join(f"{name} {value:+.1%}/year" for name, value in asdict(rates).items())
    console.print(f"rates: {rates_text}")
    for name, label in (
        ("users", f"{target_users:,.0f} users"),
        ("storage", "100 PB"),
        ("requests", "1M QPS"),
    ):
        years, fleet = targets[name], at_targets[name]
        if years is None or fleet is None:
            console.print(f"{label}: never at this rate")
            continue
        console.print(
            f"{label}: in {years:.1f} years, with {fleet['servers']:,.0f} servers "
            f"and ${fleet['monthly_cost']:,.0f} a month"
        )


def _month_json(row: MonthProjection, fleet: MonthFleet) -> dict[str, object]:
    return {
        **asdict(row),
        "servers": fleet.servers,
        "raw_storage_bytes": fleet.raw_storage_bytes,
        "monthly_cost": fleet.monthly_cost,
    }


def _print_table(rows: list[MonthProjection], fleets: list[MonthFleet], every: int, months: int) -> None:
    table = Table(
        "month",
        "users",
        "photos",
        "storage",
        "uploads/day",
        "peak QPS",
        "servers (upload/worker/api)",
        "cost/month",
        title="capacity plan",
    )
    for row, fleet in zip(rows, fleets, strict=True):
        if row.month % every and row.month != months:
            continue
        roles = fleet.servers
        table.add_row(
            str(row.month),
            f"{row.users:,.0f}",
            f"{row.photos:,.0f}",
            f"{row.storage_bytes / PB:,.2f} PB",
            f"{row.uploads_per_day:,.0f}",
            f"{row.peak_qps:,.0f}",
            f"{fleet.total_servers:,} ({roles['upload']}/{roles['worker']}/{roles['api']})",
            f"${fleet.monthly_cost['total']:,.0f}",
        )
    console.print(table)


def _fleet_at_targets(
    start: StartingPoint,
    rates: GrowthRates,
    targets: dict[str, float | None],
    figures: Throughput,
    prices: Pricing,
    assume: FleetAssumptions,
) -> dict[str, dict[str, float] | None]:
    """The fleet and monthly cost in the month each target is reached."""
    found: dict[str, dict[str, float] | None] = {}
    for name, years in targets.items():
        if years is None:
            found[name] = None
            continue
        month = math.ceil(years * 12)
        fleet = plan_fleet(project(start, rates, month)[-1], figures, prices, assume)
        found[name] = {
            "month": month,
            "servers": fleet.total_servers,
            "monthly_cost": fleet.monthly_cost["total"],
        }
    return found


@capacity_app.command("record")
def record(
    history: Annotated[Path, typer.Argument(help="CSV to append to (created with its header if new)")],
    config: ConfigOption = None,
    requests: Annotated[
        float | None,
        typer.Option(min=0.0, help="requests per second to record instead of measuring the api's rate"),
    ] = None,
    rate_window: Annotated[
        float, typer.Option(min=0.1, help="seconds between the two readings of the api's request rate")
    ] = 5.0,
) -> None:
    """Append this deployment's users, stored bytes and request rate to HISTORY, for --history.

    Run it on a schedule (daily); `capacity plan --history HISTORY` then fits the growth rates to the
    deployment's own figures instead of the spec's.
    """
    import httpx

    from photostore.ops.history import HistoryPoint, append, measure
    from photostore.runtime import open_runtime

    settings = settings_or_exit(config)

    async def go() -> HistoryPoint:
        runtime = await open_runtime(settings)
        try:
            if requests is not None:
                stats = await runtime.metadata.shard_stats()
                point = HistoryPoint(
                    datetime.now(UTC), sum(s.users for s in stats), sum(s.bytes for s in stats), requests
                )
            else:
                async with httpx.AsyncClient() as client:
                    point = await measure(runtime.metadata, settings.autoscale, client, rate_window)
            append(history, point)
            return point
        finally:
            await runtime.close()

    point = run_command(go)
    console.print(
        f"recorded {point.timestamp:%Y-%m-%d %H:%M:%S} UTC: {point.users:,} users, "
        f"{human_bytes(point.storage_bytes)}, {point.requests_per_s:,.1f} requests/s -> {history}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(capacity_app, name="capacity")
