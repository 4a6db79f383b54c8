"""``photostore cost optimize``: recommendations for compute, storage tiers and CDN offload, each with
what it saves a month, from measured CPU, stored bytes by last access, and egress."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table

from photostore.cli_support import ConfigOption, console, err, run_command, settings_or_exit
from photostore.errors import BadRequest
from photostore.ops.cost import (
    CORES_PER_PROCESS,
    CostReport,
    Recommendation,
    Section,
    Skipped,
    StorageProfile,
    cdn_offload,
    check_pricing,
    combine,
    right_size,
    tier_storage,
)
from photostore.ops.fleet import DEFAULT_PRICING, FleetAssumptions, Pricing, load_pricing
from photostore.settings import Settings

if TYPE_CHECKING:
    from photostore.ops.cost_inputs import Utilisation

cost_app = typer.Typer(help="Cost: what the deployment could save a month, and how.", no_args_is_help=True)

Ratio = Annotated[float | None, typer.Option(min=0.0, max=1.0, show_default=False)]


@cost_app.command("optimize")
def optimize(
    config: ConfigOption = None,
    pricing: Annotated[
        Path, typer.Option(help="prices (JSON): server-hour, GB-month per tier, egress, CDN")
    ] = DEFAULT_PRICING,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    target_cpu: Annotated[
        float,
        typer.Option(help="CPU utilisation to size replicas for: cores busy per process, above 0, at most 1"),
    ] = 0.6,
    egress_gb: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="egress GB a month; default: estimated from the api's measured request rate"
        ),
    ] = None,
    cdn_offload_now: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="share of egress a CDN serves now (0..1); default 0 without cdn.providers, else 0.9",
        ),
    ] = None,
    cdn_offload_target: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of egress a CDN could serve (0..1)")
    ] = 0.9,
    no_metrics: Annotated[
        bool, typer.Option("--no-metrics", help="read no process metrics: skip right-sizing")
    ] = False,
    rate_window: Annotated[
        float, typer.Option(min=0.1, help="seconds between the two readings of the api's request rate")
    ] = 5.0,
    chart: Annotated[Path | None, typer.Option(help="write a PNG bar chart of the savings")] = None,
) -> None:
    """Recommendations, each with its estimated monthly saving, then the total: replicas per service
    sized to --target-cpu (one process = one core of a pricing server), originals on the storage
    tier their last access suits (idle tiering.warm_after: warm, tiering.cold_after: cold), and
    egress served by a CDN up to --cdn-offload-target."""
    import httpx  # here, not at the top: every other command starts faster without it

    from photostore.ops.cost_inputs import band_edges, egress_profile, read_utilisation

    settings = settings_or_exit(config)
    if not 0 < target_cpu <= 1:
        _fail(f"--target-cpu must be above 0 and at most 1, got {target_cpu}")
    now = datetime.now(UTC)
    try:
        prices = load_pricing(pricing)
        check_pricing(prices)
        band_edges(settings.tiering, now)  # bad tiering settings fail here, before any work
    except BadRequest as exc:
        _fail(exc.detail)
    assume = FleetAssumptions()
    if cdn_offload_now is None:
        cdn_offload_now = assume.cdn_offload if settings.cdn.providers else 0.0

    async def gather() -> tuple[StorageProfile, Utilisation | None]:
        if no_metrics:
            return await _storage(settings, now), None
        async with httpx.AsyncClient() as client:
            # The request rate's window passes while the metadata store is scanned.
            return await asyncio.gather(
                _storage(settings, now),
                read_utilisation(settings.autoscale, client, rate_window, want_rate=egress_gb is None),
            )

    storage, usage = run_command(gather)
    egress = egress_profile(
        egress_gb, usage.read_rate if usage else None, assume, cdn_offload_now, cdn_offload_target
    )
    report = combine(
        _compute(usage, target_cpu, prices),
        tier_storage(storage, prices, assume),
        cdn_offload(egress, prices),
    )
    if chart is not None:
        from photostore.ops.cost_chart import draw_savings

        draw_savings(report, chart)
        err.print(f"chart written to {chart}")
    inputs = {
        "pricing": {"file": str(pricing), "source": _pricing_note(pricing), **asdict(prices)},
        "assumptions": {
            "cores_per_process": CORES_PER_PROCESS,
            "tier_redundancy": assume.tier_redundancy,
            "read_bytes": assume.read_bytes,
        },
        "target_cpu": target_cpu,
        "metrics": None if usage is None else {"source": usage.source, "api_request_rate": usage.read_rate},
        "services": [] if usage is None else [asdict(service) for service in usage.services],
        "storage": _storage_json(storage),
        "egress": asdict(egress),
    }
    if as_json:
        print(json.dumps(_report_json(report, inputs)))
        return
    _print(report)
    metrics = "off (--no-metrics)" if usage is None else usage.source
    console.print(f"prices: {pricing}; CPU: {metrics}; egress: {egress.source}")


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/] {message}")
    raise typer.Exit(2)


async def _storage(settings: Settings, now: datetime) -> StorageProfile:
    from photostore.ops.cost_inputs import storage_profile
    from photostore.runtime import open_runtime

    runtime = await open_runtime(settings)
    try:
        return await storage_profile(runtime.metadata, settings, now, err)
    finally:
        await runtime.close()


def _compute(usage: Utilisation | None, target_cpu: float, prices: Pricing) -> Section:
    if usage is None:
        return Section(skipped=[Skipped("compute", "--no-metrics: right-sizing skipped")])
    if usage.skipped is not None:
        return Section(skipped=[usage.skipped])
    return right_size(usage.services, target_cpu, prices)


def _pricing_note(path: Path) -> str | None:
    """The pricing file's own word on where its prices come from (its "source" key)."""
    note = json.loads(path.read_text()).get("source")
    return note if isinstance(note, str) else None


