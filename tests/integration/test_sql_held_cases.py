"""A SQLite store answers an inbox from the cases it built from the page's rows before,
by row and version: asked again, after another store object (another process, as far
as this one knows) changed cases, and next to a store that reads every row afresh, the
pages are the same, case for case and cursor for cursor; an erasure drops them."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closedloop import Actor, Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore, rows
from closedloop.engine.case_query import CasePage
from closedloop.engine.model import ReporterContact
from closedloop.testing import ManualClock
from closedloop.testing.contract.base import T0, add, commit, deadline, read, revise

WORKFLOW = workflows.standard()
HOUR = timedelta(hours=1)
UNITS = ("water", "roads")
PEOPLE = ("citizen-1", "clerk")
OPEN = ("reported", "assigned", "in_progress", "awaiting_confirmation")

cases = st.lists(
    st.fixed_dictionaries(
        {
            "state": st.sampled_from(OPEN),
            "lead_unit": st.sampled_from(UNITS),
            "reporter_id": st.sampled_from(PEOPLE),
            "warning": st.sampled_from(("none", "yellow", "red")),
        }
    ),
    min_size=1,
    max_size=12,
)
changes = st.lists(
    st.tuples(st.integers(0, 11), st.sampled_from(OPEN), st.sampled_from(UNITS)), max_size=4
)
VIEWERS = (
    Actor("clerk", units=frozenset({"water"})),
    Actor("citizen-1", units=frozenset({"roads"})),
    Actor("citizen-1"),
)


@contextmanager
def sqlite_file() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{Path(folder) / 'cases.db'}"


def pages(url_or_store: str | SQLStore) -> list[CasePage]:
    """Every inbox page of each viewer, in pages of 1, 3 and all, on a store (a new one
    on ``url`` when given one, closed after)."""
    store = SQLStore(url_or_store) if isinstance(url_or_store, str) else url_or_store
    try:
        engine = Engine(WORKFLOW, store=store, clock=ManualClock(T0))
        found = []
        for viewer in VIEWERS:
            for limit in (1, 3, 1000):
                page = engine.inbox(viewer, limit=limit)
                found.append(page)
                while page.next_cursor is not None:
                    page = engine.inbox(viewer, limit=limit, after=page.next_cursor)
                    found.append(page)
        return found
    finally:
        if isinstance(url_or_store, str):
            store.close()


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases, changes)
def test_an_inbox_asked_again_is_the_one_its_rows_give(
    made: list[dict[str, Any]], changed: list[tuple[int, str, str]]
) -> None:
    with sqlite_file() as url:
        store = SQLStore(url)
        try:
            for n, row in enumerate(made):
                warning = row.pop("warning")
                add(store, f"case-{n}", workflow=WORKFLOW.name,
                    deadline=deadline(T0 + (n % 3) * HOUR, warning=warning),
                    **row)  # fmt: skip
            first = pages(store)
            assert pages(store) == first  # asked again: from the held cases
            assert pages(url) == first  # a store that holds none reads every row
            other = SQLStore(url)  # writes this store does not see
            try:
                for index, state, unit in changed:
                    case_id = f"case-{index % len(made)}"
                    stored = read(other, lambda tx, c=case_id: tx.get_case(c))
                    head = read(other, lambda tx, c=case_id: tx.get_events(c))[-1]
                    new, event = revise(stored, head, state=state, lead_unit=unit)
                    write = lambda tx, n=new, v=stored.version, e=event: tx.update_case(n, v, e)  # noqa: E731
                    commit(other, write)
            finally:
                other.close()
            after = pages(store)
            assert after == pages(url)
            assert pages(store) == after
        finally:
            store.close()


def test_an_erasure_drops_the_held_cases_and_their_contact_data() -> None:
    with sqlite_file() as url:
        store = SQLStore(url)
        try:
            add(store, "case-1", workflow=WORKFLOW.name, state="assigned", lead_unit="water",
                reporter_id="citizen-1", deadline=deadline(T0))  # fmt: skip
            clerk = Actor("clerk", units=frozenset({"water"}))
            engine = Engine(WORKFLOW, store=store, clock=ManualClock(T0))
            (case,) = engine.inbox(clerk).cases
            assert case.contact == ReporterContact(name="Li Lei", phone="13800000000")
            held = rows.built_cases.by_row(store.engine, [(1, 1)])
            assert held[0] is not None
            assert held[0][1] == case.contact
            store.finish_erasures()
            assert rows.built_cases.by_row(store.engine, [(1, 1)]) == [None]
            assert engine.inbox(clerk).cases == (case,)  # read from its row again
        finally:
            store.close()
