"""``photostore edge`` and ``photostore regions ...``: the multi-region front door and its questions."""

from __future__ import annotations

import json
import os
from typing import Annotated

import httpx
import typer
from rich.table import Table

from photostore.cli_support import ConfigOption, console, err, settings_or_exit
from photostore.errors import NoHealthyRegion
from photostore.logs import configure_logging
from photostore.settings import CONFIG_ENV, Settings

regions_app = typer.Typer(help="Regions: where clients go, and what the edge sees.", no_args_is_help=True)


def _settings_with_regions(config: ConfigOption) -> Settings:
    settings = settings_or_exit(config)
    if not settings.regions.regions:
        err.print("[red]error:[/] no regions: set regions.regions (see config/regions.example.toml)")
        raise typer.Exit(2)
    return settings


def edge(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="bind address (default edge.host)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default edge.port)")] = None,
    workers: Annotated[int, typer.Option(help="HTTP worker processes")] = 1,
) -> None:
    """Run the edge: each client goes to its nearest healthy region; failover when one goes down.

    Needs regions.regions in the settings (see config/regions.example.toml). The edge's own routes
    are under /edge/ (healthz, readyz, regions, metrics); every other path goes to a region.
    """
    if config is not None:
        os.environ[CONFIG_ENV] = str(config.resolve())
    settings = _settings_with_regions(None)
    configure_logging(settings, "edge")
    from granian import Granian
    from granian.constants import Interfaces

    bind_host = host or settings.edge.host
    bind_port = port or settings.edge.port
    names = ", ".join(region.name for region in settings.regions.regions)
    err.print(f"photostore edge on http://{bind_host}:{bind_port} in front of {names}")
    Granian(
        "photostore.regions.edge:create_edge_app_from_environment",
        address=bind_host,
        port=bind_port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        log_level=settings.log_level,  # type: ignore[arg-type]
    ).serve()


@regions_app.command("route")
def regions_route(
    addresses: Annotated[list[str], typer.Argument(help="client IP addresses")],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Where the edge would send each client address (every region assumed healthy)."""
    from photostore.regions.geo import GeoLocator
    from photostore.regions.router import RegionRouter

    settings = _settings_with_regions(config)
    router = RegionRouter(settings.regions, GeoLocator(settings.geo), settings.edge.health)
    rows = []
    for address in addresses:
        try:
            route = router.route_address(address)
        except NoHealthyRegion as exc:  # not with every region healthy, but say so if it happens
            err.print(f"[red]error:[/] {exc.detail}")
            raise typer.Exit(1) from None
        rows.append(
            {
                "address": address,
                "located": route.location is not None,
                "lat": route.location.lat if route.location else None,
                "lon": route.location.lon if route.location else None,
                "region": route.region.name,
                "distance_km": round(route.distance_km, 1),
            }
        )
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("address", "location", "region", "distance")
    for row in rows:
        place = (
            f"{row['lat']:.2f}, {row['lon']:.2f}" if row["located"] else "unknown (sent as if at the primary)"
        )
        table.add_row(str(row["address"]), place, str(row["region"]), f"{row['distance_km']:,} km")
    console.print(table)


@regions_app.command("status")
def regions_status(
    edge_url: Annotated[str, typer.Option("--edge", help="a running edge")] = "http://127.0.0.1:8080",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Each region's health as a running edge sees it (its probes and passive error rates)."""
    try:
        body = httpx.get(f"{edge_url.rstrip('/')}/edge/regions", timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        err.print(f"[red]error:[/] no edge answered at {edge_url}: {exc}. Start one with `photostore edge`.")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(body))
        return
    table = Table("region", "role", "healthy", "endpoint", "reason", "error rate", "probe latency")
    for region in body["regions"]:
        for endpoint in region["endpoints"]:
            latency = endpoint["latency_ms"]
            table.add_row(
                region["name"],
                region["role"],
                "[green]yes[/]" if endpoint["is_healthy"] else "[red]no[/]",
                endpoint["url"],
                endpoint["reason"],
                f"{endpoint['error_rate']:.0%}",
                f"{latency:.1f} ms" if latency is not None else "-",
            )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(edge)
    app.add_typer(regions_app, name="regions")
