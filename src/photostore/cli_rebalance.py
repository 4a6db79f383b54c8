"""``photostore shards add|remove``, ``rebalance [--dry-run]``, ``rebalance status`` and ``verify``."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from photostore.cli_support import ConfigOption, console, err, human_bytes, run_command, settings_or_exit
from photostore.placement.bucket_map import BucketMap
from photostore.placement.shard_map import ShardMap

if TYPE_CHECKING:
    from photostore.rebalance.buckets import BucketMover
    from photostore.rebalance.preview import Preview
    from photostore.runtime import Runtime

rebalance_app = typer.Typer(
    help=(
        "Run (or resume after a crash) the planned shard rebalance, then move objects to the buckets "
        "the bucket map gives them. `shards add|remove` and `buckets add|remove` plan the moves."
    ),
    invoke_without_command=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="print a machine-readable report")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="print what would move, change nothing")]
NoRunOption = Annotated[
    bool, typer.Option("--plan-only", help="record the plan; move nothing until `photostore rebalance`")
]


def register(app: typer.Typer, shards_app: typer.Typer, buckets_app: typer.Typer) -> None:
    shards_app.command("add")(shards_add)
    shards_app.command("remove")(shards_remove)
    buckets_app.command("add")(buckets_add)
    buckets_app.command("remove")(buckets_remove)
    app.add_typer(rebalance_app, name="rebalance")
    app.command("verify")(verify)


async def _preview(runtime: Runtime, current: ShardMap, target: ShardMap) -> Preview:
    from photostore.metadata.sql_store import SqlMetadataStore
    from photostore.rebalance.preview import key_loads, preview

    store = runtime.metadata
    assert isinstance(store, SqlMetadataStore)
    await store.ensure_shards(set(current.shard_ids))
    loads = [(s, await key_loads(store.primary_engine(s))) for s in current.shard_ids]
    return preview(current, target, loads)


def _print_preview(title: str, found: Preview, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "plan": title,
                    "moves": [_pair(m) for m in found.moves],
                    "moved_users": found.moved_users,
                    "total_users": found.total_users,
                    "moved_user_fraction": found.moved_user_fraction,
                    "moved_key_fraction": found.moved_key_fraction,
                    "ideal_fraction": found.ideal_fraction,
                    "ratio_to_ideal": found.ratio_to_ideal,
                }
            )
        )
        return
    table = Table(title=title)
    for column in ("from shard", "to shard", "users", "photos", "bytes"):
        table.add_column(column, justify="right")
    for move in found.moves:
        table.add_row(
            str(move.source), str(move.target), str(move.users), str(move.photos), human_bytes(move.bytes)
        )
    console.print(table)
    console.print(
        f"moves {found.moved_users} of {found.total_users} users ({found.moved_user_fraction:.2%}); "
        f"key space {found.moved_key_fraction:.2%}; ideal {found.ideal_fraction:.2%}; "
        f"ratio to ideal {found.ratio_to_ideal:.3f}"
    )


def _pair(move: Any) -> dict[str, int]:
    return {name: getattr(move, name) for name in ("source", "target", "users", "photos", "bytes")}


def _plan_change(
    config: Path | None,
    describe: str,
    change: Callable[[ShardMap], ShardMap],
    dry_run: bool,
    plan_only: bool,
    as_json: bool,
) -> None:
    from photostore.rebalance.shard_mover import start_plan
    from photostore.runtime import open_runtime

    settings = settings_or_exit(config)

    async def go() -> None:
        runtime = await open_runtime(settings)
        try:
            current = runtime.placement.reload()[0]
            target = change(current)
            if dry_run:
                _print_preview(f"dry run: {describe}", await _preview(runtime, current, target), as_json)
                return
            start_plan(runtime.placement, runtime.control, change, describe)
            err.print(f"planned: {describe}")
            if not plan_only:
                await _run_plan(runtime, as_json)
        finally:
            await runtime.close()

    run_command(go)


def _bucket_mover(runtime: Runtime, target: BucketMap) -> BucketMover:
    from photostore.rebalance.buckets import BucketMover
    from photostore.rebalance.destinations import MapDestinations
    from photostore.tiering.buckets import cold_buckets, move_journal_dir

    grace = runtime.settings.rebalance.object_grace_s
    # Originals tiering put in the cold bucket stay there; their variants follow the map.
    rule = MapDestinations(target, pinned=cold_buckets(runtime.settings))
    journal = move_journal_dir(runtime)
    return BucketMover(runtime.metadata, runtime.blobs, target, journal, grace_s=grace, rule=rule)


def _show_bucket_plan(plan: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(plan))
        return
    table = Table(title=f"dry run: objects to move (bucket map version {plan['target_version']})")
    for column in ("from bucket", "to bucket", "objects", "bytes"):
        table.add_column(column, justify="right")
    for pair in plan["pairs"]:
        table.add_row(pair["source"], pair["target"], str(pair["objects"]), human_bytes(pair["bytes"]))
    console.print(table)
    ideal = plan["ideal_share"]
    console.print(
        f"moves {plan['objects_to_move']} of {plan['objects']} objects ({plan['moved_share']:.2%}); "
        f"ideal {'n/a' if ideal is None else format(ideal, '.2%')}"
    )


async def _move_objects(runtime: Runtime, previous: BucketMap | None, dry_run: bool, as_json: bool) -> bool:
    """Move every object to the bucket the stored map gives it; False if some could not be."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    mover = _bucket_mover(runtime, runtime.placement.reload()[1])
    plan = await mover.plan(previous)
    if dry_run:
        _show_bucket_plan(plan.to_dict(), as_json)
        return True
    columns = (TextColumn("moving objects"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("move", total=plan.objects_to_move)
        result = await mover.run(lambda done, total: progress.update(task, completed=done, total=total), plan)
    summary = {"plan_id": uuid.uuid4().hex, "describe": "move objects to their buckets", **result.to_dict()}
    runtime.control.record_finished(
        {k: v for k, v in summary.items() if k not in ("left_behind", "failures")}
    )
    if as_json:
        print(json.dumps({**result.to_dict(), "counters": mover.counters.as_dict()}))
    else:
        console.print(
            f"objects: {result.objects_moved} moved ({human_bytes(result.bytes_moved)}), "
            f"{len(result.left_behind)} photos left for a later run, {len(result.failures)} failures"
        )
    return result.complete


def _change_buckets(
    config: Path | None,
    change: Callable[[BucketMap], BucketMap],
    dry_run: bool,
    plan_only: bool,
    as_json: bool,
) -> None:
    from photostore.runtime import open_runtime

    settings = settings_or_exit(config)

    async def go() -> bool:
        runtime = await open_runtime(settings)
        try:
            current = runtime.placement.reload()[1]
            target = change(current)
            if dry_run:
                _show_bucket_plan((await _bucket_mover(runtime, target).plan(current)).to_dict(), as_json)
                return True
            for name in set(target.buckets) - set(current.buckets):
                await runtime.blobs.add_bucket(name)
            runtime.placement.save(target)  # new uploads follow the new map from here
            runtime.control.bump()  # every process reloads its maps
            err.print(f"bucket map version {target.version}: {list(target.buckets)}")
            if plan_only:
                return True
            return await _move_objects(runtime, current, dry_run=False, as_json=as_json)
        finally:
            await runtime.close()

    if not run_command(go):
        raise typer.Exit(1)


def buckets_add(
    name: Annotated[str, typer.Argument(help="the new bucket's name (created if missing)")],
    weight: Annotated[float, typer.Option(help="the new bucket's weight (1.0 = like the others)")] = 1.0,
    dry_run: DryRunOption = False,
    plan_only: NoRunOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Add a bucket and move ~1/(N+1) of the objects to it: copy, verify SHA-256, switch, delete."""

    def change(current: BucketMap) -> BucketMap:
        if name in current.buckets:
            raise typer.BadParameter(f"bucket {name} is already on the map")
        return current.with_bucket_added(name, weight)

    _change_buckets(config, change, dry_run, plan_only, as_json)


def buckets_remove(
    name: Annotated[str, typer.Argument(help="the bucket to empty and take off the map")],
    dry_run: DryRunOption = False,
    plan_only: NoRunOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Move every object out of a bucket, online, and take it off the map (the bucket itself stays)."""

    def change(current: BucketMap) -> BucketMap:
        if name not in current.buckets:
            raise typer.BadParameter(
                f"bucket {name} is not on the map; the buckets are {list(current.buckets)}"
            )
        return current.with_bucket_removed(name)

    _change_buckets(config, change, dry_run, plan_only, as_json)


async def _run_plan(runtime: Runtime, as_json: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from photostore.metadata.sql_store import SqlMetadataStore
    from photostore.rebalance.shard_mover import ShardRebalancer

    store = runtime.metadata
    assert isinstance(store, SqlMetadataStore)
    columns = (TextColumn("moving users"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("move", total=None)
        options = runtime.settings.rebalance
        mover = ShardRebalancer(
            store,
            runtime.placement,
            runtime.control,
            parallel=options.parallel,
            batch_keys=options.batch_keys,
            plan_grace_s=options.plan_grace_s,
            cleanup_grace_s=options.cleanup_grace_s,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
        summary = await mover.run()
    if summary is None:
        err.print("no rebalance is planned: `photostore shards add` or `shards remove` plans one")
        return
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(
            f"done: {summary['describe']}: {summary['keys']} placement keys, {summary['rows']} rows moved; "
            f"writes fenced p99 {summary['fenced_p99_s']:.3f} s, max {summary['fenced_max_s']:.3f} s"
        )


def shards_add(
    weight: Annotated[float, typer.Option(help="the new shard's weight (1.0 = like the others)")] = 1.0,
    dry_run: DryRunOption = False,
    plan_only: NoRunOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Add a shard (the next id) and move ~1/(N+1) of the users to it, online."""

    def change(current: ShardMap) -> ShardMap:
        return current.with_shard_added(current.next_shard_id, weight)

    _plan_change(config, "add a shard", change, dry_run, plan_only, as_json)


def shards_remove(
    shard_id: Annotated[int, typer.Argument(help="the shard to empty and take off the map")],
    dry_run: DryRunOption = False,
    plan_only: NoRunOption = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Move every user off a shard, online, then take it off the map."""

    def change(current: ShardMap) -> ShardMap:
        if shard_id not in current.shard_ids:
            raise typer.BadParameter(
                f"shard {shard_id} is not on the map; the shards are {list(current.shard_ids)}"
            )
        return current.with_shard_removed(shard_id)

    _plan_change(config, f"remove shard {shard_id}", change, dry_run, plan_only, as_json)


@rebalance_app.callback()
def rebalance(
    ctx: typer.Context,
    dry_run: DryRunOption = False,
    objects: Annotated[
        bool, typer.Option(help="also move objects to the buckets the bucket map gives them")
    ] = True,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Run (or resume after a crash) the planned shard rebalance, then move objects to their buckets."""
    if ctx.invoked_subcommand is not None:
        return
    from photostore.runtime import open_runtime

    settings = settings_or_exit(config)

    async def go() -> bool:
        runtime = await open_runtime(settings)
        try:
            plan = runtime.control.snapshot().plan
            if dry_run:
                if plan is None:
                    err.print("no shard rebalance is planned")
                else:
                    current = runtime.placement.reload()[0]
                    target = ShardMap.from_dict(plan["target"])
                    preview = await _preview(runtime, current, target)
                    _print_preview(f"dry run: {plan['describe']}", preview, as_json)
            else:
                await _run_plan(runtime, as_json)
            return not objects or await _move_objects(runtime, None, dry_run, as_json)
        finally:
            await runtime.close()

    if not run_command(go):
        raise typer.Exit(1)


@rebalance_app.command("status")
def rebalance_status(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """The running plan, how far it got, and the plans finished before it."""
    from photostore.placement.store import PlacementStore
    from photostore.rebalance.control import ControlStore

    settings = settings_or_exit(config)
    control = ControlStore(PlacementStore.for_settings(settings).directory)
    snapshot = control.snapshot()
    steps: dict[str, int] = {}
    for move in control.moves().values():
        steps[move.step] = steps.get(move.step, 0) + 1
    ranges: dict[str, int] = {}
    for record in snapshot.ranges:
        ranges[record.step] = ranges.get(record.step, 0) + 1
    finished = control.finished()
    report: dict[str, Any] = {
        "routing_version": snapshot.version,
        "plan": None if snapshot.plan is None else snapshot.plan["describe"],
        "ranges_by_step": ranges,
        "keys_by_step": steps,
        "finished": finished,
    }
    if as_json:
        print(json.dumps(report))
        return
    if snapshot.plan is None:
        console.print("no rebalance running")
    else:
        console.print(f"running: {report['plan']}; key ranges {ranges}; placement keys {steps}")
    for done in finished:
        if "keys" in done:
            console.print(f"finished: {done['describe']}: {done['keys']} keys, {done['rows']} rows")
        else:
            console.print(f"finished: {done['describe']}: {done.get('objects_moved', 0)} objects")


def verify(
    checksums: Annotated[bool, typer.Option(help="read every object and compare its SHA-256")] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Check every user is on the shard routing names (and only there) and every object is where
    its row says and the bucket map places it; exit 1 on any problem."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from photostore.metadata.sql_store import SqlMetadataStore
    from photostore.rebalance.buckets import verify_objects
    from photostore.rebalance.preview import key_loads
    from photostore.rebalance.verify import check_shards
    from photostore.runtime import open_runtime
    from photostore.tiering.buckets import cold_buckets

    settings = settings_or_exit(config)

    async def go() -> list[dict[str, Any]]:
        runtime = await open_runtime(settings)
        try:
            store = runtime.metadata
            assert isinstance(store, SqlMetadataStore)
            if runtime.control.snapshot().plan is not None:
                err.print(
                    "[yellow]note:[/yellow] a rebalance is running: users being moved show on two shards"
                )
            loads = [(s, await key_loads(store.primary_engine(s))) for s in store.shard_ids()]
            users, misplaced = check_shards(runtime.routing.routing, loads)
            columns = (TextColumn("checking objects"), BarColumn(), MofNCompleteColumn())
            with Progress(*columns, console=err, transient=True, disable=not sys.stderr.isatty()) as progress:
                task = progress.add_task("verify", total=None)
                objects = await verify_objects(
                    store,
                    runtime.blobs,
                    runtime.placement.reload()[1],
                    checksums=checksums,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                    pinned=cold_buckets(settings),
                )
            if not as_json:
                console.print(f"shards: {users} users checked, {len(misplaced)} misplaced")
                console.print(
                    f"objects: {objects.objects} of {objects.photos} photos checked"
                    f"{' with checksums' if checksums else ''}, {len(objects.problems)} problems"
                )
            return [p.as_dict() for p in misplaced] + [p.to_dict() for p in objects.problems]
        finally:
            await runtime.close()

    problems = run_command(go)
    if as_json:
        print(json.dumps({"problems": problems, "clean": not problems}))
    else:
        for problem in problems[:50]:
            err.print(f"[red]problem:[/red] {problem}")
    if problems:
        raise typer.Exit(1)
