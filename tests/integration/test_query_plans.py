"""Every query the engine's read side sends is served by an index (EXPLAIN says which).

The plans are read on a small store: SQLite plans without statistics, and PostgreSQL is
told not to prefer a sequential scan (on a small table it would), so the plan names
the index the query can use at any size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, String, create_engine, event, func, select, type_coerce

from closedloop import Actor, workflows
from closedloop.adapters.sqlalchemy import SQLStore, leases, queries, tally
from closedloop.adapters.sqlalchemy import statements as sql
from closedloop.adapters.sqlalchemy.prepared import Prepared
from closedloop.adapters.sqlalchemy.queries import count_query, page_query, shown_query
from closedloop.adapters.sqlalchemy.schema import cases
from closedloop.engine.case_query import CaseFilter
from closedloop.engine.reading import Reader
from closedloop.testing.contract.base import T0, add, deadline
from tests.conftest import new_schema, postgres_url

DAY = timedelta(days=1)
WORKFLOW = workflows.standard()
WATER = Actor("w1", units=frozenset({"water"}))
DISPATCHER = Actor("d1", roles=frozenset({"dispatcher"}))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)])
def explained(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connection]:
    """A connection whose statements are EXPLAINed instead of run, over a filled store."""
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'plans.db'}", None
    else:
        url, schema = postgres_url(), new_schema("p")
    store = SQLStore(url, schema=schema)
    for n in range(60):
        unit = ("water", "roads", "parks")[n % 3]
        add(store, f"c{n}", state=("assigned", "in_progress", "reported")[n % 3],
            lead_unit=unit, co_units=(("roads",) if n % 5 == 0 else ()),
            deadline=deadline(T0 + n * DAY), description=f"井盖 {n} report {n}")  # fmt: skip
    store.close()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    prefix = "EXPLAIN QUERY PLAN " if request.param == "sqlite" else "EXPLAIN "

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _explain(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _m: Any) -> Any:
        explain = statement.lstrip().upper().startswith("SELECT")
        return (prefix + statement if explain else statement), params

    with engine.connect().execution_options(schema_translate_map={None: schema}) as connection:
        if request.param == "postgres":
            connection.exec_driver_sql("SET enable_seqscan = off")
        yield connection
    engine.dispose()


def plan(connection: Connection, viewer: Actor, order: str | None, **criteria: Any) -> str:
    """The plan of a page in ``order``, or of the count when ``order`` is ``None``."""
    where: CaseFilter = Reader(WORKFLOW, None).criteria(viewer, **criteria)  # type: ignore[arg-type]
    dialect = connection.dialect.name
    query: Any = (
        count_query(where, dialect)
        if order is None
        else page_query(where, order, None, 50, dialect)  # type: ignore[arg-type]
    )
    rows = connection.execute(query).all()
    return "\n".join(str(row[-1]) for row in rows)


def needs_unicode_ctype(connection: Connection) -> None:
    """pg_trgm classifies characters by the database's LC_CTYPE: under plain ``C`` it
    finds no trigrams in Chinese text (.ci/postgres.sh creates its cluster with
    C.UTF-8). A developer's server with ``C`` skips; CI must not."""
    ctype = connection.exec_driver_sql("SHOW lc_ctype").scalar()
    if ctype in ("C", "POSIX"):
        reason = f"pg_trgm finds no trigrams in CJK text under LC_CTYPE {ctype}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; .ci/postgres.sh creates the cluster with C.UTF-8")
        pytest.skip(reason)


