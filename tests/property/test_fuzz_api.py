"""Junk arguments of every type to every public Engine method: only ``ClosedLoopError``.

A host passes through whatever its request parser produced. Whatever the type of each
argument, the engine answers with an error of closedloop's tree naming what is wrong
(never ``TypeError``, ``AttributeError``, ``OverflowError`` or ``UnicodeEncodeError``
from deeper down), and a refused call writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closedloop import ClosedLoopError, Engine, ValidationError, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.engine.ports import CaseStore
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER, WATER

STANDARD = workflows.standard()

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.just(2**63),
    st.just(-(2**63) - 1),
    st.floats(),
    st.text(max_size=8),
    st.just("ab\udc80"),
    st.just("\x00"),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
    st.just(CITIZEN),
)


def snapshot(store: CaseStore) -> list[tuple[str, int, int]]:
    """Every case with its version and number of events: what a write would change."""
    rows = []
    for case_id in store.case_ids():
        with store.transaction(read_only=True) as tx:
            case = tx.get_case(case_id)
            assert case is not None
            rows.append((case_id, case.version, len(tx.get_events(case_id))))
    return rows


def calls(engine: Engine, case_id: str, a: Any, b: Any) -> list[tuple[str, Any]]:
    return [
        ("trigger name", lambda: engine.trigger(case_id, a, by=DISPATCHER)),
        ("trigger case", lambda: engine.trigger(a, "classify", by=DISPATCHER, category="01.02")),
        ("trigger by", lambda: engine.trigger(case_id, "classify", by=a, category="01.02")),
        (
            "trigger version",
            lambda: engine.trigger(
                case_id, "classify", by=DISPATCHER, expected_version=a, category="01.02"
            ),
        ),
        (
            "trigger key",
            lambda: engine.trigger(
                case_id, "classify", by=DISPATCHER, idempotency_key=a, category=b
            ),
        ),
        ("report", lambda: engine.report(a, description=b)),
        ("report text", lambda: engine.report(CITIZEN, description=a, category=b)),
        ("get", lambda: engine.get(a, viewer=DISPATCHER)),
        ("get viewer", lambda: engine.get(case_id, viewer=a)),
        ("allowed", lambda: engine.allowed(a, b)),
        ("history", lambda: engine.history(a)),
        ("history viewer", lambda: engine.history(case_id, viewer=a)),
        ("verify", lambda: engine.verify(a)),
        ("tick", lambda: engine.tick(a)),
        ("tick batch", lambda: engine.tick(batch=a)),
        ("tick stop", lambda: engine.tick(should_stop=a)),
        ("deliver", lambda: engine.deliver(a, batch=b)),
        ("dead letters", lambda: engine.dead_letters(limit=a)),
        ("requeue", lambda: engine.requeue(a)),
        ("checkpoint", lambda: engine.checkpoint(limit=a)),
        ("export", lambda: engine.export_checkpoints(after=a, limit=b)),
    ]


@pytest.fixture(params=["memory", "sqlite"])
def fuzzed(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    store: CaseStore = (
        InMemoryStore() if request.param == "memory" else SQLStore(f"sqlite:///{tmp_path}/f.db")
    )
    engine = Engine(STANDARD, store=store, clock=ManualClock(), checkpoint_key=b"k" * 32)
    case = engine.report(CITIZEN, description="Water main leaking", location={"area": "310101"})
    yield engine, case.id
    store.close()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=junk, b=junk, pick=st.integers(min_value=0, max_value=20))
def test_junk_arguments_raise_only_closedloop_errors_and_write_nothing(
    fuzzed: Any, a: Any, b: Any, pick: int
) -> None:
    engine, case_id = fuzzed
    before = snapshot(engine.store)
    name, call = calls(engine, case_id, a, b)[pick]
    try:
        call()
    except ClosedLoopError:
        assert snapshot(engine.store) == before, name
    # An accepted call is one a host could mean (a report of valid text, a tick).


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda e, c: e.trigger(c, ["dispatch"], by=DISPATCHER), "name"),
        (lambda e, c: e.trigger(c, "classify", by=None, category="01.02"), "by"),
        (lambda e, c: e.history(2**63), "case_id"),
        (lambda e, c: e.verify(2**63), "case_id"),
        (lambda e, c: e.get("ab\udc80", viewer=WATER), "case_id"),
        (lambda e, c: e.trigger("ab\udc80", "accept", by=WATER), "case_id"),
        (lambda e, c: e.allowed(c, None), "actor"),
        (lambda e, c: e.tick(batch="10"), "batch"),
        (lambda e, c: e.dead_letters(limit=None), "limit"),
        (lambda e, c: e.requeue(["m-1"]), "message_id"),
    ],
)
def test_each_untyped_error_is_now_a_validation_error_naming_the_argument(
    fuzzed: Any, call: Any, argument: str
) -> None:
    engine, case_id = fuzzed
    before = snapshot(engine.store)
    with pytest.raises(ValidationError) as raised:
        call(engine, case_id)
    assert raised.value.fields == (argument,)
    assert snapshot(engine.store) == before
