"""``closedloop deadlines recompute``: count open clocks again on corrected holidays.

When next year's schedule is published (or a make-up working day is announced late),
the host supplies it as a holiday table and runs this command: every open clock whose
counting reached the corrected days (every provisional clock among them) is counted
again on the office-hours calendar with the table in front, through
``Engine.recompute_deadlines``. Each clock that moves gets a ``deadline_recomputed``
event; warnings fired and rungs climbed stay.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from closedloop.cli.database import (
    CalendarZoneOption,
    SchemaOption,
    WorkflowOption,
    calendars_engine,
    open_store,
    workflow_of,
    zone_of,
)
from closedloop.cli.definitions import RegistryOption
from closedloop.cli.failures import fail, reported
from closedloop.cli.fitting import check_store
from closedloop.cli.output import console
from closedloop.engine.calendars import HolidayTable, chinese_office_hours

deadlines_app = typer.Typer(help="Look after the cases' clocks.", no_args_is_help=True)


@deadlines_app.command("recompute")
@reported
def recompute(
    url: Annotated[str, typer.Argument(help="Database URL or SQLite file path.")],
    since: Annotated[
        str, typer.Option(help="The first corrected local day, YYYY-MM-DD.", show_default=False)
    ],
    holidays: Annotated[
        Path | None,
        typer.Option(help="A holiday table (YAML) in front of the package's tables."),
    ] = None,
    workflow: WorkflowOption = None,
    registry: RegistryOption = None,
    timezone: CalendarZoneOption = None,
    schema: SchemaOption = None,
) -> None:
    """Count again the open clocks that reached the corrected days; list the cases moved."""
    try:
        first = date.fromisoformat(since)
    except ValueError:
        fail(f"--since {since!r} is not a date (YYYY-MM-DD)")
    zone = zone_of(timezone) if timezone is not None else None
    supplied = HolidayTable.from_yaml(holidays) if holidays is not None else None
    corrected = (
        chinese_office_hours(supplied=supplied)
        if zone is None
        else chinese_office_hours(zone.key, supplied)
    )
    loaded = workflow_of(workflow, registry)
    store = open_store(url, schema)
    try:
        check_store(store, loaded)
        engine = calendars_engine(store, loaded, zone)
        moved = engine.recompute_deadlines(since=first, calendar=corrected)
    finally:
        store.close()
    out = console()
    for case_id in moved:
        out.print(f"moved {case_id}", markup=False)
    out.print(f"{len(moved)} clocks counted again from {first.isoformat()}", markup=False)