@pytest.mark.parametrize(
    ("viewer", "order", "criteria", "index"),
    [
        (WATER, "urgent", {"waiting_on": WATER}, "ix_closedloop_cases_"),
        (DISPATCHER, "urgent", {"waiting_on": DISPATCHER}, "ix_closedloop_cases_"),
        (DISPATCHER, "urgent", {"lead_unit": "water"}, "ix_closedloop_cases_lead_unit_urgency"),
        (DISPATCHER, "oldest", {"text": "井盖 1"}, "case_text"),
        (DISPATCHER, "oldest", {"text": "report 1"}, "case_text"),
        (DISPATCHER, "oldest", {"co_unit": "roads"}, "co_units"),
        (DISPATCHER, "oldest", {"area": "D1"}, "area"),
        (DISPATCHER, "oldest", {"category": "01"}, "category"),
        (DISPATCHER, "oldest", {"reporter": "citizen-1"}, "ix_closedloop_cases_reporter_urgency"),
        (DISPATCHER, "oldest", {"channel": "app"}, "ix_closedloop_cases_channel"),
        (DISPATCHER, "oldest", {"reported_from": T0}, "ix_closedloop_cases_reported_at"),
        (DISPATCHER, "newest", {}, "ix_closedloop_cases_reported_at_row_id"),
        (DISPATCHER, "updated", {}, "ix_closedloop_cases_updated_at_row_id"),
        (DISPATCHER, "updated", {"updated_from": T0}, "ix_closedloop_cases_updated_at_row_id"),
        (DISPATCHER, "updated", {"updated_before": T0}, "ix_closedloop_cases_updated_at_row_id"),
        # The Open311 updates feed: changed since its start, reported by its end.
        (DISPATCHER, "updated", {"updated_from": T0, "reported_before": T0 + DAY}, "updated_at"),
        (DISPATCHER, "urgent", {}, "ix_closedloop_cases_urgency"),
        (DISPATCHER, "oldest", {"supervised": True}, "ix_closedloop_cases_supervised"),
        (DISPATCHER, "oldest", {"state": "assigned"}, "ix_closedloop_cases_state"),
        (DISPATCHER, "oldest", {"merged_into": "c1"}, "ix_closedloop_cases_merged_into"),
        (Actor("citizen-1"), "urgent", {}, "ix_closedloop_cases_reporter_urgency"),
        (DISPATCHER, "urgent", {"overdue_at": T0}, "ix_closedloop_cases_"),
    ],
)
def test_each_query_reads_an_index(
    explained: Connection, viewer: Actor, order: str, criteria: dict[str, Any], index: str
) -> None:  # fmt: skip
    found = plan(explained, viewer, order, **criteria)
    if explained.dialect.name == "postgresql" and index == "case_text":
        if not criteria["text"].isascii():
            needs_unicode_ctype(explained)
        # On a small table a page walks the ordering index; the count shows the search.
        index, found = "ix_closedloop_cases_search_text", plan(explained, viewer, None, **criteria)
    assert index in found, found


def test_each_turn_of_a_unit_members_inbox_reads_its_own_urgency_index(
    explained: Connection,
) -> None:
    # An inbox is one statement: a page per turn (the unit's cases, the member's own
    # reports awaiting their confirmation), each from an index already in urgency
    # order and cut at the page size, and their union sorted; never a walk of every
    # case. The contact data is joined to the page.
    where: CaseFilter = Reader(WORKFLOW, None).criteria(WATER, waiting_on=WATER)  # type: ignore[arg-type]
    assert where.turns is not None
    assert len(where.turns) == 2
    query = shown_query(where, "urgent", None, 50, explained.dialect.name, contacts=True)
    if explained.dialect.name == "sqlite":
        # As SQL text: the plan's rows must not pass through the page's column types
        # (its due instants, where SQLite's plan has its text).
        sql = str(query.compile(dialect=explained.dialect, compile_kwargs={"literal_binds": True}))
        rows = explained.exec_driver_sql(sql).all()
    else:
        rows = explained.execute(query).all()
    found = "\n".join(str(row[-1]) for row in rows)
    assert "ix_closedloop_cases_lead_unit_urgency" in found, found
    assert "ix_closedloop_cases_reporter_urgency" in found, found
    if explained.dialect.name == "sqlite":
        assert "SCAN closedloop_cases" not in found, found
    else:  # each branch stops at its limit; only the union of two pages is sorted
        assert found.count("Limit") == 3, found
        assert "Seq Scan" not in found, found


def test_a_ticks_claim_and_the_next_due_instant_read_the_next_timer_index(
    explained: Connection,
) -> None:
    # A tick claims the cases whose earliest timer is due, earliest first; a scheduler
    # asks for the earliest instant. Both must walk the index on (next_timer_at,
    # row_id), not every open case.
    earliest = select(type_coerce(func.min(cases.c.next_timer_at), String))  # the plan's text
    assert str(earliest) == str(leases.NEXT_DUE)
    # An engine claims and asks for its own workflow's cases, along the same index.
    ours = earliest.where(leases.of_workflow(WORKFLOW.name))
    assert str(ours) == str(leases.next_due(WORKFLOW.name))
    due = {"now": T0, "limit": 50}
    claims = [
        (leases.due_cases(False), due),
        (leases.due_cases(True), {**due, "workflow": WORKFLOW.name}),
    ]
    for query, values in [*claims, (earliest, {}), (ours, {})]:
        found = "\n".join(str(row[-1]) for row in explained.execute(query, values).all())
        assert "ix_closedloop_cases_next_timer_at" in found, found
    if explained.dialect.name == "sqlite":
        # SQLite claims in one UPDATE whose subquery selects the due cases: the same walk.
        for ours_only, values in ((False, due), (True, {**due, "workflow": WORKFLOW.name})):
            claim = leases._CLAIM_AT_ONCE[ours_only]
            lease = {"owner": "o", "expires_at": T0, "token": "t"}
            found = prepared_plan(explained, claim, {**values, **lease}, explain=True)
            assert "ix_closedloop_cases_next_timer_at" in found, found
            assert "SCAN closedloop_cases" not in found, found


