"""The spreadsheet form of a responsibility list: one CSV row per entry.

Columns (header row required, order free; blank cells mean "not set"):

``id, category, area, basis, precedence, lead_unit, co_units, supervising_unit,
legal_basis, effective_from, effective_to``

``id``, ``category``, ``area`` and ``lead_unit`` are required. ``co_units`` holds
``UNIT: duty`` pairs separated by ``;``. Dates are ISO (``2026-03-01``). A row whose
``category`` is ``*`` is a fallback owner for its area; it may fill only ``id``,
``area``, ``lead_unit``, ``supervising_unit`` and ``legal_basis``.

Rows are numbered as a spreadsheet shows them: the header is row 1. A UTF-8 byte order
mark (as Excel writes) is accepted.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from closedloop.errors import InvalidResponsibilityList

COLUMNS = (
    "id",
    "category",
    "area",
    "basis",
    "precedence",
    "lead_unit",
    "co_units",
    "supervising_unit",
    "legal_basis",
    "effective_from",
    "effective_to",
)
"""The columns of the CSV form, in the order the example uses."""
REQUIRED_COLUMNS = ("id", "category", "area", "lead_unit")
FALLBACK_CATEGORY = "*"
"""The ``category`` cell that marks a row as a fallback owner."""
_FALLBACK_COLUMNS = frozenset({"id", "area", "lead_unit", "supervising_unit", "legal_basis"})

Raw = tuple[str, dict[str, object]]


@dataclass
class Rows:
    """The rows of a CSV list, as raw mappings labelled with their row number."""

    entries: list[Raw] = field(default_factory=list)
    fallbacks: list[Raw] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_rows(path: str | Path, *, encoding: str = "utf-8-sig") -> Rows:
    """Split the CSV file at ``path`` into entry rows and fallback rows.

    Raises:
        InvalidResponsibilityList: the header lacks a required column or names an
            unknown one (the rows cannot be read without it).
        OSError: the file cannot be read.
    """
    rows = Rows()
    with Path(path).open(newline="", encoding=encoding) as handle:
        reader = csv.DictReader(handle, restkey="\x00extra")
        header = [name.strip() for name in reader.fieldnames or ()]
        problems = _header_problems(header)
        if problems:
            raise InvalidResponsibilityList(problems, source=str(path))
        reader.fieldnames = header
        for number, record in enumerate(reader, start=2):
            _add_row(rows, number, record)
    return rows


def _header_problems(header: list[str]) -> list[str]:
    if not header:
        return ["the file is empty: a header row naming the columns is required"]
    problems = [
        f"header: missing column {name!r}" for name in REQUIRED_COLUMNS if name not in header
    ]
    problems += [
        f"header: unknown column {name!r}; known: {', '.join(COLUMNS)}"
        for name in header
        if name not in COLUMNS
    ]
    return problems


def _add_row(rows: Rows, number: int, record: dict[str, object]) -> None:
    if record.pop("\x00extra", None) is not None:
        rows.problems.append(f"row {number}: more cells than columns in the header")
    cells = {
        name: value.strip()
        for name, value in record.items()
        if isinstance(value, str) and value.strip()
    }
    if not cells:
        return
    ident = cells.get("id")
    where = f"row {number} ({ident})" if ident else f"row {number}"
    if cells.get("category") == FALLBACK_CATEGORY:
        rows.fallbacks.append((where, _fallback(where, cells, rows.problems)))
    else:
        rows.entries.append((where, _entry(where, cells, rows.problems)))


def _fallback(where: str, cells: dict[str, str], problems: list[str]) -> dict[str, object]:
    stray = sorted(set(cells) - _FALLBACK_COLUMNS - {"category"})
    if stray:
        problems.append(
            f"{where}: a fallback row (category '*') takes no {', '.join(stray)}; "
            "leave those cells blank"
        )
    return {name: value for name, value in cells.items() if name in _FALLBACK_COLUMNS}


def _entry(where: str, cells: dict[str, str], problems: list[str]) -> dict[str, object]:
    raw: dict[str, object] = dict(cells)
    if "co_units" in cells:
        raw["co_units"] = _co_units(where, cells["co_units"], problems)
    return raw


def _co_units(where: str, cell: str, problems: list[str]) -> list[dict[str, str]]:
    pairs = []
    for item in (part.strip() for part in cell.split(";")):
        unit, colon, duty = item.partition(":")
        if not item:
            continue
        if not colon or not unit.strip() or not duty.strip():
            problems.append(f"{where}: co_units: {item!r} is not 'UNIT: duty'")
            continue
        pairs.append({"unit": unit.strip(), "duty": duty.strip()})
    return pairs
