"""Several engines ticking one store give the outcome of one engine ticking alone.

120 cases whose warnings, breaches and escalations are all due; four processes each run
``engine.tick(start + 60 days, batch=5)`` at once. Every case must end with the same
events in the same order, and the same notifications, as on a copy of the store that
one engine ticked alone: no warning lost, no timer of a case applied out of due order.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
from sqlalchemy import select

from closedloop import Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.adapters.sqlalchemy.schema import outbox
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER
from tests.conftest import new_schema, postgres_url

SPAWN = multiprocessing.get_context("forkserver")
SPAWN.set_forkserver_preload(["closedloop.adapters.sqlalchemy", "closedloop.engine.service"])
START = datetime(2026, 3, 2, 8, tzinfo=UTC)
AT = START + timedelta(days=60)
CASES = 120

Trail = dict[str, list[tuple[str, str, object]]]


def fill(url: str, schema: str | None) -> None:
    """Report the cases, one every 7 minutes, with the same ids on every store, and
    dispatch each to the water company, so that its clock's timers notify a unit."""
    clock = ManualClock(START)
    ids = count()
    store = SQLStore(url, schema=schema)
    engine = Engine(
        workflows.standard(), store=store, clock=clock, id_factory=lambda: f"c{next(ids):03}"
    )
    for _ in range(CASES):
        case = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
        engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02")
        engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
        clock.advance(minutes=7)
    store.close()


def ticker(url: str, schema: str | None, start: float) -> int:
    """One engine process: tick once at ``AT`` in batches of 5; how many it applied."""
    store = SQLStore(url, schema=schema)
    engine = Engine(workflows.standard(), store=store, clock=ManualClock(AT))
    time.sleep(max(0.0, start - time.time()))  # start together, to collide
    applied = engine.tick(AT, batch=5).applied
    store.close()
    return applied


def outcome(url: str, schema: str | None) -> tuple[Trail, Counter[tuple[object, ...]]]:
    """Each case's system events in order, and every notification written."""
    store = SQLStore(url, schema=schema)
    engine = Engine(workflows.standard(), store=store, clock=ManualClock(AT))
    trails = {
        case_id: [
            (e.trigger, e.to_state, e.payload.get("due_at"))
            for e in engine.history(case_id)
            if e.actor == "system"
        ]
        for case_id in store.case_ids()
    }
    with store.engine.connect() as connection:
        rows = connection.execute(select(outbox.c.case_id, outbox.c.event, outbox.c.recipient))
        messages = Counter(tuple(row) for row in rows)
    store.close()
    return trails, messages


def run_tickers(url: str, schema: str | None, processes: int) -> int:
    start = time.time() + 1.5  # once every process is up
    with SPAWN.Pool(processes) as pool:
        return sum(pool.starmap(ticker, [(url, schema, start)] * processes))


def compare(alone: tuple[str, str | None], together: tuple[str, str | None]) -> None:
    fill(*alone)
    fill(*together)
    applied_alone = run_tickers(*alone, 1)
    applied_together = run_tickers(*together, 4)
    trails, messages = outcome(*alone)
    warnings = sum(1 for trail in trails.values() for e in trail if e[0] == "warn")
    assert warnings == CASES  # every case warned once: the comparison has something to see
    timer_messages = sum(n for (_, event, _), n in messages.items() if event != "dispatch")
    assert timer_messages >= 2 * CASES  # each case's warning and breach notified its unit
    assert outcome(*together) == (trails, messages)
    assert applied_together == applied_alone


def test_four_tickers_on_a_sqlite_file_give_the_events_of_one(tmp_path: Path) -> None:
    compare(
        (f"sqlite:///{tmp_path / 'alone.db'}", None), (f"sqlite:///{tmp_path / 'four.db'}", None)
    )


@pytest.mark.external_service
def test_four_tickers_on_postgresql_give_the_events_of_one() -> None:
    url = postgres_url()
    compare((url, new_schema()), (url, new_schema()))
