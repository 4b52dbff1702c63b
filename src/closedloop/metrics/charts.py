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

from closedloop.errors import MissingDependency, ValidationError
from closedloop.metrics.daily import DailySeries
from closedloop.metrics.rates import MetricTable
from closedloop.metrics.signals import COUNTED_SIGNALS, SIGNALS, SignalReport


def _figure(width: int, height: int, dpi: int) -> Any:
    """A figure of ``width`` × ``height`` pixels on its own Agg canvas.

    Raises:
        MissingDependency: matplotlib is not installed.
        ValidationError: a size is not positive.
    """
    problems = [
        (name, f"must be a positive whole number, not {value!r}")
        for name, value in (("width", width), ("height", height), ("dpi", dpi))
        if not isinstance(value, int) or value < 1
    ]
    if problems:
        raise ValidationError(problems, subject="chart")
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
        ValidationError: a size is not positive.
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
        ValidationError: a size is not positive, or ``rate`` is not a rate of the table.
    """
    if not isinstance(rate, str) or not rate.endswith("_rate") or rate not in table.columns:
        known = ", ".join(c for c in table.columns if c.endswith("_rate"))
        raise ValidationError(
            [("rate", f"{rate!r} is not a rate of the metric table; rates: {known}")],
            subject="chart",
        )
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


def signal_chart(
    report: SignalReport,
    signal: str,
    path: str | Path,
    *,
    width: int = 1200,
    height: int = 600,
    dpi: int = 100,
) -> Path:
    """Draw one supervision signal's value per subject, its threshold as a line, as a PNG.

    Flagged subjects are drawn in red; subjects without a value (a base of 0) are drawn
    empty and labelled "n/a". A share is drawn in percent, a count as it is.

    Raises:
        MissingDependency: matplotlib is not installed (``pip install 'closedloop[cli]'``).
        ValidationError: a size is not positive, or ``signal`` is not a signal.
    """
    if signal not in SIGNALS:
        raise ValidationError(
            [("signal", f"{signal!r} is not a supervision signal: {', '.join(SIGNALS)}")],
            subject="chart",
        )
    rows = [row for row in report.rows if row.signal == signal]
    share = signal not in COUNTED_SIGNALS
    scale = 100.0 if share else 1.0
    figure = _figure(width, height, dpi)
    axes = figure.add_subplot()
    positions = list(range(len(rows)))
    values = [scale * (row.value or 0.0) for row in rows]
    colours = ["tab:red" if row.flagged else "tab:blue" for row in rows]
    bars = axes.barh(positions, values, color=colours)
    labels = [_signal_label(row.value, share) for row in rows]
    axes.bar_label(bars, labels, padding=3)
    names = [
        row.subject if row.category is None else f"{row.subject} {row.category}" for row in rows
    ]
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    if rows:
        axes.axvline(scale * rows[0].threshold, color="tab:red", linestyle="--", label="threshold")
        axes.legend()
    axes.set_xlabel(f"{signal.replace('_', ' ')}{' (%)' if share else ''}")
    axes.set_title(f"{report.title}: {signal.replace('_', ' ')}")
    return _save(figure, path, dpi)


def _signal_label(value: float | None, share: bool) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.0f}%" if share else f"{value:g}"
