"""``closedloop db upgrade`` and ``closedloop case show``: the database behind an engine.

A database is named by a SQLAlchemy URL (``sqlite:///cases.db``,
``postgresql://user@host/db``); a plain file path means a SQLite file.
"""

from __future__ import annotations

import json
from datetime import datetime
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import typer
from rich.console import Console
from rich.table import Table

from closedloop import workflows
from closedloop.cli.definitions import RegistryOption, registry_of, workflow_file
from closedloop.cli.failures import fail, reported
from closedloop.cli.fitting import check_case
from closedloop.cli.output import NONE, console, instant, table
from closedloop.engine.calendars import NaturalCalendar, chinese_office_hours
from closedloop.engine.checkpoints import MIN_KEY_BYTES
from closedloop.engine.definition import Workflow
from closedloop.engine.model import AuditEvent, Case
from closedloop.engine.ports import CaseStore
from closedloop.engine.privacy import masked
from closedloop.engine.service import Engine
from closedloop.errors import CaseNotFound

if TYPE_CHECKING:
    from closedloop.adapters.sqlalchemy import SQLStore

db_app = typer.Typer(help="Manage the SQL database.", no_args_is_help=True)
case_app = typer.Typer(help="Look at cases.", no_args_is_help=True)

Url = Annotated[
    str, typer.Argument(help="Database URL, or the path of a SQLite file.", show_default=False)
]
WorkflowOption = Annotated[
    Path | None,
    typer.Option("--workflow", help="The cases' workflow file (default: the standard one)"),
]
ZoneOption = Annotated[str, typer.Option("--timezone", help="Show times in this IANA zone.")]
SchemaOption = Annotated[
    str | None,
    typer.Option(
        "--schema",
        help="PostgreSQL schema that holds the closedloop tables (as given to "
        "'closedloop db upgrade --schema'); default: the database's search path.",
        show_default=False,
    ),
]
"""``--schema`` of every command that opens a database: one definition for all."""


def database_url(text: str) -> str:
    """``text`` as a URL: a plain path becomes a SQLite URL."""
    return text if "://" in text else f"sqlite:///{Path(text)}"


def shown_url(text: str) -> str:
    """``text`` as the command line prints it: a URL's password as ``***``, never in
    clear (a worker's startup line goes to logs); a plain path unchanged."""
    parts = urlsplit(text)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = "&".join(
        f"{name}=***" if name.lower() == "password" else pair
        for pair in parts.query.split("&")
        for name in [pair.split("=", 1)[0]]
    )
    if "://" not in text or (netloc, query) == (parts.netloc, parts.query):
        return text
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def open_store(text: str, schema: str | None = None) -> SQLStore:
    """The store of an existing database, its tables in ``schema`` (PostgreSQL) when
    given; a SQLite file that is not there is an error.

    Raises:
        StoreError: the URL is unusable, a schema is given for SQLite, or the database
            (schema) has no closedloop tables.
        StoreUnavailable: the database cannot be reached.
    """
    from closedloop.adapters.sqlalchemy import SQLStore  # slow to import: only when needed

    url = database_url(text)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///").split("?")[0])
        if not path.is_file():
            fail(f"no SQLite database at {path}")
    return SQLStore(url, schema=schema, create_schema=False)


def workflow_of(path: Path | None, registry: str | None = None) -> Workflow:
    """The workflow in ``path``, or the standard one, with the ``--registry`` code.

    Raises:
        InvalidWorkflow: the file is unreadable or the definition has problems.
        HostCodeUnusable: the registry cannot be loaded.
    """
    if path is not None:
        return workflow_file(path, registry)
    return workflows.standard(registry=registry_of(registry))


CalendarZoneOption = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        help="IANA zone of the calendars the cases' clocks count on: the natural one "
        "(due times in notifications; default UTC) and office-hours, the Chinese office "
        "hours the demo records (default Asia/Shanghai).",
        show_default=False,
    ),
]
"""``--timezone`` of the commands that count clocks (``worker``, ``serve``,
``deadlines recompute``): no default, so each calendar keeps its own zone."""


