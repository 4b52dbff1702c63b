"""Where the command line writes, and how it shows numbers, instants and tables.

Results go to stdout, progress and errors to stderr. When stdout is not a terminal
(a pipe, a file, a test) tables are laid out 160 columns wide unless ``COLUMNS`` says
otherwise, so they are not squeezed to 80.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

NONE = "—"
"""How a missing value (a rate with nothing to divide by) is shown."""


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr), wide enough for the tables when not a terminal.

    Prose is never wrapped by the console (a terminal wraps it); tables fit the width.
    """
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(file=stream, width=width, highlight=False, soft_wrap=True)


def percent(value: float | None) -> str:
    """A rate (a fraction) as a percentage with one decimal; ``—`` when there is none."""
    return NONE if value is None else f"{100 * value:.1f}%"


def number(value: float | None, digits: int = 1) -> str:
    """A number with ``digits`` decimals; ``—`` when there is none."""
    return NONE if value is None else f"{value:.{digits}f}"


def instant(value: datetime | None, zone: ZoneInfo) -> str:
    """An instant as local time in ``zone`` (``2026-03-02 09:15 +08:00``)."""
    if value is None:
        return NONE
    local = value.astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    numeric: int = 1,
    wrap_last: bool = False,
) -> Table:
    """A plain table: the first ``numeric`` columns left-aligned, the rest right-aligned.

    Args:
        title: Shown above the table.
        columns: The headers; with none given (all empty) no header line is shown.
        rows: The cells, as text (never read as Rich markup).
        numeric: How many leading columns are text (left-aligned).
        wrap_last: Let the last column wrap instead of the table being squeezed.
    """
    header = any(columns)
    texts = [[Text(cell) for cell in row] for row in rows]
    shown = Table(
        title=title, box=box.SIMPLE_HEAD if header else None, show_header=header,
        title_justify="left", pad_edge=False,
    )  # fmt: skip
    last = len(columns) - 1
    for index, column in enumerate(columns):
        wraps = wrap_last and index == last
        widest = max((texts_row[index].cell_len for texts_row in texts), default=0)
        shown.add_column(
            column,
            justify="left" if index < numeric else "right",
            no_wrap=not wraps,
            overflow="fold" if wraps else "ellipsis",
            min_width=None if wraps else max(widest, cell_len(column)),
        )
    for row in texts:
        shown.add_row(*row)
    return shown
