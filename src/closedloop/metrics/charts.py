"""Charts of the metrics as PNG files, drawn with matplotlib (the ``cli`` extra).

matplotlib is imported when a chart is drawn, not when this module is imported, and
only its object-oriented API is used (a ``Figure`` on an Agg canvas): no pyplot, no
global figure state, safe in a web worker. A chart of ``width`` × ``height`` pixels
is exactly that size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from closedloop.errors import MissingDependency
from closedloop.metrics.daily import DailySeries
from closedloop.metrics.rates import MetricTable


def _figure(width: int, height: int, dpi: int) -> Any:
    """A figure of ``width`` × ``height`` pixels on its own Agg canvas.

    Raises:
        MissingDependency: matplotlib is not installed.
        ValueError: a size is not positive.
    """
    if min(width, height, dpi) < 1:
        raise ValueError("width, height and dpi must be positive")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependency("matplotlib", "cli", "charts") from exc
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | Path, dpi: int) -> Path:
    target = Path(path)
    figure.savefig(target, format="png", dpi=dpi)
    return target


def intake_chart(
    series: DailySeries,
    path: str | Path,
    *,
    width: int = 1200,
    height: int = 600,
    dpi: int = 100,
) -> Path:
    """Draw cases reported against cases closed, per day, as a PNG at ``path``.

    Raises:
        MissingDependency: matplotlib is not installed (``pip install 'closedloop[cli]'``).
        ValueError: a size is not positive.
    """
    figure = _figure(width, height, dpi)
    axes = figure.add_subplot()
    days = [row.day for row in series.rows]
    positions = list(range(len(days)))
    bar = 0.4
    reported = [row.reported for row in series.rows]
    closed = [row.closed for row in series.rows]
    axes.bar([p - bar / 2 for p in positions], reported, bar, label="reported")
    axes.bar([p + bar / 2 for p in positions], closed, bar, label="closed")
    axes.set_xticks(positions, [day.strftime("%m-%d") for day in days], rotation=45)
    axes.set_ylabel("cases")
    axes.set_title(series.title)
    axes.legend()
    return _save(figure, path, dpi)


def on_time_chart(
    table: MetricTable,
    path: str | Path,
    *,
    rate: str = "on_time_closure_rate",
    width: int = 1200,
    height: int = 600,
    dpi: int = 100,
) -> Path:
    """Draw one rate per group of ``table`` (by default the on-time closure rate) as a PNG.

    Groups without a value (nothing due) are drawn empty and labelled "n/a".

    Raises:
        MissingDependency: matplotlib is not installed (``pip install 'closedloop[cli]'``).
        ValueError: a size is not positive, or ``rate`` is not a rate of the table.
    """
    if not rate.endswith("_rate") or rate not in table.columns:
        raise ValueError(f"{rate!r} is not a rate of the metric table")
    rows = table.rows or (table.total,)
    values: Sequence[float | None] = [getattr(row, rate) for row in rows]
    figure = _figure(width, height, dpi)
    axes = figure.add_subplot()
    positions = list(range(len(rows)))
    bars = axes.barh(positions, [100 * (v or 0.0) for v in values])
    labels = ["n/a" if v is None else f"{100 * v:.2f}%" for v in values]
    axes.bar_label(bars, labels, padding=3)
    axes.set_yticks(positions, [row.group for row in rows])
    axes.invert_yaxis()
    axes.set_xlim(0, 110)
    axes.set_xlabel(f"{rate.replace('_', ' ')} (%)")
    axes.set_title(table.title)
    return _save(figure, path, dpi)
