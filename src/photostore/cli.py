"""The ``photostore`` command: a thin layer over the runtime and the HTTP API."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import typer
from rich.table import Table

from photostore.cli_support import ConfigOption, console, err, run_command, settings_or_exit
from photostore.errors import ConfigError
from photostore.logs import configure_logging
from photostore.placement.simulate import (
    DEFAULT_MAX_PHOTOS,
    DEFAULT_MEAN_PHOTO_BYTES,
    DEFAULT_SAMPLE,
    DEFAULT_ZIPF,
    MAX_PHOTOS_LIMIT,
    MAX_SAMPLE,
    PlacementSimulation,
)
from photostore.settings import CONFIG_ENV, masked_dump

T = TypeVar("T")

app = typer.Typer(
    help="photostore: a photo storage service. Start it with `photostore serve`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the settings.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users and their API keys.", no_args_is_help=True)
shards_app = typer.Typer(help="Metadata shards.", no_args_is_help=True)
buckets_app = typer.Typer(help="Object buckets.", no_args_is_help=True)
queue_app = typer.Typer(help="The event log: topics, partitions and consumer lag.", no_args_is_help=True)
cluster_app = typer.Typer(
    help="A local cluster on loopback: PostgreSQL shards, SeaweedFS, a Kafka broker, Redis Cluster.",
    no_args_is_help=True,
)
simulate_app = typer.Typer(
    help="Simulations on paper with the real placement code; no service or settings needed.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
app.add_typer(users_app, name="users")
app.add_typer(shards_app, name="shards")
app.add_typer(buckets_app, name="buckets")
app.add_typer(queue_app, name="queue")
app.add_typer(cluster_app, name="cluster")
app.add_typer(simulate_app, name="simulate")


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the effective settings as JSON (secrets masked)."""
    console.print_json(json.dumps(masked_dump(settings_or_exit(config))))


@app.command()
def serve(
    config: ConfigOption = None,
    role: Annotated[
        Literal["all", "api", "worker", "relay"] | None,
        typer.Option(help="all: api + relay + workers in one process (default from settings)"),
    ] = None,
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port")] = None,
    workers: Annotated[int | None, typer.Option(help="HTTP worker processes")] = None,
) -> None:
    """Run the service: by default the API on http://127.0.0.1:8000 with the relay and workers.

    A worker or relay serves only /healthz, /readyz and /metrics on its port.
    """
    if config is not None:
        os.environ[CONFIG_ENV] = str(config.resolve())
    if role is not None:
        os.environ["PHOTOSTORE_SERVER__ROLE"] = role
    settings = settings_or_exit(None)
    configure_logging(settings, "api" if settings.server.role == "all" else settings.server.role)
    chosen = settings.server.role
    from granian import Granian
    from granian.constants import Interfaces

    bind_host = host or settings.server.host
    bind_port = port or settings.server.port
    err.print(
        f"photostore {chosen} on http://{bind_host}:{bind_port} (data in {settings.data_dir.resolve()})"
    )
    Granian(
        "photostore.api.app:create_app_from_environment",
        address=bind_host,
        port=bind_port,
        interface=Interfaces.ASGI,
        workers=workers or settings.server.workers,
        factory=True,
        log_level=settings.log_level,  # type: ignore[arg-type]
    ).serve()


@users_app.command("create")
def users_create(name: str, config: ConfigOption = None) -> None:
    """Create a user; prints JSON with its id and API key (shown once)."""
    from photostore.pipeline.users import create_user
    from photostore.runtime import open_runtime

    settings = settings_or_exit(config)

    async def go() -> dict[str, str]:
        runtime = await open_runtime(settings)
        try:
            user, api_key = await create_user(runtime.metadata, name)
        finally:
            await runtime.close()
        return {"id": str(user.id), "name": user.name, "api_key": api_key}

    print(json.dumps(run_command(go)))


