"""The cost recommendations as a picture: monthly saving per recommendation, one bar each (PNG)."""

from __future__ import annotations

from pathlib import Path

from photostore.ops.cost import CostReport


def draw_savings(report: CostReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt

    recommendations = list(reversed(report.recommendations))  # barh draws bottom-up: keep table order
    labels = [f"{rec.kind}: {rec.subject}" for rec in recommendations]
    savings = [rec.saving for rec in recommendations]
    colours = ["tab:green" if saving >= 0 else "tab:red" for saving in savings]  # red: costs more
    figure, axis = plt.subplots(figsize=(10, 1.5 + 0.5 * max(1, len(labels))))
    axis.barh(labels, savings, color=colours)
    axis.axvline(0, color="black", linewidth=0.8)
    axis.margins(x=0.15)  # room for the dollar labels at the bars' ends
    for position, saving in enumerate(savings):
        axis.annotate(
            f"${saving:,.2f}",
            (saving, position),
            xytext=(4 if saving >= 0 else -4, 0),
            textcoords="offset points",
            ha="left" if saving >= 0 else "right",
            va="center",
        )
    if not labels:
        axis.text(0.5, 0.5, "no recommendations", ha="center", va="center", transform=axis.transAxes)
    axis.set_xlabel("saving, dollars per month")
    axis.grid(axis="x", alpha=0.3)
    axis.set_title(f"photostore cost optimize: ${report.monthly_saving:,.2f} a month in all")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
