"""A prepared statement sends the driver what ``Connection.execute`` would send it.

Each check runs the same statement both ways over the same database, on SQLite and on
PostgreSQL, and compares what the driver received and what the rows hold afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, bindparam, event, select
from sqlalchemy import exc as sa_exc

from closedloop.adapters.sqlalchemy import SQLStore, queries
from closedloop.adapters.sqlalchemy import statements as sql
from closedloop.adapters.sqlalchemy.prepared import Prepared
from closedloop.adapters.sqlalchemy.schema import Instant, cases
from closedloop.engine.case_query import CaseFilter
from closedloop.errors import StoreError
from tests.conftest import new_schema, postgres_url

AT = datetime(2026, 3, 2, 17, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))
"""An instant given in Beijing time: stored in UTC, whichever way it is written."""


notes = Table(
    "prepared_notes",
    MetaData(),
    Column("key", String, primary_key=True),
    Column("at", Instant, nullable=False),
    Column("data", JSON, nullable=False),
    Column("n", Integer, nullable=False),
)
"""A table of the types the store's rows use: an instant, JSON, text, a number."""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.external_service)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    if request.param == "sqlite":
        opened = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    else:
        opened = SQLStore(postgres_url(), schema=new_schema())
    notes.metadata.create_all(opened.engine)  # in the store's schema, as its own tables
    yield opened
    opened.close()


def key_row(key: str, at: datetime, n: int = 2) -> dict[str, Any]:
    return {"key": key, "at": at, "data": {"text": "水管 <ok>", "list": [1, None]}, "n": n}


def plain(parameters: Any) -> Any:
    """Parameters with psycopg's JSON wrappers (which compare by identity) unwrapped."""
    if isinstance(parameters, dict):
        return {k: getattr(v, "obj", v) for k, v in parameters.items()}
    return tuple(parameters)


def sent(store: SQLStore) -> list[tuple[str, Any]]:
    """The statements and parameters the driver receives from now on."""
    seen: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    return seen


def test_an_insert_sends_what_execute_sends_and_reads_back_the_same(store: SQLStore) -> None:
    statement = notes.insert()
    first = key_row("by-execute", AT)
    prepared = Prepared(statement, store.engine, columns=list(first))
    seen = sent(store)
    with store.engine.begin() as connection:
        connection.execute(statement, first)
        prepared.run(connection, key_row("prepared", AT))
    (by_execute, by_execute_params), (by_prepared, by_prepared_params) = seen
    assert by_prepared == by_execute
    if isinstance(by_execute_params, dict):
        by_execute_params = {**by_execute_params, "key": "prepared"}
    else:
        by_execute_params = ("prepared", *by_execute_params[1:])
    assert plain(by_prepared_params) == plain(by_execute_params)
    with store.engine.connect() as connection:
        stored = connection.execute(select(notes).order_by(notes.c.key)).mappings().all()
    assert [dict(row) | {"key": ""} for row in stored] == [key_row("", AT), key_row("", AT)]
    assert all(row["at"].utcoffset() == timedelta(0) for row in stored)


def test_constants_and_several_rows_go_through(store: SQLStore) -> None:
    statement = notes.insert()
    rows = [key_row(f"k{n}", AT + timedelta(minutes=n), n % 2 + 1) for n in range(4)]
    with store.engine.begin() as connection:
        Prepared(statement, store.engine, columns=list(rows[0])).run(connection, rows)
    # A constant written into the statement (n = 2) and a parameter.
    counted = (
        select(notes.c.key, notes.c.at)
        .where(notes.c.n == 2)
        .where(notes.c.at > bindparam("after"))
        .order_by(notes.c.key)
    )
    with store.engine.connect() as connection:
        found = Prepared(counted, store.engine).run(connection, {"after": AT}).all()
    assert [row[0] for row in found] == ["k1", "k3"]


def test_the_case_read_returns_the_columns_execute_returns(store: SQLStore) -> None:
    with store.engine.connect() as connection:
        prepared = Prepared(sql.CASE, store.engine)
        assert prepared.run(connection, {"case_id": "none"}).first() is None
        assert len(prepared.run(connection, {"case_id": "none"}).keys()) == len(
            connection.execute(sql.CASE, {"case_id": "none"}).keys()
        )


def test_a_statement_with_an_expanding_list_is_refused(store: SQLStore) -> None:
    statement = select(cases.c.id).where(cases.c.id.in_(bindparam("ids", expanding=True)))
    with pytest.raises(StoreError, match="cannot be prepared"):
        Prepared(statement, store.engine)


def test_inside_a_transaction_rows_and_errors_are_those_execute_gives(store: SQLStore) -> None:
    statement = notes.insert()
    row = key_row("once", AT)
    insert = Prepared(statement, store.engine, columns=list(row))
    read = Prepared(
        select(notes.c.key, notes.c.n).where(notes.c.key == bindparam("k")), store.engine
    )
    with store.engine.begin() as connection:
        assert insert.run(connection, row).rowcount == 1
        found = read.run(connection, {"k": "once"}).first()
        assert (found.key, found.n, found._mapping) == ("once", 2, {"key": "once", "n": 2})
        with pytest.raises(sa_exc.IntegrityError):
            insert.run(connection, row)


def test_a_full_page_cache_drops_the_statement_asked_for_least_recently(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A screen asked often (the hot filter) keeps its prepared page statement however
    # many other filters pass through the cache: only the least recently asked goes.
    compiled: list[str] = []

    class Counted(Prepared):
        def __init__(self, statement: Any, engine: Any, **options: Any) -> None:
            compiled.append(str(statement))
            super().__init__(statement, engine, **options)

    monkeypatch.setattr(queries, "Prepared", Counted)
    hot, cold = CaseFilter.of(state="reported"), CaseFilter.of(area="D0")
    store.select_cases(cold)
    for n in range(3 * queries._Pages.KEEP):
        store.select_cases(hot)
        store.select_cases(CaseFilter.of(area=f"D{n + 1}"))
    assert len(compiled) == 1 + 1 + 3 * queries._Pages.KEEP  # each prepared once
    store.select_cases(hot)
    assert len(compiled) == 2 + 3 * queries._Pages.KEEP  # still kept
    store.select_cases(CaseFilter.of(area=f"D{3 * queries._Pages.KEEP}"))  # the latest other
    assert len(compiled) == 2 + 3 * queries._Pages.KEEP
    store.select_cases(cold)  # asked for least recently: it went first
    assert len(compiled) == 3 + 3 * queries._Pages.KEEP
