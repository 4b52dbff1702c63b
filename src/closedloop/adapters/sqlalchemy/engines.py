"""Making and configuring the SQLAlchemy engine for each supported backend.

SQLite: WAL (readers never block the writer), ``foreign_keys=ON``, a busy timeout,
and ``BEGIN IMMEDIATE`` for every write transaction. Taking the write lock at the
start matters: a transaction that read first and asks for the lock later fails at
once with "database is locked" when another writer got in between, whatever the
timeout; asking first makes writers queue, and the version check decides.

The engines made here never show bound parameters, in logs or in error messages: they
carry reporters' contact data. An engine the host passes in is used as it is (create it
with ``hide_parameters=True``).

PostgreSQL (psycopg 3): write transactions run at the server's default, READ
COMMITTED, where a guarded ``UPDATE ... WHERE version = :expected`` waits for a
concurrent writer and then sees its result (zero rows: a conflict); read-only
transactions run at REPEATABLE READ so that all their reads agree.
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from typing import Any, Literal, get_args

from pydantic_core import from_json, to_json
from sqlalchemy import URL, Connection, Engine, RootTransaction, create_engine, event, make_url
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import Pool
from sqlalchemy.sql.expression import ClauseElement

from closedloop.adapters.sqlalchemy.prepared import Composed, Prepared
from closedloop.errors import StoreError, ValidationError

READ_ONLY = "closedloop_read_only"
"""Connection execution option: the transaction about to begin only reads."""

Synchronous = Literal["FULL", "NORMAL"]
SYNCHRONOUS_MODES: tuple[str, ...] = get_args(Synchronous)
"""The SQLite ``synchronous`` modes a store accepts; SQLite itself would take any word."""

# Engines given to more than one store (or to a store and ``upgrade``) get our SQLite
# hooks once: a second BEGIN would fail inside the first.
_configured: weakref.WeakSet[Engine] = weakref.WeakSet()


def make_engine(
    target: str | URL | Engine, *, busy_timeout: float, synchronous: Synchronous
) -> tuple[Engine, bool]:
    """The engine for ``target`` and whether the store owns (and so disposes) it.

    Raises:
        ValidationError: ``synchronous`` is not one of :data:`SYNCHRONOUS_MODES`.
        StoreError: the URL is malformed, names an unsupported backend or an
            in-memory SQLite database, or its driver is not installed.
    """
    check_synchronous(synchronous)
    if isinstance(target, Engine):
        engine, owned = target, False
    else:
        engine, owned = _create(target, busy_timeout), True
    name = engine.dialect.name
    if name == "sqlite":
        _check_sqlite_file(engine.url)
        _configure_sqlite(engine, busy_timeout, synchronous)
    elif name != "postgresql":
        raise _unsupported(name)
    return engine, owned


def check_synchronous(synchronous: object) -> None:
    """Refuse a ``synchronous`` mode other than ``"FULL"`` or ``"NORMAL"``.

    SQLite reads an unknown word as its default and ``OFF`` or ``0`` as no syncing at
    all, so a typo would silently weaken what a commit survives.

    Raises:
        ValidationError: ``synchronous`` is not one of :data:`SYNCHRONOUS_MODES`.
    """
    if not isinstance(synchronous, str) or synchronous not in SYNCHRONOUS_MODES:
        allowed = " or ".join(f'"{mode}"' for mode in SYNCHRONOUS_MODES)
        raise ValidationError(
            [("synchronous", f"must be {allowed}, not {synchronous!r}")],
            subject="SQLStore settings",
        )


def _create(target: str | URL, busy_timeout: float) -> Engine:
    try:
        url = make_url(target)
    except sa_exc.ArgumentError as exc:
        raise StoreError(f"not a database URL: {target!r}") from exc
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise _unsupported(backend)
    if url.drivername == "postgresql":
        # A plain postgresql:// URL means psycopg 3 here (SQLAlchemy would pick psycopg2).
        url = url.set(drivername="postgresql+psycopg")
    # JSON columns are encoded and decoded by pydantic-core: several times faster than
    # the json module on a case body, and it writes non-ASCII text (addresses,
    # descriptions) as itself rather than as \\u escapes, which auditors can read.
    # hide_parameters: with ``sqlalchemy.engine`` logging on, or in a driver error's
    # message, bound values would show a reporter's name, phone and email.
    options: dict[str, Any] = {
        "json_serializer": _json_text,
        "json_deserializer": from_json,
        "hide_parameters": True,
    }
    if backend == "sqlite":
        options["connect_args"] = {"timeout": busy_timeout}
    try:
        return create_engine(url, **options)
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"the driver for {url.drivername!r} is not installed"
            + (": pip install 'closedloop[postgres]'" if backend == "postgresql" else "")
        ) from exc
    except sa_exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot use the database URL {url!r}: {exc}") from exc


def _json_text(value: Any) -> str:
    return to_json(value).decode("utf-8")


def _unsupported(name: str) -> StoreError:
    return StoreError(f"unsupported database {name!r}: SQLStore supports SQLite and PostgreSQL")


def _check_sqlite_file(url: URL) -> None:
    database = url.database or ""
    if database in ("", ":memory:") or "mode=memory" in str(url):
        # Each pooled connection would see its own empty database.
        raise StoreError(
            "SQLStore needs a SQLite file, not an in-memory database; "
            "use InMemoryStore for a store that lives in memory"
        )


def _configure_sqlite(engine: Engine, busy_timeout: float, synchronous: Synchronous) -> None:
    if engine in _configured:
        return
    _configured.add(engine)
    pragmas = (
        f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}",
        "PRAGMA journal_mode = WAL",
        "PRAGMA foreign_keys = ON",
        f"PRAGMA synchronous = {synchronous}",
    )

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop pysqlite from issuing its own (deferred) BEGIN; on_begin issues ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:  # busy_timeout first: switching to WAL may wait
                cursor.execute(pragma)
        finally:
            cursor.close()

    def on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        # A deferred BEGIN gives a reader a stable snapshot without taking the write lock.
        # Straight to the driver: this runs for every transaction, and SQLAlchemy's
        # statement machinery would cost more than the BEGIN itself.
        statement = "BEGIN" if read_only else "BEGIN IMMEDIATE"
        try:
            connection.connection.driver_connection.execute(statement)  # type: ignore[union-attr]
        except sqlite3.Error as exc:
            # Outside SQLAlchemy's own handling: wrapped as it wraps a statement's
            # error, so that the store translates it (a lock not had in time, say).
            raise sa_exc.DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


_PreparedKey = tuple[int, tuple[str, ...], tuple[str, ...]]
_prepared: weakref.WeakKeyDictionary[Engine, dict[_PreparedKey, Prepared]] = (
    weakref.WeakKeyDictionary()
)


def prepared(
    engine: Engine,
    statement: ClauseElement | Composed,
    columns: tuple[str, ...],
    *,
    encoded: tuple[str, ...] = (),
) -> Prepared:
    """``statement`` compiled once for ``engine``, setting ``columns`` (the keys of the
    parameters it is run with), and kept for the engine's next transactions. A
    :class:`~closedloop.adapters.sqlalchemy.prepared.Composed` statement is first built
    for those keys. The parameters named in ``encoded`` come as the driver takes them
    (JSON as its text, see :class:`Prepared`).

    Raises:
        StoreError: the statement cannot be prepared (see :class:`Prepared`).
    """
    kept = _prepared.setdefault(engine, {})
    key = (id(statement), columns, encoded)  # statements are module constants: ids stay
    found = kept.get(key)
    if found is None:
        if isinstance(statement, ClauseElement):
            found = Prepared(statement, engine, columns=columns, encoded=encoded)
        else:
            found = Prepared(statement.compose(columns), engine, encoded=encoded)
        kept[key] = found
    return found


class Statements:
    """The statements a store's transactions run prepared (see :func:`prepared`), kept
    by the store: a command looks each of its statements up here, without the engine's
    weak mapping."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._kept: dict[_PreparedKey, Prepared] = {}

    def get(
        self,
        statement: ClauseElement | Composed,
        columns: tuple[str, ...],
        encoded: tuple[str, ...] = (),
    ) -> Prepared:
        """:func:`prepared`'s ``statement`` for ``columns`` (``encoded`` given as is).

        Raises:
            StoreError: the statement cannot be prepared (see :class:`Prepared`).
        """
        key = (id(statement), columns, encoded)  # statements are module constants
        found = self._kept.get(key)
        if found is None:
            found = prepared(self._engine, statement, columns, encoded=encoded)
            self._kept[key] = found
        return found


