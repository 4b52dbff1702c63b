"""Statements compiled once per store and run with the driver's own parameters.

A command runs the same few statements every time: read the case, update it, append
its event (on PostgreSQL in the same statement as the update), queue its
notifications. Through ``Connection.execute`` each call looks the compiled form up in
SQLAlchemy's cache, builds its parameters generically, expands and processes them, and
sets its result up; on a durable command that is a larger share of the time than the
database's own work. A :class:`Prepared` statement does the lookup
once: it compiles the statement for the store's dialect, keeps the SQL text, the order
of its parameters and each one's bind processor (the same processors ``execute`` would
apply: instants to UTC, JSON to text), and runs through
``Connection.exec_driver_sql``. The connection's events still fire for every statement,
so listeners (and the statement counts in the test suite) see each one.

On SQLite, while nothing listens to a connection's statements (no cursor or error
events, no statement logging) and a transaction is open on it, a prepared statement
goes to the driver's cursor directly: SQLAlchemy's execution context and result set
cost several times what SQLite takes to run the statement. Its errors are handled as
``execute`` handles them (the same ``sqlalchemy.exc`` errors, the same invalidation),
and it gives back what callers use of a result: ``rowcount`` and ``first()``, whose
row has the columns as attributes and ``_mapping``.

Only plain statements qualify: no expanding ``IN`` lists, no literal rendering, no
Python-side column defaults; :class:`Prepared` refuses anything else when it is built.
A :class:`Composed` statement, whose shape follows the names of its parameters, is
built for those names first.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from operator import itemgetter
from typing import Any, Protocol

from sqlalchemy import Connection, CursorResult, Dialect, Engine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import ClauseElement

from closedloop.adapters.sqlalchemy.schema import Instant
from closedloop.engine.clock import utc
from closedloop.errors import StoreError

Processor = Callable[[Any], Any] | None


class Composed(Protocol):
    """A statement whose shape depends on the names of the parameters it is run with."""

    def compose(self, keys: tuple[str, ...]) -> ClauseElement:
        """The statement for parameters named ``keys``."""
        ...


class Prepared:
    """One statement compiled for one dialect, run with driver-ready parameters.

    Args:
        statement: The Core statement (``select``, ``insert``, ``update``, ``delete``).
        engine: The store's engine: its dialect, and its schema when the store has one
            (``schema_translate_map``, rendered into the SQL text).
        columns: For an ``insert`` or an ``update`` whose values come with each call: the
            column names it sets (as ``execute`` would infer them from the parameters).
        encoded: Parameter names whose values the caller passes already as the driver
            takes them (JSON already encoded as text): their processors are skipped.

    Raises:
        StoreError: the statement needs something a prepared statement cannot give it.
    """

    def __init__(
        self,
        statement: ClauseElement,
        engine: Engine,
        *,
        columns: Sequence[str] | None = None,
        encoded: Collection[str] = (),
    ) -> None:
        dialect = engine.dialect
        schemas = engine.get_execution_options().get("schema_translate_map")
        compiled = statement.compile(
            dialect=dialect,
            column_keys=list(columns or ()),
            schema_translate_map=schemas,
            render_schema_translate=schemas is not None,
        )
        if not isinstance(compiled, SQLCompiler):
            raise StoreError(f"only SQL statements can be prepared, not {statement!r}")
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise StoreError(
                "a statement with an expanding or literal parameter cannot be prepared"
            )
        binds: Mapping[BindParameter[Any], str] = compiled.bind_names
        by_name = {name: bind for bind, name in binds.items()}
        self.sql = str(compiled)
        self._positional = bool(compiled.positional)
        names = list(compiled.positiontup or ()) if self._positional else list(by_name)
        self._direct = dialect.name == "sqlite"
        self._rows: Any = None  # the class of the rows it reads, once it has read
        self._names = names
        self._steps: list[tuple[str, str | None, Any, Processor]] = []
        for name in names:
            bind = by_name[name]
            processor = None if name in encoded else _processor(bind, dialect)
            if bind.required or bind.callable is not None or bind.value is None:
                # Given by each call, under the name the statement was written with.
                self._steps.append((name, bind.key, None, processor))
            else:  # a constant written into the statement (``status == 'live'``)
                value = processor(bind.value) if processor is not None else bind.value
                self._steps.append((name, None, value, None))
        # Without constants (a command's statements), each row's values are taken in
        # one step and only those with a processor are processed.
        keys = [key for _, key, _, _ in self._steps]
        self._given: Callable[[Mapping[str, Any]], tuple[Any, ...]] | None = None
        if keys and None not in keys:
            taken = itemgetter(*keys)
            self._given = taken if len(keys) > 1 else lambda values: (taken(values),)
        self._processed = [
            (n, processor)
            for n, (_, _, _, processor) in enumerate(self._steps)
            if processor is not None
        ]

    def parameters(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters for one row of ``values`` (a tuple or a dict)."""
        if self._given is not None:
            made: Any = self._given(values)
            if self._processed:
                made = list(made)
                for n, processor in self._processed:
                    made[n] = processor(made[n])
        else:
            made = [
                constant
                if key is None
                else values[key]
                if processor is None
                else processor(values[key])
                for _, key, constant, processor in self._steps
            ]
        if self._positional:
            return tuple(made)
        return dict(zip(self._names, made, strict=True))

    def run(
        self,
        connection: Connection,
        values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        listened: bool | None = None,
    ) -> Outcome:
        """Execute with one row of ``values``, or with each of several (executemany).

        ``listened`` is :func:`listened_to` of ``connection`` when the caller found it
        already (a transaction finds it once, when it begins); it is found here when
        ``None``.

        Raises:
            sqlalchemy.exc.DBAPIError: the database refused (as ``execute`` raises it).
        """
        many = not isinstance(values, Mapping)
        if isinstance(values, Mapping):
            params = self.parameters(values)
        else:
            params = [self.parameters(v) for v in values]
        if (
            self._direct
            and connection.in_transaction()
            and not (listened_to(connection) if listened is None else listened)
        ):
            return self._on_cursor(connection, params, many=many)
        return connection.exec_driver_sql(self.sql, params)

    def _on_cursor(self, connection: Connection, params: Any, *, many: bool) -> Ran:
        cursor = connection.connection.cursor()
        try:
            if many:
                cursor.executemany(self.sql, params)
            else:
                cursor.execute(self.sql, params)
            description = cursor.description
            if description is None:
                return Ran(cursor.rowcount)
            rows = self._row_class(description)
            # Each driver row made one of ``rows`` without its Python-level constructor.
            made = list(map(partial(tuple.__new__, rows), cursor.fetchall()))
            return Ran(cursor.rowcount, rows._fields, made)
        except BaseException as exc:
            # Translated (and the connection invalidated when it is lost) as execute does.
            connection._handle_dbapi_exception(exc, self.sql, params, cursor, None)
        finally:
            cursor.close()

    def _row_class(self, description: Sequence[Sequence[Any]]) -> Any:
        if self._rows is None:
            self._rows = _row_class(tuple(str(column[0]) for column in description))
        return self._rows


