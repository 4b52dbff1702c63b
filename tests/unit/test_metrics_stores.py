"""Metrics read from every store agree: in memory, SQLite and PostgreSQL.

The same week (``run_week``) is driven through the Engine on an in-memory store and on
each backend; every table, the board and the daily series must come out equal. On
the SQL stores the streamed read of the audit table must agree with the port's
case-by-case read, so the pure path and the SQL path are held to one answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from closedloop.adapters.memory import InMemoryStore
from closedloop.metrics import (
    MetricTable,
    compute,
    daily,
    read_events,
    supervision_board,
)
from closedloop.metrics.tally import DIMENSIONS
from tests.unit.test_metrics_units import WEEK, run_week

if TYPE_CHECKING:
    from tests.conftest import Backend

MIDWEEK = datetime(2026, 1, 7, tzinfo=UTC)


def rounded(table: MetricTable) -> list[dict[str, Any]]:
    """The rows with floats rounded: sums over cases in another order may differ by an ulp."""
    return [
        {k: round(v, 9) if isinstance(v, float) else v for k, v in record.items()}
        for record in table.records()
    ]


def test_memory_and_the_backend_give_the_same_metrics(backend: Backend) -> None:
    memory = InMemoryStore()
    run_week(memory)
    stored = backend.fresh()
    run_week(stored)
    for by in (None, *DIMENSIONS):
        assert rounded(compute(stored, WEEK, by=by)) == rounded(compute(memory, WEEK, by=by)), by
    assert rounded(compute(stored, WEEK, as_of=MIDWEEK)) == rounded(
        compute(memory, WEEK, as_of=MIDWEEK)
    )
    assert supervision_board(stored, as_of=WEEK.end) == supervision_board(memory, as_of=WEEK.end)
    assert daily(stored, WEEK) == daily(memory, WEEK)


def test_the_streamed_sql_read_and_the_port_read_agree(backend: Backend) -> None:
    if backend.name == "memory":
        pytest.skip("the in-memory store has only the port's read")
    stored = backend.fresh()
    engine = run_week(stored)
    streamed = list(read_events(stored))
    by_port = list(read_events(stored, bulk=False, batch=3))
    assert sorted(case[0].case_id for case in streamed) == sorted(stored.case_ids())
    history = {case_id: engine.history(case_id) for case_id in stored.case_ids()}
    for events in (*streamed, *by_port):
        expected = history[events[0].case_id]
        assert [(e.at, e.trigger, e.to_state, e.payload, e.changes) for e in events] == [
            (e.at, e.trigger, e.to_state, e.payload, e.changes) for e in expected
        ]
    assert rounded(compute(streamed, WEEK, by="unit")) == rounded(compute(by_port, WEEK, by="unit"))


def test_the_port_read_gives_each_case_oldest_first_in_small_batches() -> None:
    store = InMemoryStore()
    engine = run_week(store)
    cases = list(read_events(store, batch=3))
    assert [events[0].case_id for events in cases] == list(store.case_ids())
    assert all(list(events) == engine.history(events[0].case_id) for events in cases)
    with pytest.raises(ValueError, match="batch"):
        next(read_events(store, batch=0))