class IdleConnections:
    """The SQLite connections a store's transactions ended on, kept for its next ones.

    Checking a connection out of the pool and back in costs a command more than its
    ``BEGIN`` (SQLAlchemy builds the connection and its event dispatch anew each time),
    so a transaction that ended cleanly leaves its connection here, between
    transactions, with nothing begun, and the next transaction takes it. At most
    ``keep`` wait; the others go back to the pool. A connection is taken back only by
    the process that left it (a forked child opens its own and leaves its parent's
    alone), only while the engine's pool is the one it came from (after the host's
    ``Engine.dispose()`` the next transaction opens a fresh one) and while it logs
    statements as the engine now would; one that is closed, invalidated or still inside
    a transaction is never kept. A kept connection skips the pool between
    transactions: its checkout and checkin events, pre-ping and recycling. PostgreSQL
    connections always go back to the pool, which resets what a read-only transaction
    set.
    """

    def __init__(self, engine: Engine, *, keep: int = 2) -> None:
        self._kept: list[tuple[int, Pool, Connection]] = []
        self._keep = keep if engine.dialect.name == "sqlite" else 0
        self._lent: dict[int, Pool] = {}  # the pool each connection in use came from

    def take(self, engine: Engine, *, read_only: bool) -> Connection:
        """A kept connection of this process, or a new one (see :func:`connect`).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database cannot be reached.
        """
        while self._kept:
            try:
                pid, pool, connection = self._kept.pop()  # atomic: threads never share one
            except IndexError:
                break
            if pid != _pid:
                # The parent's, inherited by a fork: never used nor let go here (freed,
                # SQLAlchemy would hand its driver connection to this process's pool).
                _INHERITED.append(connection)
            elif pool is engine.pool and _current(connection, engine):
                self._lent[id(connection)] = pool
                return connection
            else:  # the engine was disposed of, or its logging changed: a fresh one
                connection.close()
        pool = engine.pool
        connection = connect(engine, read_only=read_only)
        self._lent[id(connection)] = pool
        return connection

    def give_back(self, connection: Connection) -> None:
        """Keep ``connection`` for a next transaction, or return it to the pool.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: returning it to the pool failed.
        """
        engine, pool = connection.engine, self._lent.pop(id(connection), None)
        if (
            len(self._kept) < self._keep
            and pool is engine.pool  # not disposed of while the connection was in use
            and _idle(connection)  # whether it logs as the engine does is checked at take
        ):
            self._kept.append((_pid, pool, connection))
            return
        connection.close()

    def close(self) -> None:
        """Return every kept connection to the pool (before the store disposes of it)."""
        while self._kept:
            try:
                pid, _, connection = self._kept.pop()
            except IndexError:
                break
            if pid == _pid:
                connection.close()
            else:
                _INHERITED.append(connection)


