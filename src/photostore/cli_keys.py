"""``photostore keys create|list|revoke|rotate``: a user's API keys and their scopes."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import typer
from rich.table import Table

from photostore.cli_support import ConfigOption, console, err, run_command, settings_or_exit
from photostore.domain import ApiKey, Scope

keys_app = typer.Typer(
    help="A user's API keys: created with scopes (read, write, admin), listed, revoked, rotated. "
    "Only a hash of each key is stored; a new key is shown once.",
    no_args_is_help=True,
)

UserArgument = Annotated[str, typer.Argument(help="the user's id (from `photostore users create`)")]
KeyArgument = Annotated[str, typer.Argument(help="the key's id (from `photostore keys list`)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


def _user_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        err.print(f"[red]error:[/red] {text!r} is not a user id (a UUID)")
        raise typer.Exit(2) from None


def _key_json(key: ApiKey, token: str | None = None) -> dict[str, object]:
    data: dict[str, object] = {
        "key_id": key.key_id,
        "user_id": str(key.user_id),
        "scopes": sorted(scope.value for scope in key.scopes),
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }
    if token is not None:
        data["api_key"] = token
    return data


@keys_app.command("create")
def create(
    user: UserArgument,
    scope: Annotated[
        list[Scope] | None, typer.Option("--scope", "-s", help="repeat for several; default: read and write")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a key for the user; prints JSON with the key (shown once) and its scopes."""
    from photostore.pipeline.key_admin import create_key
    from photostore.runtime import open_runtime

    user_id = _user_id(user)
    scopes = frozenset(scope or (Scope.READ, Scope.WRITE))
    settings = settings_or_exit(config)

    async def go() -> dict[str, object]:
        runtime = await open_runtime(settings)
        try:
            token, record = await create_key(runtime.metadata, user_id, scopes)
        finally:
            await runtime.close()
        return _key_json(record, token)

    print(json.dumps(run_command(go)))


@keys_app.command("list")
def list_keys(user: UserArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """The user's keys, revoked ones included, oldest first (ids and scopes, never secrets)."""
    from photostore.runtime import open_runtime

    user_id = _user_id(user)
    settings = settings_or_exit(config)

    async def go() -> list[ApiKey]:
        runtime = await open_runtime(settings)
        try:
            return await runtime.metadata.list_api_keys(user_id)
        finally:
            await runtime.close()

    keys = run_command(go)
    if as_json:
        print(json.dumps([_key_json(key) for key in keys]))
        return
    table = Table(title=f"API keys of {user_id}")
    for column in ("key id", "scopes", "created", "revoked"):
        table.add_column(column)
    for key in keys:
        revoked = f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else ""
        scopes = ", ".join(sorted(s.value for s in key.scopes))
        table.add_row(key.key_id, scopes, f"{key.created_at:%Y-%m-%d %H:%M}", revoked)
    console.print(table)


@keys_app.command("revoke")
def revoke(user: UserArgument, key: KeyArgument, config: ConfigOption = None) -> None:
    """Revoke a key: refused from then on (within 30 s on a process that verified it just before)."""
    from photostore.pipeline.key_admin import revoke_key
    from photostore.runtime import open_runtime

    user_id = _user_id(user)
    settings = settings_or_exit(config)

    async def go() -> None:
        runtime = await open_runtime(settings)
        try:
            await revoke_key(runtime.metadata, runtime.cache, user_id, key)
        finally:
            await runtime.close()

    run_command(go)
    console.print(f"revoked {key}")


@keys_app.command("rotate")
def rotate(user: UserArgument, key: KeyArgument, config: ConfigOption = None) -> None:
    """Replace a key: a new one with the same scopes (printed as JSON, shown once), then the old one
    revoked."""
    from photostore.pipeline.key_admin import rotate_key
    from photostore.runtime import open_runtime

    user_id = _user_id(user)
    settings = settings_or_exit(config)

    async def go() -> dict[str, object]:
        runtime = await open_runtime(settings)
        try:
            token, record = await rotate_key(runtime.metadata, runtime.cache, user_id, key)
        finally:
            await runtime.close()
        return {**_key_json(record, token), "replaces": key}

    print(json.dumps(run_command(go)))


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
