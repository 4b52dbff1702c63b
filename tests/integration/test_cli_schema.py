"""Every command that opens a database reaches a PostgreSQL schema with ``--schema``,
as ``closedloop db upgrade --schema`` made it; a schema without closedloop tables is
refused in one line that names the command creating them."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import create_engine, text

from closedloop import Actor, Engine, workflows
from closedloop.adapters.sqlalchemy import HEAD_REVISION, SQLStore
from closedloop.cli import app
from tests.conftest import new_schema, postgres_url
from tests.integration.cli_runs import assert_one_line_error, run_all


def _commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every command under ``group`` (a Click group as Typer builds it), by full name."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_every_command_that_opens_a_database_takes_schema() -> None:
    root = typer.main.get_command(app)
    opening = {
        name: command
        for name, command in _commands(root)
        if command.callback is not None
        and "open_store(" in inspect.getsource(inspect.unwrap(command.callback))
    }
    assert sorted(opening) == [
        "board", "case show", "cases", "deadlines recompute", "outbox dead", "outbox requeue",
        "privacy purge", "serve", "signals", "worker",
    ]  # fmt: skip
    for name, command in {**opening, "db upgrade": dict(_commands(root))["db upgrade"]}.items():
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert "--schema" in options, name


@pytest.mark.external_service
def test_commands_read_the_cases_of_the_schema_db_upgrade_made(tmp_path: Path) -> None:
    url = postgres_url()
    schema = new_schema("cli")
    try:
        # Before the tables exist: refused in one line naming the command that makes them.
        (missing,) = run_all(tmp_path, ("cases", "--db", url, "--schema", schema))
        assert_one_line_error(
            missing,
            f"the database (schema '{schema}') has no closedloop tables",
            f"closedloop db upgrade URL --schema {schema}",
        )
        (upgraded,) = run_all(tmp_path, ("db", "upgrade", url, "--schema", schema))
        assert upgraded.returncode == 0, upgraded
        assert upgraded.stdout == (
            f"closedloop tables created in schema '{schema}' at revision {HEAD_REVISION} "
            "(there were none)\n"
        )
        store = SQLStore(url, schema=schema, create_schema=False)
        engine = Engine(workflows.standard(), store=store)
        case = engine.report(Actor("citizen-1"), description="Lamp out", location="3 Oak Rd")
        store.close()
        today = date.today().isoformat()
        listed, shown, signals, board = run_all(
            tmp_path,
            ("cases", "--db", url, "--schema", schema, "--json"),
            ("case", "show", case.id, "--db", url, "--schema", schema),
            ("signals", "--db", url, "--schema", schema, "--period", today),
            ("board", "--db", url, "--schema", schema, "--period", today),
        )
        for ran in (listed, shown, signals, board):
            assert ran.returncode == 0, ran
        assert [c["id"] for c in json.loads(listed.stdout)["cases"]] == [case.id]
        assert "Audit chain verified: 1 events" in shown.stdout
    finally:
        engine_ = create_engine(url)
        with engine_.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine_.dispose()


def test_a_schema_is_refused_for_a_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "cases.db"
    SQLStore(f"sqlite:///{db}").close()
    (ran,) = run_all(tmp_path, ("cases", "--db", db, "--schema", "cases"))
    assert_one_line_error(ran, "a schema (schema=, --schema) is only available on PostgreSQL")
