"""``photostore capacity plan``: the spec's growth, month by month, and when its targets are reached."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from photostore.cli_support import console, err
from photostore.errors import BadRequest
from photostore.ops.growth import (
    PB,
    GrowthRates,
    StartingPoint,
    fitted_rates,
    project,
    read_history,
    years_to,
)

capacity_app = typer.Typer(
    help="Capacity planning: growth of users, photos, storage and requests.", no_args_is_help=True
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
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Users, photos, storage and peak requests per month from the spec's rates (users +20 %/year,
    storage +50 %/year, 10M uploads/day, starting at 10M users and 1 PB), or from rates fitted to
    --history; and the years until 1B users, 100 PB and 1M QPS."""
    start, rates = StartingPoint(), GrowthRates()
    if history is not None:
        try:
            found = read_history(history, start)
        except BadRequest as exc:
            err.print(f"[red]error:[/] {exc.detail}")
            raise typer.Exit(2) from None
        start, rates = found.last, fitted_rates(found, rates)
    rows = project(start, rates, months)
    targets = {
        "users": years_to(target_users, start.users, rates.users),
        "storage": years_to(TARGET_STORAGE_BYTES, start.storage_bytes, rates.storage),
        "requests": years_to(TARGET_QPS, start.peak_qps, rates.requests),
    }
    if as_json:
        print(
            json.dumps(
                {
                    "start": asdict(start),
                    "rates": asdict(rates),
                    "months": [asdict(row) for row in rows],
                    "years_to_targets": targets,
                    "targets": {
                        "users": target_users,
                        "storage_bytes": TARGET_STORAGE_BYTES,
                        "peak_qps": TARGET_QPS,
                    },
                }
            )
        )
        return
    table = Table("month", "users", "photos", "storage", "uploads/day", "peak QPS", title="capacity plan")
    for row in rows:
        if row.month % every and row.month != months:
            continue
        table.add_row(
            str(row.month),
            f"{row.users:,.0f}",
            f"{row.photos:,.0f}",
            f"{row.storage_bytes / PB:,.2f} PB",
            f"{row.uploads_per_day:,.0f}",
            f"{row.peak_qps:,.0f}",
        )
    console.print(table)
    rates_text = ", ".join(f"{name} {value:+.1%}/year" for name, value in asdict(rates).items())
    console.print(f"rates: {rates_text}")
    for name, label in (
        ("users", f"{target_users:,.0f} users"),
        ("storage", "100 PB"),
        ("requests", "1M QPS"),
    ):
        years = targets[name]
        console.print(f"{label}: " + ("never at this rate" if years is None else f"in {years:.1f} years"))


def register(app: typer.Typer) -> None:
    app.add_typer(capacity_app, name="capacity")
