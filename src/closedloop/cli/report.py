"""The supervision board and the metric tables as the command line shows them.

Each ``*_COLUMNS`` sequence says which value goes in which column and how it is
written, so a test can compare what was printed with what :mod:`closedloop.metrics`
computes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.table import Table

from closedloop.cli.output import NONE, number, percent, table
from closedloop.metrics import BoardRow, MetricRow, MetricTable, SupervisionBoard


def _count(value: Any) -> str:
    return str(value)


def _case(value: Any) -> str:
    return NONE if value is None else str(value)


Column = tuple[str, str, Callable[[Any], str]]
"""(header, attribute, how the value is written)."""

HANDLING_COLUMNS: Sequence[Column] = (
    ("unit", "group", _count),
    ("reported", "reported", _count),
    ("due", "due", _count),
    ("closed", "closed", _count),
    ("closure", "closure_rate", percent),
    ("on time", "on_time_closure_rate", percent),
    ("signed for", "on_time_sign_for_rate", percent),
    ("reworked", "rework_rate", percent),
    ("extended", "extension_rate", percent),
)
"""Handling by unit: counts, then rates as percentages."""

THREE_RATES_COLUMNS: Sequence[Column] = (
    ("unit", "group", _count),
    ("response", "response_rate", percent),
    ("resolution", "resolution_rate", percent),
    ("satisfaction", "satisfaction_rate", percent),
)
"""The hotline "three rates" (三率) by unit."""

BOARD_COLUMNS: Sequence[Column] = (
    ("unit", "unit", _count),
    ("open", "open", _count),
    ("yellow", "yellow", _count),
    ("red", "red", _count),
    ("supervised", "supervised", _count),
    ("overdue", "overdue", _count),
    ("oldest overdue", "oldest_overdue_case", _case),
    ("hours over", "oldest_overdue_hours", number),
)
"""The supervision board, one row per unit."""


def cells(row: MetricRow | BoardRow, columns: Sequence[Column]) -> list[str]:
    """The row's values as written in ``columns``."""
    return [show(getattr(row, attribute)) for _, attribute, show in columns]


def _table(title: str, columns: Sequence[Column], rows: Sequence[MetricRow | BoardRow]) -> Table:
    headers = [header for header, _, _ in columns]
    return table(title, headers, [cells(row, columns) for row in rows])


def metric_tables(metrics: MetricTable) -> tuple[Table, Table]:
    """Handling and the three rates: a row per unit, then the total."""
    days = list(metrics.period.local_days())
    when = f"{days[0]} to {days[-1]} ({metrics.period.timezone})"
    every = (*metrics.rows, metrics.total)
    return (
        _table(f"Handling by unit, {when}", HANDLING_COLUMNS, every),
        _table("Three rates (三率) by unit", THREE_RATES_COLUMNS, every),
    )


def board_table(board: SupervisionBoard) -> Table:
    """The supervision board: open cases per unit by warning level, the oldest overdue."""
    title = f"Supervision board, open cases at the end ({len(board.flagged)} flagged)"
    return _table(title, BOARD_COLUMNS, (*board.rows, board.total))
