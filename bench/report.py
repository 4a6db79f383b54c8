"""Where benchmark tables go: printed, and kept under bench/results/ (gitignored) for the docs."""

from __future__ import annotations

import datetime
import platform
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def write_result(name: str, table: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    path = RESULTS / f"{name}.md"
    path.write_text(f"<!-- {stamp}, {platform.node()}, {platform.python_version()} -->\n{table}\n")
    return path
