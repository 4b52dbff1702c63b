"""The counts a SQL store keeps as cases change: ``facets`` reads them, and after any
write they are what a scan of the cases counts; on PostgreSQL no writer waits for them."""

from __future__ import annotations

import importlib.util
import random
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, func, insert, select, update

from closedloop import Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore, tally
from closedloop.adapters.sqlalchemy.schema import (
    case_anchors,
    case_events,
    case_tally,
    case_tally_changes,
    cases,
    idempotency_keys,
    reporter_contacts,
)
from closedloop.engine.case_query import FACETS, CaseFilter
from closedloop.testing import ManualClock, invariants
from closedloop.testing.contract.base import T0, add, commit, deadline, revise
from tests.cast import CITIZEN, DISPATCHER, OTHER_CITIZEN, SUPERVISOR
from tests.conftest import Backend, postgres_url

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
UNITS = ("water", "roads", None)
STATES = ("reported", "assigned", "in_progress", "closed")
WARNINGS = ("none", "yellow", "red", None)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    backend = Backend(request.param, tmp_path)
    yield backend.fresh()  # type: ignore[misc]
    backend.close()


def scanned(store: SQLStore, where: CaseFilter, by: str) -> dict[str | None, int]:
    """The ``GROUP BY`` over the cases that counted before the tally."""
    query = select(cases.c[by], func.count()).group_by(cases.c[by])
    if where.states is not None:
        query = query.where(cases.c.state.in_(where.states))
    with store.engine.connect() as connection:
        return dict(connection.execute(query).all())


def assert_counts_agree(store: SQLStore) -> None:
    for where in (CaseFilter(), CaseFilter.of(state=("assigned", "closed"))):
        for by in FACETS:
            assert store.facet_counts(where, by) == scanned(store, where, by), (where, by)


def removed(store: SQLStore, case_id: str) -> None:
    """Delete a case's rows, as a host's own clean-up would."""
    with store.engine.begin() as connection:
        for table in (case_events, reporter_contacts, case_anchors, idempotency_keys):
            connection.execute(delete(table).where(table.c.case_id == case_id))
        connection.execute(delete(cases).where(cases.c.id == case_id))


def test_the_tally_counts_what_a_scan_counts_after_any_writes(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tally, "FOLD_AT", 4)  # PostgreSQL: fold between the steps
    rng = random.Random(2026)
    held = {}
    for step in range(40):
        roll = rng.random()
        if len(held) < 3 or roll < 0.3:
            case_id = f"c{step}"
            held[case_id] = add(store, case_id, lead_unit=rng.choice(UNITS))
        elif roll < 0.85:
            case_id = rng.choice(sorted(held))
            case, head = held[case_id]
            warning = rng.choice(WARNINGS)
            clock = None if warning is None else deadline(T0 + timedelta(days=1), warning=warning)
            changed = revise(
                case, head, state=rng.choice(STATES), lead_unit=rng.choice(UNITS), deadline=clock
            )
            commit(store, lambda tx, c=changed, v=case.version: tx.update_case(c[0], v, c[1]))
            held[case_id] = changed
        else:
            removed(store, held.pop(rng.choice(sorted(held)))[0].id)
        if step % 5 == 4:
            assert_counts_agree(store)
    assert_counts_agree(store)
    invariants.check_facets(store)


def test_reports_transitions_merges_and_erasure_keep_the_counts(store: SQLStore) -> None:
    clock = ManualClock()
    engine = Engine(workflows.standard(), store=store, clock=clock)
    first = engine.report(CITIZEN, description="Pipe burst", contact={"phone": "13800000000"})
    again = engine.report(OTHER_CITIZEN, description="Pipe burst again")
    engine.trigger(first.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(first.id, "dispatch", by=DISPATCHER, unit="water")
    engine.trigger(again.id, "merge", by=DISPATCHER, duplicate_of=first.id)
    clock.advance(timedelta(days=30))
    engine.tick()  # the handling clock warns, then breaches
    engine.erase_subject(OTHER_CITIZEN.id, by=SUPERVISOR, force=True)
    assert engine.facets(DISPATCHER, by="state") == {"assigned": 1, "merged": 1}
    assert_counts_agree(store)


def test_the_bulk_loader_s_rows_are_counted(store: SQLStore) -> None:
    spec = importlib.util.spec_from_file_location("bulk", BENCHMARKS / "bulk.py")
    assert spec is not None
    assert spec.loader is not None
    bulk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bulk)
    add(store, "before", lead_unit="water")
    url = store.engine.url.render_as_string(hide_password=False)
    schema = store.engine.get_execution_options().get("schema_translate_map", {}).get(None)
    if schema is not None:  # the loader knows no schema: its connections look there first
        url += f"?options=-csearch_path%3D{schema}"
    bulk.fill(url, 120, start=T0, spread=timedelta(days=3))
    assert sum(store.facet_counts(CaseFilter(), "state").values()) == 121
    assert_counts_agree(store)


