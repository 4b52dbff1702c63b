"""The ``closedloop`` command: Typer application and entry point.

Exit status: 0 success, 1 a domain error (one line on stderr), 2 a usage error.
"""

from __future__ import annotations

import typer

from closedloop.cli.database import case_app, db_app
from closedloop.cli.deadlines import deadlines_app
from closedloop.cli.definitions import diagram, validate
from closedloop.cli.demo import demo
from closedloop.cli.listing import cases
from closedloop.cli.outbox import outbox_app
from closedloop.cli.privacy import privacy_app
from closedloop.cli.routing import gaps, route
from closedloop.cli.serve import serve
from closedloop.cli.signals import board_command, signals_command
from closedloop.cli.worker import worker

app = typer.Typer(
    name="closedloop",
    help="Run citizen reports through a closed loop, and prove who did what, when.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(demo)
app.command()(validate)
app.command()(diagram)
app.command()(route)
app.command()(gaps)
app.command()(worker)
app.command()(serve)
app.command()(cases)
app.command(name="signals")(signals_command)
app.command(name="board")(board_command)
app.add_typer(db_app, name="db")
app.add_typer(case_app, name="case")
app.add_typer(deadlines_app, name="deadlines")
app.add_typer(privacy_app, name="privacy")
app.add_typer(outbox_app, name="outbox")


def main() -> None:
    """Run the command line (the ``closedloop`` console script)."""
    app(prog_name="closedloop")