def calendars_engine(
    store: CaseStore, workflow: Workflow, zone: ZoneInfo | None, **options: Any
) -> Engine:
    """An engine with the calendars the command line's cases name: natural time, the
    default, and office hours (``closedloop demo`` records it), both in ``zone`` when
    given; otherwise natural time in UTC and office hours in Asia/Shanghai, the zones
    the library's calendars declare."""
    if zone is None:
        natural, office = NaturalCalendar(), chinese_office_hours()
    else:
        natural, office = NaturalCalendar(timezone=zone.key), chinese_office_hours(zone.key)
    return Engine(
        workflow,
        store=store,
        calendar=natural,
        calendars={office.name: office},
        **options,
    )


def zone_of(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or a one-line error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        closest = get_close_matches(name, sorted(available_timezones()), n=3)
        hint = f"closest: {', '.join(closest)}" if closest else "e.g. Asia/Shanghai, UTC"
        fail(f"unknown time zone {name!r}; use an IANA zone name ({hint})")


@db_app.command("upgrade")
@reported
def db_upgrade(
    url: Url,
    schema: SchemaOption = None,
) -> None:
    """Create or migrate the closedloop tables to the newest revision; says which it did.

    Stop every process of the previous closedloop first."""
    from closedloop.adapters.sqlalchemy.migrate import migrate  # slow: only when needed

    before, after = migrate(database_url(url), schema=schema)
    where = f" in schema {schema!r}" if schema else ""
    if before is None:
        said = f"closedloop tables created{where} at revision {after} (there were none)"
    elif before == after:
        said = f"closedloop schema{where} already at revision {after}: nothing to do"
    else:
        said = f"closedloop schema{where} upgraded from revision {before} to {after}"
    console().print(said, markup=False)


@case_app.command("show")
@reported
def case_show(
    case_id: Annotated[str, typer.Argument(help="The case id.", show_default=False)],
    db: Annotated[str, typer.Option("--db", help="Database URL or SQLite file path.")],
    workflow: WorkflowOption = None,
    registry: RegistryOption = None,
    timezone: ZoneOption = "UTC",
    schema: SchemaOption = None,
    checkpoint_key: Annotated[
        str | None,
        typer.Option(envvar="CLOSEDLOOP_CHECKPOINT_KEY", show_envvar=True, hidden=True),
    ] = None,
) -> None:
    """Show a case, its history, and whether its audit chain verifies; with the key in
    CLOSEDLOOP_CHECKPOINT_KEY (hex), also whether its checkpoint's signature does."""
    key = None if not checkpoint_key else checkpoint_key_of(checkpoint_key)
    zone = zone_of(timezone)
    loaded = workflow_of(workflow, registry)
    store = open_store(db, schema)
    try:
        case = stored_case(store, case_id)
        check_case(case, loaded)
        engine = calendars_engine(store, loaded, None, checkpoint_key=key)
        events = engine.history(case_id)
        report = engine.verify(case_id)
    finally:
        store.close()
    out = console()
    _show_case(out, case, zone)
    out.print()
    out.print(_history(events, zone))
    if not report.ok:
        for problem in report.problems:
            out.print(f"  - {problem}", markup=False)
        fail(f"the audit chain of case {case_id!r} does not verify: {'; '.join(report.problems)}")
    out.print(
        f"Audit chain verified: {report.events} events, every hash links to the one before, "
        "and replaying them gives the stored case.",
        markup=False,
    )
    if key is None:
        out.print(
            "Checkpoint signatures were not checked: set CLOSEDLOOP_CHECKPOINT_KEY (hex) "
            "to check them. Without the key only the signed head is compared, and a "
            "checkpoint edited together with the trail goes unnoticed.",
            markup=False,
        )
    else:
        out.print(
            "Checkpoint signatures checked with the key in CLOSEDLOOP_CHECKPOINT_KEY.",
            markup=False,
        )


def checkpoint_key_of(text: str) -> bytes:
    """The checkpoint key from its hex text, or a one-line error."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        fail("CLOSEDLOOP_CHECKPOINT_KEY must be hexadecimal (64 digits or more)")
    if len(key) < MIN_KEY_BYTES:
        fail(f"CLOSEDLOOP_CHECKPOINT_KEY must hold at least {MIN_KEY_BYTES} bytes (hex digits x2)")
    return key


def stored_case(store: SQLStore, case_id: str) -> Case:
    """The case as stored, its reporter's contact data masked whatever the workflow's
    roles (the command line is a tool for operators, not a reporter's or a unit's view).

    Raises:
        CaseNotFound: no such case.
    """
    with store.transaction(read_only=True) as tx:
        case = tx.get_case(case_id)
        contact = tx.get_contact(case_id)
    if case is None:
        raise CaseNotFound(case_id)
    return case.model_copy(update={"contact": masked(contact) if contact else None})


def _show_case(out: Console, case: Case, zone: ZoneInfo) -> None:
    deadline = case.deadline
    clock = NONE
    if deadline is not None:
        clock = f"{deadline.clock} due {instant(deadline.due_at, zone)} ({deadline.warning})"
    contact = case.contact
    shown = (
        " ".join(v for v in (contact.name, contact.phone, contact.email) if v) if contact else ""
    )
    counters = ", ".join(f"{k} {v}" for k, v in sorted(case.counters.items()))
    rows = [
        ("state", f"{case.state} (version {case.version}, workflow {case.workflow})"),
        ("reported", f"{instant(case.reported_at, zone)} by {case.reporter_id} via {case.channel}"),
        ("description", case.description),
        ("area", case.location.area or NONE),
        ("category", f"{case.category or NONE}, urgency {case.urgency or NONE}"),
        ("lead unit", case.lead_unit or NONE),
        ("co-units", ", ".join(case.co_units) or NONE),
        ("waiting on", case.waiting_on or NONE),
        ("clock", clock),
        *(
            [("provisional", deadline.provisional_reason or "yes")]
            if deadline is not None and deadline.provisional
            else []
        ),
        ("supervised", "yes" if case.supervised else "no"),
        ("counters", counters or NONE),
        ("contact", shown or NONE),
    ]
    out.print(table(f"Case {case.id}", ("", ""), rows, numeric=2, wrap_last=True))


def _history(events: list[AuditEvent], zone: ZoneInfo) -> Table:
    rows = [
        (
            str(event.seq),
            f"{event.at.astimezone(zone):%Y-%m-%d %H:%M}",
            event.actor,
            event.role or NONE,
            event.trigger,
            event.to_state,
            _details(event, zone),
        )
        for event in events
    ]
    columns = ("#", "at", "actor", "as", "trigger", "state after", "details")
    title = f"History ({len(events)} events, times in {zone.key})"
    return table(title, columns, rows, numeric=7, wrap_last=True)


def _details(event: AuditEvent, zone: ZoneInfo) -> str:
    """The event's payload (and reason) as ``name=value`` pairs, instants in ``zone``."""
    fields = {k: v for k, v in event.payload.items() if v not in (None, "", [])}
    if event.reason and "reason" not in fields:
        fields["reason"] = event.reason
    if event.changes.get("lead_unit") and "unit" not in fields:
        fields["unit"] = event.changes["lead_unit"]
    if isinstance(fields.get("due_at"), str):
        fields["due_at"] = (
            f"{datetime.fromisoformat(fields['due_at']).astimezone(zone):%m-%d %H:%M}"
        )
    return ", ".join(f"{name}={_text(value)}" for name, value in fields.items())


def _text(value: object) -> str:
    if isinstance(value, list):
        return "+".join(map(str, value))
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