def test_the_facet_tally_learns_whether_the_store_holds_one_workflow_from_an_index(
    explained: Connection,
) -> None:
    # The tally counts every workflow's cases together: it answers an engine's facets
    # while the least and the greatest stored workflow name are the engine's own, read
    # from the two ends of the workflow index in the tally's own statement.
    where = Reader(WORKFLOW, None).criteria(DISPATCHER)  # type: ignore[arg-type]
    assert where.workflow == WORKFLOW.name
    assert tally.answers(where)
    query = select(*tally._WORKFLOWS)
    found = "\n".join(str(row[-1]) for row in explained.execute(query).all())
    assert "ix_closedloop_cases_workflow" in found, found
    if explained.dialect.name == "sqlite":
        assert "SCAN closedloop_cases\n" not in found + "\n", found
    else:
        assert "Seq Scan" not in found, found


@pytest.mark.parametrize("order", ["oldest", "newest"])
def test_a_text_search_reads_its_span_along_the_report_time_index(
    explained: Connection, order: str
) -> None:
    # A text search in report-time order finds the edge of a span from that index
    # alone, then the span's matches along the same index (on PostgreSQL possibly
    # joined with the text index): never every match of the text, sorted.
    dialect = explained.dialect.name
    where = CaseFilter.of(text="井盖 1")
    after = {"after_at": T0, "after_row": 1}
    edge = queries._edge_query(order, "at", dialect)  # type: ignore[arg-type]
    found = prepared_plan(explained, edge, {**after, "skip": 9})
    assert "ix_closedloop_cases_reported_at_row_id" in found, found
    spanned = shown_query(where, order, "at", 51, dialect, contacts=True, spanned=True)  # type: ignore[arg-type]
    bound = {**after, "edge_at": T0 + 9 * DAY, "edge_row": 10, "span_low": 1, "span_high": 10}
    found = prepared_plan(explained, spanned, bound)
    assert "ix_closedloop_cases_reported_at_row_id" in found, found
    if dialect == "sqlite":
        assert "case_text" in found, found
        assert "SCAN closedloop_cases" not in found, found
    else:
        assert "Seq Scan" not in found, found


def prepared_plan(
    connection: Connection, query: Any, values: dict[str, Any], *, explain: bool = False
) -> str:
    """The plan of ``query`` run as the store runs it: prepared, with ``values``
    (``explain``: EXPLAIN written here, for a statement the connection does not
    explain on its own, such as an UPDATE)."""
    engine = connection.engine.execution_options(**connection.get_execution_options())
    statement = Prepared(query, engine)
    if explain:
        prefix = "EXPLAIN QUERY PLAN " if connection.dialect.name == "sqlite" else "EXPLAIN "
        found = connection.exec_driver_sql(prefix + statement.sql, statement.parameters(values))
        return "\n".join(str(row[-1]) for row in found.all())
    found = statement.run(connection, values).all()
    return "\n".join(str(row[-1]) for row in found)


def test_a_text_search_counts_its_matches_through_the_text_index(explained: Connection) -> None:
    # Before any span, a text search on SQLite counts the text's matches up to a bound,
    # through the FTS5 table alone: a rare text is then read through it at once.
    if explained.dialect.name != "sqlite":
        pytest.skip("PostgreSQL walks the spans without counting first")
    found = "\n".join(str(row[-1]) for row in explained.execute(queries._few_query("井盖 1", 816)))
    assert "VIRTUAL TABLE INDEX" in found, found
    assert "case_text" in found, found
    assert "closedloop_cases " not in found, found


def test_the_events_of_a_window_read_the_index_on_their_instant(explained: Connection) -> None:
    # The Open311 updates feed reads the events recorded in its window, page by page,
    # as a range of the index on (at, case_id, seq): never every case's trail.
    window = {"start": T0, "before": T0 + DAY, "limit": 1000}
    after = {"after_at": T0, "after_case": "c1", "after_seq": 1}
    ours = {"workflow": "standard"}
    for query, values in (
        (sql.EVENTS_BETWEEN, window),
        (sql.EVENTS_BETWEEN_AFTER, window | after),
        (sql.EVENTS_OF_WORKFLOW_BETWEEN, window | ours),
        (sql.EVENTS_OF_WORKFLOW_BETWEEN_AFTER, window | after | ours),
    ):
        found = prepared_plan(explained, query, values)
        assert "ix_closedloop_case_events_at" in found, found