def test_a_broken_tally_is_caught_by_the_check(store: SQLStore) -> None:
    add(store, "a", lead_unit="water")
    with store.engine.begin() as connection:
        connection.execute(insert(case_tally).values(state="reported", n=1))
    with pytest.raises(AssertionError, match="per state"):
        invariants.check_facets(store)


@pytest.mark.external_service
def test_postgres_writers_moving_cases_out_of_one_state_never_wait_for_each_other() -> None:
    url = postgres_url()
    backend = Backend("postgres", Path())
    store: SQLStore = backend.fresh()  # type: ignore[assignment]
    held = {case_id: add(store, case_id) for case_id in ("a", "b", "c")}
    schema = store.engine.get_execution_options()["schema_translate_map"][None]
    # Waiting for a lock fails at once on this engine instead of blocking the test.
    impatient = create_engine(
        url.replace("postgresql://", "postgresql+psycopg://"),
        connect_args={"options": "-c lock_timeout=1000"},
    )
    opened = impatient.execution_options(schema_translate_map={None: schema}).connect()
    first = opened.begin()
    opened.execute(update(cases).where(cases.c.id == "a").values(state="assigned"))
    # Held open: a command moves another case out of the same state and commits, and a
    # reader folds the pending changes, both while the first transaction still runs.
    other = SQLStore(impatient, schema=schema)
    case, head = held["b"]
    moved = revise(case, head, state="assigned")
    commit(other, lambda tx: tx.update_case(moved[0], case.version, moved[1]))
    done: list[bool] = []
    folder = threading.Thread(target=lambda: done.append(_fold(other.engine)))
    folder.start()
    folder.join(timeout=10)
    assert done == [True]
    first.commit()
    opened.close()
    assert store.facet_counts(CaseFilter(), "state") == {"assigned": 2, "reported": 1}
    with other.engine.connect() as connection:
        pending = connection.execute(select(func.count()).select_from(case_tally_changes))
    assert pending.scalar() == 2  # the first transaction's -1/+1, appended after the fold
    assert_counts_agree(store)
    other.close()
    impatient.dispose()
    backend.close()


def _fold(engine: object) -> bool:
    with engine.begin() as connection:  # type: ignore[attr-defined]
        return tally.fold(connection)


@pytest.mark.external_service
def test_postgres_gives_back_the_pages_a_bulk_write_s_changes_took_once_folded() -> None:
    backend = Backend("postgres", Path())
    store: SQLStore = backend.fresh()  # type: ignore[assignment]
    add(store, "a", lead_unit="water")
    # A bulk write by hand (every case moved and moved back) appends far more changes
    # than the folds see between two counts: +1 and -1 for one combination, 30,000 times.
    pairs = select(
        func.cast("water", case_tally_changes.c.lead_unit.type),
        func.cast("reported", case_tally_changes.c.state.type),
        func.cast("none", case_tally_changes.c.warning_level.type),
        func.generate_series(1, 30_000) % 2 * 2 - 1,
    )
    with store.engine.begin() as connection:
        connection.execute(
            insert(case_tally_changes).from_select(
                ["lead_unit", "state", "warning_level", "n"], pairs
            )
        )
    assert pages_of_changes(store) > tally.SHRINK_ABOVE // 8192
    assert store.facet_counts(CaseFilter(), "state") == {"reported": 1}  # folds them
    assert pages_of_changes(store) == 0  # a count no longer reads a long empty table
    assert store.facet_counts(CaseFilter(), "lead_unit") == {"water": 1}
    backend.close()


def pages_of_changes(store: SQLStore) -> int:
    schema = store.engine.get_execution_options()["schema_translate_map"][None]
    table = f'"{schema}".{case_tally_changes.name}'
    with store.engine.connect() as connection:
        pages = connection.execute(select(func.pg_relation_size(table) / 8192)).scalar()
    return int(pages or 0)
