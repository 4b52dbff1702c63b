"""``closedloop cases``: the cases of a database that match a query, oldest first.

A table (or JSON with ``--json``) of each case's state, who it waits on, its unit,
category, area, running clock and description. Cases are listed as the store holds
them: without the reporter's contact data.
"""

from __future__ import annotations

import json
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from closedloop.cli.database import (
    SchemaOption,
    WorkflowOption,
    ZoneOption,
    calendars_engine,
    open_store,
    workflow_of,
    zone_of,
)
from closedloop.cli.definitions import RegistryOption
from closedloop.cli.failures import fail, reported
from closedloop.cli.fitting import check_store
from closedloop.cli.output import NONE, console, instant, table
from closedloop.cli.selection import WAITING_ON_FORMS, Found, Selection, WaitingOn, find, operator
from closedloop.engine.clock import SystemClock
from closedloop.engine.model import Case, to_stored

StateOption = Annotated[
    list[str] | None,
    typer.Option("--state", help="Only cases in this state (repeatable: any of them)."),
]


@reported
def cases(
    db: Annotated[str, typer.Option("--db", help="Database URL or SQLite file path.")],
    state: StateOption = None,
    unit: Annotated[str | None, typer.Option(help="Only cases this unit leads.")] = None,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only cases whose clock is past due now.")
    ] = False,
    waiting_on: Annotated[
        str | None,
        typer.Option(help=f"Only cases waiting on this party: {WAITING_ON_FORMS}."),
    ] = None,
    search: Annotated[
        str | None, typer.Option(help="Only cases whose description or address contains this.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="List at most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Write JSON instead of a table.")] = False,
    workflow: WorkflowOption = None,
    registry: RegistryOption = None,
    timezone: ZoneOption = "UTC",
    schema: SchemaOption = None,
) -> None:
    """List the cases that match every option given, oldest first."""
    zone = zone_of(timezone)
    loaded = workflow_of(workflow, registry)
    selection = Selection(
        loaded,
        states=tuple(state) if state else None,
        unit=unit,
        overdue_at=SystemClock().now() if overdue else None,
        waiting_on=WaitingOn.parse(waiting_on, loaded) if waiting_on is not None else None,
        search=search,
    )
    viewer = operator(loaded)
    if viewer is None:
        fail(
            f"workflow {loaded.name!r} has no role that sees every case (sees_all: true), "
            "and closedloop cases lists them as one"
        )
    store = open_store(db, schema)
    try:
        check_store(store, loaded)
        found = find(calendars_engine(store, loaded, None), viewer, selection, limit)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(_as_json(found), ensure_ascii=False, indent=2))
    else:
        _show(found, zone)


def _as_json(found: Found) -> dict[str, object]:
    return {
        "total": found.total,
        "more": found.more,
        "cases": [to_stored(case, exclude={"contact"}) for case in found.cases],
    }


def _show(found: Found, zone: ZoneInfo) -> None:
    out = console()
    if not found.cases:
        out.print("No case matches.")
        return
    title = f"{len(found.cases)} of {_cases(found.total)} matching"
    columns = ("case", "state", "waiting on", "unit", "category", "area", "due", "warning",
               "description")  # fmt: skip
    rows = [_row(case, zone) for case in found.cases]
    out.print(table(title, columns, rows, numeric=len(columns), wrap_last=True))


def _cases(count: int) -> str:
    return f"{count} case" if count == 1 else f"{count} cases"


def _row(case: Case, zone: ZoneInfo) -> tuple[str, ...]:
    deadline = case.deadline
    due = instant(deadline.due_at, zone) if deadline is not None else NONE
    warning = deadline.warning if deadline is not None else NONE
    return (
        case.id,
        case.state,
        case.waiting_on or NONE,
        case.lead_unit or NONE,
        case.category or NONE,
        case.location.area or NONE,
        due,
        warning,
        " ".join(case.description.split()),
    )