_pid = os.getpid()
"""This process's id (a forked child's own, see :func:`_forked`)."""


def _forked() -> None:
    global _pid  # a child learns its own id once, not at every command
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)

_INHERITED: list[Connection] = []
"""Kept connections a forked child found, its parent's: held, never closed or freed."""


def _current(connection: Connection, engine: Engine) -> bool:
    """Whether ``connection`` is usable as the engine would make it now: open, valid,
    and logging statements exactly when the engine does (a connection fixes that when
    it is made)."""
    if connection.closed or connection.invalidated:
        return False
    return bool(connection._echo) == bool(engine._should_log_info())


def _idle(connection: Connection) -> bool:
    if connection.closed or connection.invalidated or connection.in_transaction():
        return False
    driver = connection.connection.driver_connection
    return not getattr(driver, "in_transaction", True)


def connect(engine: Engine, *, read_only: bool) -> Connection:
    """A connection for one transaction (not yet begun); read-only ones read a snapshot.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached (callers
            translate it).
    """
    connection = engine.connect()
    if read_only and engine.dialect.name == "postgresql":
        return connection.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
    return connection


def begin(connection: Connection, *, write: bool) -> RootTransaction:
    """Begin a transaction on ``connection``: on SQLite a reader's or the writer's.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database failed (callers translate it).
    """
    if connection.dialect.name == "sqlite":
        read_only = not write
        if connection.get_execution_options().get(READ_ONLY) is not read_only:
            # Set only when it changes: a kept connection mostly begins as it did before.
            connection.execution_options(**{READ_ONLY: read_only})
    return connection.begin()
