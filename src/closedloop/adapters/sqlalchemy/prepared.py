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

Only plain statements qualify: no expanding ``IN`` lists, no literal rendering, no
Python-side column defaults; :class:`Prepared` refuses anything else when it is built.
A :class:`Composed` statement, whose shape follows the names of its parameters, is
built for those names first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, CursorResult, Dialect, Engine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import ClauseElement

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

    def parameters(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters for one row of ``values`` (a tuple or a dict)."""
        made: list[tuple[str, Any]] = []
        for name, key, constant, processor in self._steps:
            if key is None:
                made.append((name, constant))
                continue
            value = values[key]
            made.append((name, processor(value) if processor is not None else value))
        if self._positional:
            return tuple(value for _, value in made)
        return dict(made)

    def run(
        self, connection: Connection, values: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> CursorResult[Any]:
        """Execute with one row of ``values``, or with each of several (executemany)."""
        if isinstance(values, Mapping):
            return connection.exec_driver_sql(self.sql, self.parameters(values))
        return connection.exec_driver_sql(self.sql, [self.parameters(v) for v in values])


def _processor(bind: BindParameter[Any], dialect: Dialect) -> Processor:
    """What ``execute`` does to the value: the type's processing for this dialect (a
    decorated type's own step, then its implementation's)."""
    return bind.type.dialect_impl(dialect).bind_processor(dialect)
