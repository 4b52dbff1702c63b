"""Exports of any metric table (metrics, supervision board, flagged cases, daily series).

CSV: one header line with the column names, then one line per row; rates as
fractions with full precision, empty cells for "no value". A text cell that a
spreadsheet would run as a formula - one starting with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return, such as a unit named ``=HYPERLINK(...)`` - gets a single quote in
front (``'=HYPERLINK(...)``), as OWASP recommends against CSV injection; numbers, and
text that is exactly a number (``-3.5``), are written as they are, so they stay numbers.
JSON: an object with the table's description (period, instant, grouping, the
definitions used) and its rows, every value as it is.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from closedloop.metrics.rates import Cell


class Tabular(Protocol):
    """What the exports need of a table; every table of :mod:`closedloop.metrics` has it."""

    @property
    def columns(self) -> tuple[str, ...]:
        """The column names, in order."""
        ...

    def records(self) -> Iterator[dict[str, Cell]]:
        """Each row as a mapping of column to value."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the table is, as JSON data (at least a ``title``)."""
        ...


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def to_csv(table: Tabular) -> str:
    """The table as CSV text (``\\r\\n`` line ends, as RFC 4180 says).

    Text cells that would start a spreadsheet formula are prefixed with ``'``.
    """
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=table.columns, extrasaction="raise")
    writer.writerow({column: _inert(column) for column in table.columns})
    for record in table.records():
        writer.writerow({key: _inert(_text(value)) for key, value in record.items()})
    return out.getvalue()


def to_json(table: Tabular, *, indent: int | None = 2) -> str:
    """The table as JSON text: ``{"table": <description>, "columns": [...], "rows": [...]}``."""
    document = {
        "table": table.describe(),
        "columns": list(table.columns),
        "rows": list(table.records()),
    }
    return json.dumps(document, ensure_ascii=False, indent=indent, default=str)


def write_csv(table: Tabular, path: str | Path) -> Path:
    """Write :func:`to_csv` to ``path`` in UTF-8 with a byte-order mark, for spreadsheets."""
    target = Path(path)
    with target.open("w", encoding="utf-8-sig", newline="") as file:
        file.write(to_csv(table))
    return target


def write_json(table: Tabular, path: str | Path) -> Path:
    """Write :func:`to_json` to ``path`` in UTF-8."""
    target = Path(path)
    target.write_text(to_json(table) + "\n", encoding="utf-8")
    return target


def _text(value: object) -> object:
    # A datetime goes out as ISO text; None as an empty cell; numbers as they are.
    if value is None:
        return ""
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else value


def _inert(value: object) -> object:
    """``value``, with a quote in front if it is text a spreadsheet would run as a formula."""
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)  # "-inf" would be read as a formula
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value
