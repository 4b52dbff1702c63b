"""The Alembic environment of closedloop's SQL schema.

:func:`closedloop.adapters.sqlalchemy.upgrade` runs it with an open connection (in
``config.attributes``). A developer adding a revision can also run Alembic itself::

    alembic -x url=sqlite:///dev.db revision --autogenerate -m "what changed"

with ``script_location = closedloop.adapters.sqlalchemy:migrations`` in an ini file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from closedloop.adapters.sqlalchemy.schema import VERSION_TABLE, metadata

config = context.config
schema: str | None = config.attributes.get("schema")


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        version_table_schema=schema,
    )
    with context.begin_transaction():
        # Each revision's upgrade() takes the schema to create its objects in.
        context.run_migrations(schema=schema)


if config.attributes.get("connection") is not None:
    _run(config.attributes["connection"])
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database URL: alembic -x url=... <command>")
    with create_engine(url).connect() as connection:
        _run(connection)
