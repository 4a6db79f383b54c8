"""``photostore autoscale``: the spec's autoscaler and consumer scaling, on a local pool or Kubernetes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Annotated

import httpx
import typer
from rich.console import Group
from rich.table import Table

from photostore.cli_support import ConfigOption, console, err, run_command, settings_or_exit
from photostore.ops.actuators import Actuator, KubernetesDeployments, LocalProcessPool
from photostore.ops.autoscaler import Autoscaler, Evaluation
from photostore.ops.metric_sources import MetricSource, PrometheusSource, ServiceSource
from photostore.ops.rules import RuleBook
from photostore.ops.top import TopView
from photostore.settings import CONFIG_ENV, Settings


def autoscale(
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="judge the rules and print; never scale")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="one evaluation, then exit")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per evaluation")] = False,
    interval: Annotated[
        float | None, typer.Option(help="seconds between evaluations (autoscale.interval_s)")
    ] = None,
) -> None:
    """Scale services by the rules in settings (autoscale.rules, autoscale.consumers).

    Metrics come from the service's /metrics (autoscale.service_urls) or Prometheus
    (autoscale.source = "prometheus"). The local actuator starts and stops `photostore serve --role`
    processes on this machine, which stop with it; the kubernetes one patches Deployments' replicas.
    A rule's cooldown only holds that rule back: the loop never sleeps on it.
    """
    if config is not None:  # the pool's processes read the same file
        os.environ[CONFIG_ENV] = str(config.resolve())
    settings = settings_or_exit(None)
    book = RuleBook.from_settings(settings.autoscale)
    if not book.rules:
        err.print("[red]error:[/] no rules: set autoscale.rules or enable autoscale.consumers")
        raise typer.Exit(2)
    run_command(
        lambda: _run(settings, book, dry_run, once, as_json, interval or settings.autoscale.interval_s)
    )


async def _run(
    settings: Settings, book: RuleBook, dry_run: bool, once: bool, as_json: bool, interval_s: float
) -> None:
    scaling = settings.autoscale
    actuator: Actuator
    pool: LocalProcessPool | None = None
    if scaling.actuator == "kubernetes":
        actuator = KubernetesDeployments(scaling.kubernetes)
    else:
        pool = LocalProcessPool(settings.data_dir / "logs" / "autoscale")
        actuator = pool
    async with httpx.AsyncClient() as client:
        source: MetricSource
        if scaling.source == "prometheus":
            source = PrometheusSource(scaling.prometheus_url, scaling.queries, client)
        else:
            source = ServiceSource(lambda: [*scaling.service_urls, *(pool.urls() if pool else [])], client)
        scaler = Autoscaler(book, source, actuator, dry_run=dry_run)
        report = _json_report if as_json else _table_report
        try:
            if once:
                report(await scaler.evaluate())
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            mode = "dry run" if dry_run else scaling.actuator
            err.print(
                f"autoscaler ({mode}) every {interval_s:g} s on {', '.join(book.services)}; Ctrl-C stops it"
            )
            await scaler.run(interval_s, report, stop)
        finally:
            await actuator.close()


def _json_report(evaluation: Evaluation) -> None:
    print(json.dumps(evaluation.as_json()), flush=True)


def _table_report(evaluation: Evaluation) -> None:
    table = Table("service", "metric", "value", "rule", "replicas", "target", "outcome")
    for decision in evaluation.decisions:
        rule = decision.rule
        value = "-" if decision.value is None else f"{decision.value:,.2f}"
        sign = ">" if rule.action == "scale_up" else "<"
        change = f"{'+' if rule.action == 'scale_up' else '-'}{rule.count}"
        table.add_row(
            rule.service,
            rule.metric,
            value,
            f"{sign} {rule.threshold:g}: {change}",
            str(decision.replicas),
            str(decision.target),
            decision.outcome,
        )
    console.print(table)


def top(
    urls: Annotated[
        list[str] | None, typer.Option("--url", help="a process's base URL (repeat for several)")
    ] = None,
    interval: Annotated[float, typer.Option(help="seconds between readings")] = 2.0,
    once: Annotated[
        bool, typer.Option("--once", help="one view (two readings one interval apart), then exit")
    ] = False,
) -> None:
    """A live view of running processes: requests, latency, errors, lag, workers, cache, shards."""
    targets = urls or ["http://127.0.0.1:8000"]
    run_command(lambda: _top(targets, interval, once))


async def _top(urls: list[str], interval_s: float, once: bool) -> None:
    from rich.live import Live

    from photostore.ops.top import read_processes, summarize

    async with httpx.AsyncClient() as client:
        before = await read_processes(client, urls)
        if all(state == "down" for state in before.processes.values()):
            err.print(
                f"[red]error:[/] no process answered at {', '.join(urls)}: start one with `photostore serve`"
            )
            raise typer.Exit(1)
        if once:
            await asyncio.sleep(interval_s)
            console.print(_top_tables(summarize(before, await read_processes(client, urls))))
            return
        with Live(console=console, refresh_per_second=4) as live:
            while True:
                await asyncio.sleep(interval_s)
                after = await read_processes(client, urls)
                live.update(_top_tables(summarize(before, after)))
                before = after


def _top_tables(view: TopView) -> Group:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f} ms"

    overview = Table(
        "requests/s",
        "p50",
        "p99",
        "5xx",
        "uploads/s",
        "derivatives/s",
        "uploading",
        "users",
        "cache hits",
        title=f"photostore top (last {view.seconds:.1f} s)",
    )
    overview.add_row(
        f"{view.request_rate:,.1f}",
        ms(view.p50_ms),
        ms(view.p99_ms),
        f"{view.error_share:.1%}",
        f"{view.uploads_per_s:,.1f}",
        f"{view.derivatives_per_s:,.1f}",
        f"{view.concurrent_uploads:g}",
        f"{view.active_users:g}",
        "-" if view.cache_hit_ratio is None else f"{view.cache_hit_ratio:.1%}",
    )
    processes = Table("process", "service", "cpu (cores)", title="processes")
    for url, service in view.processes.items():
        cpu = view.cpu.get(service)
        shown = "[red]down[/]" if service == "down" else service
        processes.add_row(url, shown, "-" if cpu is None else f"{cpu:.2f}")
    queues = Table("group", "topic", "lag", title="consumer lag")
    for (group, topic), lag in sorted(view.lag.items()):
        queues.add_row(group, topic, f"{lag:,.0f}")
    shards = Table("shard", "up", "pool in use", title="shards")
    for shard in sorted(view.shards_up, key=lambda s: int(s) if s.isdigit() else 0):
        used, limit = view.pools.get(shard, (0.0, 0.0))
        state = "[green]up[/]" if view.shards_up[shard] > 0 else "[red]down[/]"
        shards.add_row(shard, state, f"{used:g} / {limit:g}")
    return Group(overview, processes, queues, shards)


def register(app: typer.Typer) -> None:
    app.command()(autoscale)
    app.command()(top)
