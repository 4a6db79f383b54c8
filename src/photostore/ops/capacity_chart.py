"""The capacity plan as a picture: growth, fleet and monthly cost over the planned months (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from photostore.ops.fleet import MonthFleet
from photostore.ops.growth import PB, MonthProjection


def draw_plan(rows: Sequence[MonthProjection], fleets: Sequence[MonthFleet], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt

    months = [row.month for row in rows]
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    axes[0][0].plot(months, [row.users / 1e6 for row in rows], color="tab:blue")
    axes[0][0].set_title("users (millions)")
    axes[0][1].plot(months, [row.storage_bytes / PB for row in rows], color="tab:green")
    axes[0][1].set_title("storage (PB, logical)")
    for role, colour in (("upload", "tab:orange"), ("worker", "tab:red"), ("api", "tab:purple")):
        axes[1][0].plot(months, [fleet.servers[role] for fleet in fleets], label=role, color=colour)
    axes[1][0].set_title("servers by role")
    axes[1][0].legend()
    axes[1][1].plot(months, [fleet.monthly_cost["total"] / 1e3 for fleet in fleets], color="tab:brown")
    axes[1][1].set_title("cost per month (thousands)")
    for axis in (axes[1][0], axes[1][1]):
        axis.set_xlabel("month")
    for row_axes in axes:
        for axis in row_axes:
            axis.grid(alpha=0.3)
    figure.suptitle("photostore capacity plan")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
