"""``closedloop route`` and ``closedloop gaps``: a responsibility list asked and audited.

The directory (units, areas) defaults to ``directory.yaml`` beside the list, and the
category catalogue to ``categories.yaml`` beside it when there is one.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from closedloop.cli.failures import fail, reported
from closedloop.cli.output import NONE, console, instant, table
from closedloop.engine.clock import SystemClock
from closedloop.engine.directory import InMemoryDirectory
from closedloop.engine.duties.catalog import CategoryCatalog
from closedloop.engine.duties.resolution import Routing
from closedloop.engine.duties.responsibility_list import ResponsibilityList

ListFile = Annotated[
    Path, typer.Argument(help="A responsibility list in YAML.", show_default=False)
]
DirectoryOption = Annotated[
    Path | None,
    typer.Option("--directory", help="Units and areas (default: directory.yaml beside the list)"),
]
CategoriesOption = Annotated[
    Path | None,
    typer.Option(
        "--categories", help="Category catalogue (default: categories.yaml beside the list)"
    ),
]
AtOption = Annotated[
    str | None,
    typer.Option(
        "--at", help="ISO date and time; without an offset, in the list's zone (default: now)"
    ),
]


def load_list(
    path: Path, directory: Path | None, categories: Path | None
) -> tuple[ResponsibilityList, InMemoryDirectory, CategoryCatalog | None]:
    """The list with its directory and (when there is one) its category catalogue.

    Raises:
        InvalidResponsibilityList, InvalidDirectory: a file has problems.
        OSError: a file cannot be read.
    """
    if not path.is_file():
        fail(f"no responsibility list at {path}")
    units = InMemoryDirectory.from_yaml(directory or path.with_name("directory.yaml"))
    beside = path.with_name("categories.yaml")
    catalogue_file = categories or (beside if beside.exists() else None)
    catalogue = CategoryCatalog.from_yaml(catalogue_file) if catalogue_file else None
    duties = ResponsibilityList.from_yaml(path, directory=units, categories=catalogue)
    return duties, units, catalogue


def instant_of(text: str | None, duties: ResponsibilityList) -> datetime:
    """``--at`` as an aware instant (local to the list's zone when it has no offset)."""
    if text is None:
        return SystemClock().now().astimezone(duties.time_zone)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at {text!r} is not an ISO date and time, such as 2026-03-02T09:30")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=duties.time_zone)


@reported
def route(
    list_file: ListFile,
    category: Annotated[str, typer.Option(help="The report's category code.")],
    area: Annotated[str, typer.Option(help="The area or grid code where it happened.")],
    at: AtOption = None,
    directory: DirectoryOption = None,
    categories: CategoriesOption = None,
) -> None:
    """Route one report by the list and explain why."""
    duties, units, catalogue = load_list(list_file, directory, categories)
    when = instant_of(at, duties)
    routing = duties.resolve(category, area, when)
    named = catalogue.get(category).name if catalogue else ""
    out = console()
    out.print(
        f"{category} {named} in {area}, {instant(when, duties.time_zone)}, list {duties.version}",
        markup=False,
    )
    rows = [(label, value) for label, value in _routing_lines(routing, units)]
    out.print(table(None, ("", ""), rows, numeric=2, wrap_last=True))
    out.print(routing.explanation, markup=False, soft_wrap=True)


def _routing_lines(routing: Routing, units: InMemoryDirectory) -> list[tuple[str, str]]:
    def unit(unit_id: str | None) -> str:
        return NONE if unit_id is None else f"{unit_id} {units.unit(unit_id).name}"

    lead = unit(routing.lead_unit)
    if routing.needs_arbitration:
        lead = f"{NONE} arbitration between {', '.join(routing.candidates)}"
    co_units = "; ".join(f"{unit(c.unit)} ({c.duty})" for c in routing.co_units) or NONE
    basis = f"{routing.entry_id or NONE} ({routing.basis or 'disputed'})"
    return [
        ("lead unit", lead),
        ("co-units", co_units),
        ("supervising unit", unit(routing.supervising_unit)),
        ("decided by", basis),
        ("legal basis", routing.legal_basis or NONE),
        ("gap", "yes: only the fallback owner covers this" if routing.gap else "no"),
    ]


@reported
def gaps(
    list_file: ListFile,
    at: AtOption = None,
    directory: DirectoryOption = None,
    categories: CategoriesOption = None,
) -> None:
    """List the (category, grid) pairs that only a fallback owner covers."""
    duties, units, catalogue = load_list(list_file, directory, categories)
    if catalogue is None:
        fail("gaps needs the category catalogue: put categories.yaml beside the list")
    grids = units.areas(level=units.levels[-1])
    when = instant_of(at, duties) if at is not None else None
    found = duties.gaps(catalogue.leaves(), grids, at=when)
    asked = when or instant_of(None, duties)
    rows = [
        (code, catalogue.get(code).name, grid, duties.resolve(code, grid, asked).lead_unit or NONE)
        for code, grid in found
    ]
    out = console()
    pairs = len(catalogue.leaves()) * len(grids)
    out.print(f"{len(found)} of {pairs} (category, grid) pairs only a fallback owner covers")
    out.print(table(None, ("category", "name", "grid", "fallback owner"), rows, numeric=4))
