"""Reading the SQL store's audit trail in one streamed query (for metrics and exports).

The generic path asks the store for each case's events, a query per case. Here one
``SELECT`` over the audit table, ordered by its primary key (case, sequence), is
streamed in chunks (a server-side cursor on PostgreSQL) and cut into cases as the
case id changes, so memory holds one chunk and one case. Rows are handed on as they
are, without building ``AuditEvent`` models: the metrics read only a few columns.

The query runs in one read-only transaction: a consistent snapshot on both
backends, and on SQLite it takes no write lock, so the engine keeps writing.

``SQLStore.stream_events`` (the :class:`~closedloop.engine.ports.EventStream` port)
runs it; the metrics find it through that port, so that only the adapter imports
SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import cast

from sqlalchemy import Engine, select

from closedloop.adapters.sqlalchemy.engines import begin, connect
from closedloop.adapters.sqlalchemy.failures import translated
from closedloop.adapters.sqlalchemy.schema import case_events
from closedloop.engine.ports import EventRecord

CHUNK = 2000
"""Rows fetched from the database at a time."""

EVENT_ROWS = select(
    case_events.c.case_id,
    case_events.c.at,
    case_events.c.trigger,
    case_events.c.to_state,
    case_events.c.payload,
    case_events.c.changes,
).order_by(case_events.c.case_id, case_events.c.seq)
"""Every event, grouped by case, oldest first within each case."""


def stream_events(engine: Engine, *, chunk: int = CHUNK) -> Iterator[Sequence[EventRecord]]:
    """Each case's events in the database of ``engine`` as rows (``case_id``, ``at``,
    ``trigger``, ``to_state``, ``payload``, ``changes``), one case at a time, from one query.

    Args:
        engine: The store's engine (with its schema mapping).
        chunk: How many rows to fetch at a time.

    Raises:
        StoreError: the database failed.
    """
    with (
        translated("read the audit trail"),
        connect(engine, read_only=True) as connection,
        begin(connection, write=False),
    ):
        result = connection.execution_options(yield_per=chunk).execute(EVENT_ROWS)
        case: list[EventRecord] = []
        current = None
        for row in result:
            if row.case_id != current:
                if case:
                    yield case
                case, current = [], row.case_id
            case.append(cast(EventRecord, row))
        if case:
            yield case
