"""Schema migrations: :func:`upgrade`.

The Alembic migrations ship inside the package (``migrations/``) and are run here
without an ``alembic.ini``. Their version table is ``closedloop_alembic_version``, so
a host application's own Alembic history is left alone. The command line runs this
as ``closedloop db upgrade URL [--schema NAME]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import URL, Engine

from closedloop.adapters.sqlalchemy.engines import make_engine
from closedloop.adapters.sqlalchemy.failures import translated
from closedloop.adapters.sqlalchemy.provisioning import (
    REVISIONS,
    check_known,
    current_revision,
    lock_and_create_schema,
)
from closedloop.errors import DowngradeRefused, StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
"""The directory of the shipped Alembic environment and revisions."""


class Migrated(NamedTuple):
    """What :func:`migrate` found and left: the revision before (``None`` when the
    database had no closedloop tables) and after."""

    before: str | None
    after: str | None


def upgrade(
    url_or_engine: str | URL | Engine, *, schema: str | None = None, revision: str = "head"
) -> str | None:
    """Bring the database's closedloop schema up to ``revision``; returns the revision now.

    Safe to run from several processes at once (on PostgreSQL they take turns), and a
    no-op on a database already there, including one a ``SQLStore`` created itself.
    Stop every process of the previous closedloop first: see ``docs/storage.md``.

    Args:
        url_or_engine: The database, as for ``SQLStore``.
        schema: PostgreSQL schema holding the tables (created if missing).
        revision: The target revision; the newest by default.

    Raises:
        SchemaTooNew: a later closedloop upgraded the database already.
        DowngradeRefused: ``revision`` is older than the database's.
        StoreError: Alembic is not installed, ``revision`` is not one closedloop
            ships, or a migration failed; nothing was changed.
        StoreUnavailable: the database cannot be reached.
    """
    return migrate(url_or_engine, schema=schema, revision=revision).after


def migrate(
    url_or_engine: str | URL | Engine, *, schema: str | None = None, revision: str = "head"
) -> Migrated:
    """:func:`upgrade`, telling the revision before as well: whether the tables were
    created, upgraded, or already there. Raises as :func:`upgrade` does."""
    command, config = _alembic()
    engine, owned = make_engine(url_or_engine, busy_timeout=30.0, synchronous="FULL")
    if schema is not None:
        engine = engine.execution_options(schema_translate_map={None: schema})
    try:
        # One transaction for the lock, every migration and the version stamp: DDL is
        # transactional on both backends, so a failed migration changes nothing.
        with (
            translated("migrate the schema"),
            engine.connect() as connection,
            connection.begin(),
        ):
            lock_and_create_schema(connection, schema)
            before = current_revision(connection, schema)
            _check_target(before, revision, schema)
            config.attributes.update(connection=connection, schema=schema)
            command.upgrade(config, revision)
            return Migrated(before, current_revision(connection, schema))
    finally:
        if owned:
            engine.dispose()


def _check_target(before: str | None, revision: str, schema: str | None) -> None:
    """Refuse a database a later closedloop upgraded, a revision closedloop does not
    ship, and a target older than the database (Alembic would do nothing, silently)."""
    check_known(before, schema)
    if revision in ("head", "heads"):
        return
    if revision not in REVISIONS:
        raise StoreError(
            f"there is no schema revision {revision!r}: this closedloop ships "
            f"{', '.join(REVISIONS)} (or give 'head', the newest)"
        )
    if before is not None and REVISIONS.index(revision) < REVISIONS.index(before):
        raise DowngradeRefused(before, revision, schema)


def _alembic() -> tuple[Any, Any]:
    """Alembic's command module and a configuration for the shipped migrations."""
    try:
        from alembic import command
        from alembic.config import Config
    except ModuleNotFoundError as exc:
        raise StoreError(
            "migrations need Alembic: pip install alembic (the 'postgres' and 'cli' extras "
            "include it)"
        ) from exc
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return command, config
