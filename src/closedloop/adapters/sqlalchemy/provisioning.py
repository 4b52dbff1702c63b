"""Getting a database ready: create the schema on first use, refuse a schema of another revision.

A store on an empty database creates its tables itself (no Alembic needed, so the
embedded SQLite default works with the core dependencies alone) and records
:data:`~closedloop.adapters.sqlalchemy.schema.HEAD_REVISION` in the version table,
exactly as running the migrations would; a later ``upgrade`` starts from there.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, func, insert, inspect, select
from sqlalchemy.schema import CreateSchema

from closedloop.adapters.sqlalchemy.failures import translated
from closedloop.adapters.sqlalchemy.schema import (
    HEAD_REVISION,
    VERSION_TABLE,
    metadata,
    tally_ddl,
    version_table,
)
from closedloop.errors import SchemaTooNew, StoreError

REVISIONS = tuple(
    sorted(
        path.name.split("_", 1)[0]
        for path in (Path(__file__).with_name("migrations") / "versions").glob("[0-9]*_*.py")
    )
)
"""The schema revisions this closedloop ships, oldest first (the last is the head)."""

_LOCK_KEY = 0x636C6F7365646C  # "closedl": serialises schema work of concurrent processes


def lock_and_create_schema(connection: Connection, schema: str | None) -> None:
    """On PostgreSQL: wait for other processes preparing the database, create ``schema``.

    Call at the start of a transaction; the lock is released when it ends.
    """
    if connection.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already made this transaction the only writer
    connection.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY)))
    if schema is not None:
        connection.execute(CreateSchema(schema, if_not_exists=True))


def current_revision(connection: Connection, schema: str | None) -> str | None:
    """The revision recorded in the database, or ``None`` if none is."""
    if not inspect(connection).has_table(VERSION_TABLE, schema=schema):
        return None
    revision = connection.execute(select(version_table.c.version_num)).scalar()
    return revision


def check_known(revision: str | None, schema: str | None) -> None:
    """Refuse a recorded revision this closedloop did not ship.

    Raises:
        SchemaTooNew: a later closedloop upgraded the database.
        StoreError: the revision is not one closedloop ever shipped.
    """
    if revision is None or revision in REVISIONS:
        return
    if revision > HEAD_REVISION:
        raise SchemaTooNew(revision, HEAD_REVISION, schema)
    where = f" (schema {schema!r})" if schema else ""
    raise StoreError(
        f"the database{where} records schema revision {revision!r}, which closedloop "
        f"never shipped (it knows {', '.join(REVISIONS)}); it was not made by closedloop"
    )


def prepare(engine: Engine, schema: str | None, *, create: bool) -> None:
    """Make sure the database holds the schema this code expects.

    Raises:
        SchemaTooNew: a later closedloop upgraded the database.
        StoreError: the database is at an older revision (run ``upgrade``), holds some
            of our tables but records no revision, or is empty and ``create`` is false.
        StoreUnavailable: the database cannot be reached.
    """
    with (
        translated("prepare the database schema"),
        engine.connect() as connection,
        connection.begin(),
    ):
        lock_and_create_schema(connection, schema)
        revision = current_revision(connection, schema)
        if revision == HEAD_REVISION:
            return
        _check_empty(connection, schema, revision, create)
        metadata.create_all(connection)
        for statement in tally_ddl(connection.dialect.name, schema):
            connection.exec_driver_sql(statement)
        version_table.create(connection)
        connection.execute(insert(version_table).values(version_num=HEAD_REVISION))


def _check_empty(
    connection: Connection, schema: str | None, revision: str | None, create: bool
) -> None:
    check_known(revision, schema)
    where = f" (schema {schema!r})" if schema else ""
    if revision is not None:
        raise StoreError(
            f"the database{where} is at schema revision {revision!r}; this version of "
            f"closedloop needs {HEAD_REVISION!r}: run `closedloop db upgrade URL"
            f"{_schema_option(schema)}` (or closedloop.adapters.sqlalchemy.upgrade)"
        )
    inspector = inspect(connection)
    present = [t.name for t in metadata.sorted_tables if inspector.has_table(t.name, schema)]
    if present:
        raise StoreError(
            f"the database{where} has closedloop tables ({', '.join(present)}) but no "
            f"recorded schema revision ({VERSION_TABLE}); it was not made by closedloop"
        )
    if not create:
        raise StoreError(
            f"the database{where} has no closedloop tables; create them with "
            f"`closedloop db upgrade URL{_schema_option(schema)}` (from Python: "
            "closedloop.adapters.sqlalchemy.upgrade, or SQLStore(create_schema=True))"
        )


def _schema_option(schema: str | None) -> str:
    return f" --schema {schema}" if schema else ""
