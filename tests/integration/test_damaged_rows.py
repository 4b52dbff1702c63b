"""A stored row that was edited into something unreadable is reported, named, typed.

``verify`` reports it as a problem naming the event or case; ``history`` and ``get``
raise ``DamagedRecord`` (a ``StoreError``) naming the row, and ``closedloop case show``
prints that as its one error line. Never a ``ValueError`` or a pydantic error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from closedloop import Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.adapters.sqlalchemy.schema import case_events, cases
from closedloop.errors import DamagedRecord, StoreError
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER
from tests.conftest import new_schema, postgres_url
from tests.integration.cli_runs import assert_one_line_error, run


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SQLStore:
    if request.param == "sqlite":
        return SQLStore(f"sqlite:///{tmp_path / 'damaged.db'}")
    return SQLStore(postgres_url(), schema=new_schema())


def classified(store: SQLStore) -> tuple[Engine, str]:
    engine = Engine(workflows.standard(), store=store, clock=ManualClock())
    case = engine.report(CITIZEN, description="Water main leaking", location={"area": "310101"})
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    return engine, case.id


def test_a_malformed_event_row_is_a_verify_problem_naming_the_event(store: SQLStore) -> None:
    engine, case_id = classified(store)
    with store.engine.begin() as conn:
        conn.execute(
            update(case_events)
            .where(case_events.c.case_id == case_id, case_events.c.seq == 2)
            .values(payload=[1])
        )
    report = engine.verify(case_id)
    assert not report.ok
    assert report.problems == (
        f"the stored audit event 2 of case {case_id!r} cannot be read: "
        "payload: Input should be a valid dictionary",
    )
    with pytest.raises(DamagedRecord) as raised:
        engine.history(case_id)
    assert isinstance(raised.value, StoreError)
    assert (raised.value.record, raised.value.case_id) == (
        f"audit event 2 of case {case_id!r}",
        case_id,
    )
    store.close()


def test_a_malformed_case_row_is_a_typed_error_naming_the_case(store: SQLStore) -> None:
    engine, case_id = classified(store)
    with store.engine.begin() as conn:
        conn.execute(
            update(cases).where(cases.c.id == case_id).values(body={"id": case_id, "state": 3})
        )
    report = engine.verify(case_id)
    assert not report.ok
    assert report.problems[0].startswith(f"the stored case {case_id!r} cannot be read: ")
    for read in (lambda: engine.history(case_id), lambda: engine.get(case_id, viewer=DISPATCHER)):
        with pytest.raises(DamagedRecord) as raised:
            read()
        assert raised.value.record == f"case {case_id!r}"
    store.close()


def test_a_case_row_that_is_not_a_json_object_is_a_typed_error(store: SQLStore) -> None:
    engine, case_id = classified(store)
    with store.engine.begin() as conn:
        conn.execute(update(cases).where(cases.c.id == case_id).values(body=[case_id]))
    for read in (
        lambda: engine.get(case_id, viewer=DISPATCHER),
        lambda: engine.trigger(case_id, "cancel", by=CITIZEN),
    ):
        with pytest.raises(DamagedRecord) as raised:
            read()
        assert (raised.value.record, raised.value.case_id) == ("case row", None)
    store.close()


def test_case_show_names_the_damaged_row_in_one_error_line(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'damaged.db'}")
    _, case_id = classified(store)
    with store.engine.begin() as conn:
        conn.execute(
            update(case_events)
            .where(case_events.c.case_id == case_id, case_events.c.seq == 2)
            .values(payload=[1])
        )
    store.close()
    ran = run(tmp_path, "case", "show", case_id, "--db", "damaged.db")
    assert_one_line_error(ran, f"audit event 2 of case {case_id!r}", "payload")