@app.command()
def upload(
    paths: Annotated[list[Path], typer.Argument(help="files and folders (searched recursively)")],
    api_key: Annotated[str, typer.Option(envvar="PHOTOSTORE_API_KEY", help="the uploader's API key")],
    url: Annotated[str, typer.Option(help="the service's base URL")] = "http://127.0.0.1:8000",
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="uploads in flight")] = 4,
) -> None:
    """Bulk-import photos through the API, with a progress bar."""
    from photostore.uploader import collect_files, upload_files

    files = collect_files(paths)
    if not files:
        err.print("[red]error:[/red] no files found under the given paths")
        raise typer.Exit(2)
    report = asyncio.run(upload_files(files, url=url, api_key=api_key, concurrency=concurrency, console=err))
    console.print(
        f"created {report.created}, already stored {report.deduplicated}, failed {len(report.failures)}"
    )
    for path, reason in report.failures[:20]:
        err.print(f"  [red]failed[/red] {path}: {reason}")
    if report.failures:
        raise typer.Exit(1)


@shards_app.command("list")
def shards_list(config: ConfigOption = None) -> None:
    """Shards with their share of the ring, users, photos and bytes."""
    from photostore.runtime import open_runtime

    settings = settings_or_exit(config)

    async def go() -> None:
        runtime = await open_runtime(settings)
        try:
            stats = {s.shard_id: s for s in await runtime.metadata.shard_stats()}
            table = Table(title=f"metadata shards (map version {runtime.shard_map.version})")
            for column in ("shard", "ring share", "users", "photos", "bytes", "outbox pending"):
                table.add_column(column, justify="right")
            for shard_id in runtime.shard_map.shard_ids:
                s = stats.get(shard_id)
                share = runtime.shard_map.share(shard_id)
                cells = [s.users, s.photos, s.bytes, s.pending_outbox] if s else ["?"] * 4
                table.add_row(str(shard_id), f"{share:.2%}", *(str(c) for c in cells))
            console.print(table)
            warning = runtime.placement.settings_mismatch(settings)
            if warning:
                err.print(f"[yellow]note:[/yellow] {warning}")
        finally:
            await runtime.close()

    run_command(go)


@buckets_app.command("list")
def buckets_list(config: ConfigOption = None) -> None:
    """Buckets with their share of the ring (or the cold tier's), objects and bytes."""
    from photostore.blobs.usage import bucket_usage
    from photostore.runtime import open_runtime
    from photostore.tiering.buckets import cold_buckets

    settings = settings_or_exit(config)

    async def go() -> None:
        runtime = await open_runtime(settings)
        try:
            table = Table(title=f"object buckets (map version {runtime.bucket_map.version})")
            for column in ("bucket", "ring share", "objects", "bytes"):
                table.add_column(column, justify="right")
            cold = sorted(cold_buckets(settings))
            for bucket in [*runtime.bucket_map.buckets, *cold]:
                count, size = await bucket_usage(runtime.blobs, bucket)
                share = "cold tier" if bucket in cold else f"{runtime.bucket_map.share(bucket):.2%}"
                table.add_row(bucket, share, str(count), str(size))
            console.print(table)
        finally:
            await runtime.close()

    run_command(go)


@queue_app.command("status")
def queue_status(config: ConfigOption = None) -> None:
    """Topics, partitions, records and lag per consumer group."""
    from photostore.runtime import open_runtime

    settings = settings_or_exit(config)

    async def go() -> None:
        runtime = await open_runtime(settings)
        try:
            topics = Table(title="topics")
            for column in ("topic", "partitions", "retention", "records written"):
                topics.add_column(column, justify="right")
            for info in await runtime.events.topics():
                hours = info.retention_ms / 3_600_000
                topics.add_row(
                    info.name, str(info.partitions), f"{hours:g} h", str(sum(info.end_offsets.values()))
                )
            console.print(topics)
            groups = Table(title="consumer groups")
            for column in ("group", "topic", "lag", "partitions lagging", "max partition lag"):
                groups.add_column(column, justify="right")
            for group, topic in await runtime.events.groups():
                lag = await runtime.events.lag(group, topic)
                lagging = [v for v in lag.values() if v > 0]
                groups.add_row(
                    group, topic, str(sum(lag.values())), str(len(lagging)), str(max(lagging, default=0))
                )
            console.print(groups)
        finally:
            await runtime.close()

    run_command(go)


ClusterDir = Annotated[Path, typer.Option("--dir", help="where the cluster keeps its state, data and logs")]


