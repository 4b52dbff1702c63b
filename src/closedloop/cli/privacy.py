"""``closedloop privacy purge``: erase the personal data the retention rules make due.

Runs ``Engine.purge`` on the database (``--dry-run`` lists what is due and erases
nothing), one line per case and rule: the case, the kinds of data, the rule.
"""

from __future__ import annotations

from typing import Annotated

import typer

from closedloop.cli.database import (
    SchemaOption,
    WorkflowOption,
    calendars_engine,
    open_store,
    workflow_of,
)
from closedloop.cli.definitions import RegistryOption
from closedloop.cli.failures import reported
from closedloop.cli.fitting import check_store
from closedloop.cli.output import console

privacy_app = typer.Typer(help="Look after the reporters' personal data.", no_args_is_help=True)


@privacy_app.command("purge")
@reported
def purge(
    url: Annotated[str, typer.Argument(help="Database URL or SQLite file path.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what is due; erase nothing.")
    ] = False,
    workflow: WorkflowOption = None,
    registry: RegistryOption = None,
    schema: SchemaOption = None,
) -> None:
    """Erase the personal data the workflow's retention rules make due now."""
    loaded = workflow_of(workflow, registry)
    store = open_store(url, schema)
    try:
        check_store(store, loaded)
        report = calendars_engine(store, loaded, None).purge(dry_run=dry_run)
    finally:
        store.close()
    out = console()
    for item in report.purged:
        out.print(f"{item.case_id}  {','.join(item.data)}  {item.rule}", markup=False)
    for case_id in report.unsealed:
        out.print(f"{case_id}  events written before sealing keep their values", markup=False)
    verb = "due" if dry_run else "purged"
    out.print(f"{len(report.purged)} {verb}", markup=False)
    if not loaded.retention:
        console(stderr=True).print(
            f"workflow {loaded.name!r} has no retention rules: nothing is ever due"
            + ("" if workflow is not None else " (give the one with them: --workflow FILE)"),
            markup=False,
        )