class Ran:
    """What a prepared statement run on the driver's cursor gives back: the number of
    rows it changed, and the rows it read, each with its columns as attributes and as
    ``_mapping`` (as SQLAlchemy's rows have them)."""

    __slots__ = ("_keys", "_rows", "rowcount")

    def __init__(self, rowcount: int, keys: Sequence[str] = (), rows: Sequence[Any] = ()) -> None:
        self.rowcount = rowcount
        self._keys = keys
        self._rows = rows

    def first(self) -> Any:
        """The first row read (``None`` if none)."""
        return self._rows[0] if self._rows else None

    def all(self) -> list[Any]:
        """Every row read."""
        return list(self._rows)

    def keys(self) -> list[str]:
        """The names of the columns read."""
        return list(self._keys)


Outcome = CursorResult[Any] | Ran
"""The result of :meth:`Prepared.run`: SQLAlchemy's, or the driver's (see the module)."""


def _row_class(names: tuple[str, ...]) -> Any:
    base = namedtuple("PreparedRow", names, rename=True)  # type: ignore[misc]

    class PreparedRow(base):
        __slots__ = ()

        @property
        def _mapping(self) -> dict[str, Any]:
            return dict(zip(names, self, strict=True))

    return PreparedRow


def listened_to(connection: Connection) -> bool:
    """Whether a statement bypassing SQLAlchemy on ``connection`` would be missed: by a
    statement log, a cursor or error listener, or a dialect hook. A transaction asks
    once, when it begins: a listener added while one is open (by another thread) may
    miss that transaction's statements."""
    if connection._echo:
        return True
    dispatch = connection.dispatch
    if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
        return True
    hooks = connection.dialect.dispatch
    return bool(hooks.do_execute or hooks.do_executemany or hooks.handle_error)


def _processor(bind: BindParameter[Any], dialect: Dialect) -> Processor:
    """What ``execute`` does to the value: the type's processing for this dialect (a
    decorated type's own step, then its implementation's)."""
    if dialect.name == "sqlite" and isinstance(bind.type, Instant):
        return _sqlite_instant
    return bind.type.dialect_impl(dialect).bind_processor(dialect)


def _sqlite_instant(value: datetime | None) -> str | None:
    """An instant as ``Instant`` and SQLite's ``DATETIME`` together write it (UTC text,
    microseconds always), in one step: a command writes several."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = utc(value, "a stored instant")
    # "YYYY-MM-DD HH:MM:SS.ffffff", the UTC offset cut off (years have four digits).
    return value.isoformat(" ", "microseconds")[:26]