@cluster_app.command("up")
def cluster_up_command(
    folder: ClusterDir = Path("cluster"),
    postgres: Annotated[
        str, typer.Option(help="a PostgreSQL server DSN; shard databases photo_shard_N are made on it")
    ] = "postgresql://postgres:postgres@127.0.0.1:5432/postgres",
) -> None:
    """Start SeaweedFS, the broker and Redis Cluster, and write a settings file for `serve --config`."""
    from photostore.cluster.local import cluster_up

    try:
        with err.status("starting the cluster") as status:
            state = cluster_up(folder, postgres, say=lambda text: status.update(text))
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from None
    console.print(f"cluster up: {len(state.processes)} processes; settings in {state.settings_file}")
    console.print(f"run the service on it:  photostore serve --config {state.settings_file}")


@cluster_app.command("status")
def cluster_status_command(folder: ClusterDir = Path("cluster")) -> None:
    """Each process `up` started: alive, and answering on its port."""
    from photostore.cluster.local import cluster_status

    try:
        state, rows = cluster_status(folder)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from None
    table = Table(title=f"local cluster in {state.folder}")
    for column in ("process", "pid", "port", "alive", "answering"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.name, str(row.pid), str(row.port), _yes(row.alive), _yes(row.answering))
    console.print(table)
    if not all(row.alive and row.answering for row in rows):
        raise typer.Exit(1)


def _yes(flag: bool) -> str:
    return "[green]yes[/green]" if flag else "[red]no[/red]"


@cluster_app.command("down")
def cluster_down_command(folder: ClusterDir = Path("cluster")) -> None:
    """Stop exactly the processes `up` started (data stays in the folder)."""
    from photostore.cluster.local import cluster_down

    try:
        stopped = cluster_down(folder, say=lambda text: err.print(text))
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from None
    console.print(f"cluster down: stopped {stopped} processes")


