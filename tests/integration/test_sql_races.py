"""Concurrent writers on the real databases: the version check decides, nothing else fails.

Worker processes are separate interpreters, as real engine processes would be, and open
their own ``SQLStore`` over the same database.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from closedloop import Case, ConcurrentModification, Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore, queries
from closedloop.engine.case_query import CaseFilter
from closedloop.testing import ManualClock
from closedloop.testing.contract.base import T0, add, new_case
from tests.cast import CITIZEN, DISPATCHER, WATER
from tests.conftest import new_schema, postgres_url

# Worker processes come from a fork server that imported closedloop once: each starts in
# a fraction of the time a fresh interpreter takes, and none inherits an open database.
SECOND, MINUTE = timedelta(seconds=1), timedelta(minutes=1)
SPAWN = multiprocessing.get_context("forkserver")
SPAWN.set_forkserver_preload(["closedloop.adapters.sqlalchemy", "closedloop.engine.service"])


def open_engine(url: str, schema: str | None) -> Engine:
    """An engine on its own store over the shared database."""
    return Engine(workflows.standard(), store=SQLStore(url, schema=schema), clock=ManualClock())


def assigned_case(engine: Engine) -> Case:
    """A case at version 3, assigned to the water unit: ``accept`` is its next step."""
    case = engine.report(CITIZEN, description="Water main leaking", location={"area": "310101"})
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    return engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")


def accepts(engine: Engine, case_id: str) -> int:
    return sum(1 for event in engine.history(case_id) if event.trigger == "accept")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """A URL and schema of an empty database, on each SQL backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'race.db'}", None
    return postgres_url(), new_schema()


def test_two_connections_at_version_3_have_one_winner_and_one_audit_event(
    database: tuple[str, str | None],
) -> None:
    first, second = open_engine(*database), open_engine(*database)
    case = assigned_case(first)
    loaded = [e.get(case.id, viewer=WATER) for e in (first, second)]
    assert [c.version for c in loaded] == [3, 3]
    start = threading.Barrier(2)

    def accept(engine: Engine) -> str:
        start.wait()
        try:
            engine.trigger(case.id, "accept", by=WATER, expected_version=3)
        except ConcurrentModification:
            return "conflict"
        return "accepted"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(accept, (first, second)))
    assert outcomes == ["accepted", "conflict"]
    assert accepts(first, case.id) == 1
    assert first.verify(case.id).ok
    for engine in (first, second):
        engine.store.close()  # type: ignore[attr-defined]


# -- PostgreSQL: 2 processes x 8 threads, 1,000 accepts over 100 cases ---------------------


def accept_worker(url: str, schema: str, case_ids: list[str], slots: list[int]) -> Counter[str]:
    """Fire ``accept`` at version 3 from 8 threads, one attempt per slot; count outcomes."""
    engine = open_engine(url, schema)

    def attempt(slot: int) -> str:
        try:
            engine.trigger(case_ids[slot % len(case_ids)], "accept", by=WATER, expected_version=3)
        except ConcurrentModification:
            return "lost"
        except Exception as exc:  # anything else is a failure of the store
            return f"error: {exc!r}"
        return "won"

    with ThreadPoolExecutor(8) as pool:
        outcomes = Counter(pool.map(attempt, slots))
    engine.store.close()  # type: ignore[attr-defined]
    return outcomes


@pytest.mark.external_service
def test_postgres_accept_race_has_one_winner_per_case() -> None:
    url, schema = postgres_url(), new_schema()
    engine = open_engine(url, schema)
    case_ids = [assigned_case(engine).id for _ in range(100)]
    attempts = list(range(1000))
    random.Random(5).shuffle(attempts)
    with SPAWN.Pool(2) as pool:
        results = pool.starmap(
            accept_worker,
            [(url, schema, case_ids, attempts[:500]), (url, schema, case_ids, attempts[500:])],
        )
    outcomes = sum(results, Counter())
    assert set(outcomes) <= {"won", "lost"}, outcomes
    assert outcomes["won"] == 100
    assert outcomes["won"] + outcomes["lost"] == 1000
    assert all(accepts(engine, case_id) == 1 for case_id in case_ids)
    engine.store.close()  # type: ignore[attr-defined]


