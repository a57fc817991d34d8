"""Charts of follower counts over time, rendered to PNG or SVG without a display (matplotlib's Agg)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

# The object API (Figure, not pyplot) keeps no global state, so rendering is safe in any thread.
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

FORMATS = (".png", ".svg")
# More lines than this are unreadable: the largest groups are drawn, and the title says so.
MAX_LINES = 10


def span(series: dict[str, list[tuple[date, int]]]) -> tuple[date, date]:
    """The days the x axis shows: exactly the data's first to last day (a single day gets one either
    side), so the lines fill the chart instead of sitting in matplotlib's default margins."""
    days = [d for points in series.values() for d, _ in points]
    first, last = min(days), max(days)
    if first == last:
        return first - timedelta(days=1), last + timedelta(days=1)
    return first, last


def render(series: dict[str, list[tuple[date, int]]], path: Path, title: str) -> int:
    """Draw one line per group (followers per UTC day) to ``path``; return the number of lines drawn."""
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"chart: {path.name} must end with .png or .svg")
    largest = sorted(series, key=lambda name: series[name][-1][1], reverse=True)[:MAX_LINES]
    if len(series) > MAX_LINES:
        title += f" ({MAX_LINES} largest of {len(series)} groups)"
    fig = Figure(figsize=(11, 6), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    for name in largest:
        points = series[name]
        # Markers only while they can be told apart; a year of days reads better as a plain line.
        ax.plot([d for d, _ in points], [v for _, v in points], label=f"{name} ({points[-1][1]:,})",
                linewidth=1.8, marker="o" if len(points) <= 45 else None, markersize=3.5)
    ax.set_xlim(*span({name: series[name] for name in largest}))
    locator = AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    # Every day tick names its month ("15 Oct"), so no label needs the offset text to be read.
    ax.xaxis.set_major_formatter(ConciseDateFormatter(
        locator, formats=["%Y", "%b %Y", "%d %b", "%H:%M", "%H:%M", "%S.%f"],
        zero_formats=["", "%Y", "%b %Y", "%d %b", "%H:%M", "%H:%M"], show_offset=False))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:,.0f}"))
    ax.set_xlabel("Date (UTC)")
    ax.set_ylabel("Followers")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(title="group (newest count)", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.savefig(path)
    return len(largest)