@simulate_app.command("placement")
def simulate_placement_command(
    users: Annotated[
        int, typer.Option(help="users to place (>= 1); the spec's target is 1e9")
    ] = 1_000_000_000,
    shards: Annotated[
        int, typer.Option(help="metadata shards (>= 1); one more is added to measure moves")
    ] = 1024,
    buckets: Annotated[int, typer.Option(help="object buckets (>= 1)")] = 64,
    sample: Annotated[
        int,
        typer.Option(help=f"users actually drawn (<= users, <= {MAX_SAMPLE:,}); as many photos are drawn"),
    ] = DEFAULT_SAMPLE,
    zipf: Annotated[
        float, typer.Option(help="Zipf exponent of photos per user (> 0; larger is less skewed)")
    ] = DEFAULT_ZIPF,
    max_photos: Annotated[
        int, typer.Option(help=f"photos per user at most (1 .. {MAX_PHOTOS_LIMIT:,}); the Zipf law's cut-off")
    ] = DEFAULT_MAX_PHOTOS,
    mean_photo_bytes: Annotated[int, typer.Option(help="mean size of a photo in bytes")] = (
        DEFAULT_MEAN_PHOTO_BYTES
    ),
    seed: Annotated[int, typer.Option(help="random seed (>= 0); the same seed gives the same figures")] = 0,
    chart: Annotated[
        Path | None, typer.Option(help="also write a PNG chart of per-shard and per-bucket load here")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the figures as JSON instead of a table")
    ] = False,
) -> None:
    """Load per shard and bucket (max/mean) and what adding a shard moves, estimated from a sample."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from photostore.placement.simulate import simulate_placement, write_chart

    started = time.perf_counter()
    columns = (TextColumn("sampling"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("sample", total=None)
            result = simulate_placement(
                users,
                shards,
                buckets,
                sample=sample,
                zipf=zipf,
                max_photos=max_photos,
                mean_photo_bytes=mean_photo_bytes,
                seed=seed,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if chart is not None:
        try:
            write_chart(result, chart)
        except OSError as exc:
            err.print(f"[red]error:[/red] cannot write the chart to {chart}: {exc.strerror or exc}")
            raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(result.to_dict()))
    else:
        console.print(_simulation_table(result))
    if chart is not None:
        err.print(f"chart written to {chart}")
    err.print(f"simulated in {time.perf_counter() - started:.1f} s")


def _simulation_table(result: PlacementSimulation) -> Table:
    """Sample figures beside their full-scale estimates; the module docstring of simulate has the method."""
    p, added, unit = result.params, result.added, result.params.mean_photo_bytes
    sample = p.sample
    per_user = result.photos_per_user
    table = Table(
        title=f"placement of {p.users:,} users on {p.shards} shards and {p.buckets} buckets",
        caption=(
            f"photos per user in the sample: mean {per_user.mean:,.0f}, median {per_user.median:,}, "
            f"p99 {per_user.p99:,}, max {per_user.max:,}\n"
            f"adding shard {added.shard_id} gives it {added.key_space:.4%} of the key space; "
            f"every moved user went to it: {'yes' if added.only_to_new_shard else 'NO'}\n"
            "estimates scale the sample's measured spread to all users; sample figures include sampling noise"
        ),
    )
    table.add_column("")
    table.add_column(f"sample (seed {p.seed})", justify="right")
    table.add_column(f"estimate at {p.users:,} users", justify="right")
    users, rows, objects = result.shard_users, result.shard_rows, result.bucket_objects
    ideal = f"ideal 1/{p.shards + 1}"
    body = [
        ("users", f"{sample:,}", f"{p.users:,}"),
        (
            f"photos (Zipf {p.zipf:g}, 1 .. {p.max_photos:,} a user)",
            f"{result.sample_photos:,}",
            f"{result.total_photos:,.0f}",
        ),
        (f"bytes ({_bytes(unit)} a photo)", _bytes(result.sample_photos * unit), _bytes(result.total_bytes)),
        ("per shard: users, mean", _mean(users.sample), f"{users.mean:,.0f}"),
        ("per shard: users, max/mean", f"{users.sample_max_over_mean:.3f}", f"{users.max_over_mean:.3f}"),
        ("per shard: photo rows, mean", _mean(rows.sample), f"{rows.mean:,.0f}"),
        ("per shard: bytes, mean", _bytes(sum(rows.sample) / p.shards * unit), _bytes(rows.mean * unit)),
        (
            "per shard: rows and bytes, max/mean",
            f"{rows.sample_max_over_mean:.3f}",
            f"{rows.max_over_mean:.3f}",
        ),
        (f"per bucket: objects, mean (of {sample:,} photos)", _mean(objects.sample), f"{objects.mean:,.0f}"),
        (
            "per bucket: bytes, mean",
            _bytes(sum(objects.sample) / p.buckets * unit),
            _bytes(objects.mean * unit),
        ),
        (
            "per bucket: objects and bytes, max/mean",
            f"{objects.sample_max_over_mean:.3f}",
            f"{objects.max_over_mean:.3f}",
        ),
        (
            f"add shard {added.shard_id}: users moved",
            f"{round(added.users_sample * sample):,} ({added.users_sample:.4%})",
            f"{added.users * p.users:,.0f} ({added.users:.4%})",
        ),
        (
            f"add shard {added.shard_id}: rows and bytes moved",
            f"{_bytes(added.rows_sample * result.sample_photos * unit)} ({added.rows_sample:.4%})",
            f"{_bytes(added.rows * result.total_bytes)} ({added.rows:.4%})",
        ),
        (
            f"users moved / {ideal}",
            f"{added.users_sample / added.ideal:.3f}",
            f"{added.users / added.ideal:.3f}",
        ),
        (
            f"rows moved / {ideal}",
            f"{added.rows_sample / added.ideal:.3f}",
            f"{added.rows / added.ideal:.3f}",
        ),
    ]
    for row in body:
        table.add_row(*row)
    return table


def _mean(loads: tuple[int, ...]) -> str:
    return f"{sum(loads) / len(loads):,.1f}"


def _bytes(amount: float) -> str:
    """Decimal units, as disks and object stores are sold: 3000000 -> '3 MB'."""
    for power, prefix in ((18, "E"), (15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k")):
        if amount >= 10**power:
            return f"{amount / 10**power:.3g} {prefix}B"
    return f"{amount:.0f} B"


from photostore import (  # noqa: E402 - they register their commands
    cli_capacity,
    cli_cost,
    cli_integrity,
    cli_keys,
    cli_ops,
    cli_rebalance,
    cli_regions,
    cli_tier,
)

cli_rebalance.register(app, shards_app, buckets_app)
cli_regions.register(app)
cli_ops.register(app)
cli_capacity.register(app)
cli_cost.register(app)
cli_tier.register(app)
cli_integrity.register(app)
cli_keys.register(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