def _storage_json(storage: StorageProfile) -> dict[str, object]:
    return {
        "bands": [asdict(band) for band in storage.bands],
        "variant_bytes": storage.variant_bytes,
        "variants": storage.variants,
        "cold_bucket": storage.cold_bucket,
        "warm_after_days": storage.warm_after / timedelta(days=1),
        "cold_after_days": storage.cold_after / timedelta(days=1),
    }


def _recommendation_json(rec: Recommendation) -> dict[str, object]:
    return {**asdict(rec), "monthly_saving": rec.saving}


def _report_json(report: CostReport, inputs: dict[str, object]) -> dict[str, object]:
    return {
        "recommendations": [_recommendation_json(rec) for rec in report.recommendations],
        "skipped": [asdict(skip) for skip in report.skipped],
        "areas": [asdict(area) for area in report.areas],
        "totals": {
            "monthly_now": report.monthly_now,
            "monthly_after": report.monthly_after,
            "monthly_saving": report.monthly_saving,
        },
        "inputs": inputs,
    }


def _dollars(amount: float) -> str:
    return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


def _print(report: CostReport) -> None:
    table = Table(
        "kind",
        "recommendation",
        "now",
        "recommended",
        "$/month now",
        "$/month after",
        "saving",
        title="cost optimize (per month)",
    )
    for rec in report.recommendations:
        text = rec.action if rec.needs is None else f"{rec.action}\n[dim]needs {rec.needs}[/]"
        style = "red" if rec.saving < 0 else "green" if rec.saving > 0 else ""
        table.add_row(
            rec.kind,
            text,
            rec.now,
            rec.recommended,
            _dollars(rec.monthly_now),
            _dollars(rec.monthly_after),
            f"[{style}]{_dollars(rec.saving)}[/]" if style else _dollars(rec.saving),
        )
    console.print(table)
    for skip in report.skipped:
        console.print(f"{skip.kind}: {skip.reason}")
    saving = report.monthly_saving
    change = f"{_dollars(saving)} a month saved" if saving >= 0 else f"{_dollars(-saving)} a month more spent"
    console.print(
        f"total: {change} ({_dollars(report.monthly_now)} now, {_dollars(report.monthly_after)} after, "
        "for the parts priced)"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(cost_app, name="cost")
