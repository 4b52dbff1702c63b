"""``closedloop signals`` and ``closedloop board``: the supervision signals of a period,
and the supervision board with the units they flag, read from a database.

One line per flagged unit (pair of units, dispatcher and category) with the reason,
then its cases; ``--json`` and ``--csv`` write the flagged rows (every row with
``--all``) as the metrics exports do. A flag is a reason to look, not a verdict.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from closedloop.cli.database import SchemaOption, ZoneOption, open_store, zone_of
from closedloop.cli.failures import fail, reported
from closedloop.cli.output import console
from closedloop.cli.report import board_table
from closedloop.metrics import (
    Period,
    SignalConfig,
    SignalReport,
    signals,
    supervision_board,
    to_csv,
    to_json,
)

PERIOD_FORM = "FIRST..LAST (dates, both included) or one DATE"


def period_of(text: str, timezone: str) -> Period:
    """``FIRST..LAST`` or a single ``DATE`` (ISO dates) as whole local days.

    Raises:
        typer.BadParameter: the text is not such a period, or ``LAST`` is before
            ``FIRST`` (a usage error, exit status 2).
    """
    first_text, dots, last_text = text.partition("..")
    try:
        first = date.fromisoformat(first_text.strip())
        last = date.fromisoformat(last_text.strip()) if dots else first
    except ValueError as problem:
        raise typer.BadParameter(
            f"{text!r} is not a period ({problem}); write {PERIOD_FORM}, such as "
            "2026-03-02..2026-03-08",
            param_hint="'--period'",
        ) from None
    if last < first:
        raise typer.BadParameter(
            f"{text!r} is reversed: {last} is before {first}; write the earlier day first",
            param_hint="'--period'",
        )
    return Period.days(first, last, timezone=timezone)


@reported
def signals_command(
    db: Annotated[str, typer.Option("--db", help="Database URL or SQLite file path.")],
    period: Annotated[str, typer.Option("--period", help=f"The period: {PERIOD_FORM}.")],
    as_json: Annotated[bool, typer.Option("--json", help="Write JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Write CSV.")] = False,
    every_row: Annotated[
        bool, typer.Option("--all", help="Export every row, not only the flagged ones.")
    ] = False,
    timezone: ZoneOption = "UTC",
    schema: SchemaOption = None,
) -> None:
    """List the units, pairs and dispatchers a supervision signal flags, with their cases."""
    zone_of(timezone)
    if as_json and as_csv:
        fail("--json and --csv: choose one")
    span = period_of(period, timezone)
    store = open_store(db, schema)
    try:
        report = signals(store, span, config=SignalConfig())
    finally:
        store.close()
    shown = report if every_row else report.model_copy(update={"rows": report.flags})
    if as_json:
        typer.echo(to_json(shown))
    elif as_csv:
        typer.echo(to_csv(shown), nl=False)
    else:
        _show(report)


def _show(report: SignalReport) -> None:
    out = console()
    out.print(report.title, markup=False)
    if not report.flags:
        out.print("No unit is flagged.")
        return
    for row in report.flags:
        subject = row.subject if row.category is None else f"{row.subject} ({row.category})"
        out.print(f"{row.signal}: {subject}: {row.reason}", markup=False)
        out.print(f"  cases: {' '.join(row.cases) or '-'}", markup=False)


@reported
def board_command(
    db: Annotated[str, typer.Option("--db", help="Database URL or SQLite file path.")],
    period: Annotated[str, typer.Option("--period", help=f"The signals' period: {PERIOD_FORM}.")],
    timezone: ZoneOption = "UTC",
    schema: SchemaOption = None,
) -> None:
    """Show the supervision board at the end of a period, with the units flagged in it."""
    zone_of(timezone)
    span = period_of(period, timezone)
    store = open_store(db, schema)
    try:
        board = supervision_board(store, as_of=span.end, signals_over=span)
    finally:
        store.close()
    out = console()
    out.print(board_table(board))
    if not board.flagged_units:
        out.print("No unit is flagged by the supervision signals.")
        return
    out.print("Flagged by the supervision signals (a reason to look, not a verdict):")
    for line in board.flag_lines():
        out.print(f"  {line}", soft_wrap=True, markup=False)