# -- SQLite: 4 processes x 250 read-then-write transitions on one WAL file -------------


def cycle_worker(url: str, case_ids: list[str], seed: int) -> Counter[str]:
    """Read a case, then move it on at the version read: submit, or send back."""
    engine = open_engine(url, None)
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    for _ in range(250):
        case = engine.get(rng.choice(case_ids), viewer=DISPATCHER)
        try:
            if case.state == "in_progress":
                engine.trigger(
                    case.id,
                    "submit_result",
                    by=WATER,
                    expected_version=case.version,
                    result="Valve replaced",
                )
            else:
                engine.trigger(
                    case.id,
                    "send_back",
                    by=DISPATCHER,
                    expected_version=case.version,
                    reason="Photo missing",
                )
            outcomes["won"] += 1
        except ConcurrentModification:
            outcomes["lost"] += 1
        except Exception as exc:  # "database is locked" would land here
            outcomes[f"error: {exc!r}"] += 1
    engine.store.close()  # type: ignore[attr-defined]
    return outcomes


def test_sqlite_writers_in_four_processes_see_success_or_conflict(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = open_engine(url, None)
    case_ids = []
    for _ in range(20):
        case = assigned_case(engine)
        engine.trigger(case.id, "accept", by=WATER)
        case_ids.append(case.id)
    with SPAWN.Pool(4) as pool:
        results = pool.starmap(cycle_worker, [(url, case_ids, seed) for seed in range(4)])
    outcomes = sum(results, Counter())
    assert set(outcomes) <= {"won", "lost"}, outcomes
    assert outcomes["won"] + outcomes["lost"] == 1000
    assert outcomes["lost"] > 0  # the processes did overlap
    versions = [engine.get(case_id, viewer=DISPATCHER).version for case_id in case_ids]
    assert sum(v - 4 for v in versions) == outcomes["won"]
    assert all(engine.verify(case_id).ok for case_id in case_ids)
    engine.store.close()  # type: ignore[attr-defined]


def test_a_text_search_reads_its_page_from_one_snapshot_while_cases_are_added(
    database: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A text search reads its page span by span, in several statements. Two cases
    # committed together by another writer while the page is being read (one into the
    # span already read, one into the next) appear on it both or neither: the page is
    # the one a single statement would give, at one moment, never one case of them.
    monkeypatch.setattr(queries, "FIRST_SPAN", 1)
    monkeypatch.setattr(queries, "SMALLEST_SPAN", 4)
    monkeypatch.setattr(queries, "FEW", 1)
    url, schema = database
    reader, writer = SQLStore(url, schema=schema), SQLStore(url, schema=schema)
    for n in range(16):  # every third case holds the text
        add(reader, f"c{n:02}", at=T0 + n * MINUTE, description=f"{'manhole' * (n % 3 == 0)} {n}")
    edges: list[str] = []
    edge = {queries._pages.edge(reader.engine, "oldest", shape).sql for shape in (None, "at")}

    def between_spans(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement not in edge:  # a statement finding the edge of a span
            return
        edges.append(statement)
        if len(edges) == 2:  # the first span is read, the second is next
            with writer.transaction() as tx:
                for case_id, at in (("early", T0 + 90 * SECOND), ("later", T0 + 270 * SECOND)):
                    case, first = new_case(case_id, at=at, description="manhole, meanwhile")
                    tx.add_case(case, None, first)
                tx.commit()

    event.listen(reader.engine, "before_cursor_execute", between_spans)
    page = reader.select_cases(CaseFilter.of(text="manhole"), limit=3)
    event.remove(reader.engine, "before_cursor_execute", between_spans)
    assert len(edges) == 2  # the page took two spans
    assert [case.id for case in page.cases] == ["c00", "c03", "c06"]  # as it was read
    # The next pages go on from the cursor; both cases came before it, as a case
    # reported meanwhile with an earlier report time would for one statement.
    rest = reader.select_cases(CaseFilter.of(text="manhole"), after=page.next_cursor)
    assert [case.id for case in rest.cases] == ["c09", "c12", "c15"]
    everything = reader.select_cases(CaseFilter.of(text="manhole"))
    assert [case.id for case in everything.cases][:4] == ["c00", "early", "c03", "later"]
    reader.close()
    writer.close()
