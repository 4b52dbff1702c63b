"""Fill a SQL store with many open cases fast: the one benchmark module that uses internals.

Reporting a million cases through ``Engine.report`` takes hours on a SQLite file, so
:func:`fill` reports ONE template case through the public API, reads the rows it made
and inserts copies with SQLAlchemy Core, in large transactions. It knows the store's
tables only by their ``closedloop_`` names, reflected from the database
(``MetaData.reflect``), never by importing the store's table module: it is the one
place in ``benchmarks/`` that writes the store's rows directly.

A copy differs from the template in its case id (in every column and JSON value that
holds it) and in every time column, shifted by an offset that grows from copy to copy,
so the copies' timers are spread over ``spread`` instead of sharing one due instant.
What a copy does not get: times inside its JSON body (they stay the template's) and
an audit chain of its own (its event's hash covers the template's id, so
``Engine.verify`` reports a copy's chain broken). The copies fill the tables and their
indexes; the benchmarks never read or verify them, and tick them only to check that
none is due.
"""

from __future__ import annotations

import time
import warnings
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, MetaData, create_engine, delete, event, insert, select
from sqlalchemy.exc import SAWarning

from closedloop import Actor, Engine, NaturalCalendar, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.testing import ManualClock

COPIED = ("closedloop_cases", "closedloop_case_events")
"""The tables a copy gets rows in (a filler case has no contact and no notification; its
timers are the case row's ``next_timer_at``, shifted with the copy's other times)."""
PER_TRANSACTION = 50_000
"""Cases per transaction of the loader."""


def _replaced(value: Any, old: str, new: str) -> Any:
    """``value`` with the string ``old`` replaced by ``new`` wherever it occurs."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _replaced(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v, old, new) for v in value]
    return value


def _template(url: str, at: datetime) -> str:
    """Report one case at ``at`` through the public API; its id."""
    store = SQLStore(url)
    try:
        clock = ManualClock(at)
        engine = Engine(workflows.standard(), store=store, clock=clock, calendar=NaturalCalendar())
        case = engine.report(Actor("citizen-bulk"), description="Filler", location="Filler")
    finally:
        store.close()
    return case.id


def fill(url: str, count: int, *, start: datetime, spread: timedelta) -> float:
    """Add ``count`` open cases, reported between ``start`` and ``start + spread``.

    Returns the seconds it took. The template case (reported at ``start``) is removed
    again, so the store gains exactly ``count`` cases.
    """
    began = time.perf_counter()
    template_id = _template(url, start)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def pragmas(dbapi: Any, _: Any) -> None:
            dbapi.execute("PRAGMA synchronous = OFF")  # the file is synced at the end

    meta = MetaData()
    with warnings.catch_warnings():  # expression indexes are not reflected: not needed here
        warnings.simplefilter("ignore", SAWarning)
        meta.reflect(engine, only=COPIED)
    tables = [meta.tables[name] for name in COPIED]
    with engine.begin() as connection:
        rows = {}
        for table in tables:
            key = table.c.id if table.name == "closedloop_cases" else table.c.case_id
            found = connection.execute(select(table).where(key == template_id)).mappings()
            rows[table.name] = [{k: v for k, v in row.items() if k != "row_id"} for row in found]
        for table in reversed(tables):  # the template goes: only its copies stay
            key = table.c.id if table.name == "closedloop_cases" else table.c.case_id
            connection.execute(delete(table).where(key == template_id))
    times = {t.name: [c.name for c in t.c if isinstance(c.type, DateTime)] for t in tables}
    for first in range(0, count, PER_TRANSACTION):
        with engine.begin() as connection:
            batch = range(first, min(first + PER_TRANSACTION, count))
            for table in tables:
                connection.execute(
                    insert(table),
                    [
                        _copy(row, times[table.name], template_id, n, count, spread)
                        for n in batch
                        for row in rows[table.name]
                    ],
                )
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return time.perf_counter() - began


def _copy(
    row: dict[str, Any], times: list[str], template_id: str, n: int, count: int, spread: timedelta
) -> dict[str, Any]:
    copy = _replaced(row, template_id, f"fill-{n:07d}")
    offset = spread * (n + 1) / count
    for name in times:
        if copy[name] is not None:
            copy[name] = copy[name] + offset
    return copy
