"""What every ``photostore`` command shares: the consoles, the --config option, error handling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from photostore.errors import ConfigError, PhotostoreError
from photostore.settings import CONFIG_ENV, Settings, load_settings

T = TypeVar("T")

console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help=f"TOML settings file (or set {CONFIG_ENV})", show_default=False),
]


def settings_or_exit(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(2) from None


def run_command(make: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(_as_coroutine(make))
    except PhotostoreError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from None


async def _as_coroutine(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def human_bytes(amount: float) -> str:
    """``1536`` -> ``1.5 KiB``: sizes as a person reads them."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable: the loop returns at TiB")
