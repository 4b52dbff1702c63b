"""The audit trail's bytes are part of the stored data: a fixed command sequence on the
standard workflow gives the same event changes and hashes, release after release."""

from __future__ import annotations

import hashlib
from itertools import count

from closedloop import Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.audit import canonical_json
from closedloop.engine.definition import Workflow
from closedloop.testing import ManualClock
from tests.unit.test_dispatch import (
    CITIZEN,
    DISPATCHER,
    MINGJING,
    ROADS,
    WATER,
    local,
    member,
    with_ordered_co_units,
)

SUPERVISOR = member("sun.li")
PINNED_FROM_DISPATCH = "ce7946b4ce7daacd4305ef9bfb139c43128146d39da4bd26a496092a9159c0ff"
"""Moved once on purpose: the sign-for clock records the handling clock running beside
it from the dispatch (``beside``); trails written before still verify."""
PINNED = "2861ec5f4040f2ef8e766f2a405db38f413a217dbc7a45665aa964477881ab2b"
"""Moved once on purpose: co-units' subtasks record their clocks (due, warning, clock)."""


def handling_from_accept() -> Workflow:
    """The standard workflow with the handling clock counted from the sign-for, as
    every release before ``starts`` counted it."""
    data = workflows.standard().model_dump(by_alias=True, exclude_defaults=True)
    for clock in data["clocks"]:
        if clock["name"] == "handling":
            clock["starts"] = "accept"
    return Workflow.from_dict(data)


def trail_digest(workflow: Workflow) -> tuple[str, int]:
    numbers = count(1)
    clock = ManualClock(local(2026, 2, 10, 9))
    engine = Engine(
        workflow,
        store=InMemoryStore(),
        clock=clock,
        responsibilities=with_ordered_co_units(),
        id_factory=lambda: f"case-{next(numbers)}",
    )
    shared = engine.report(CITIZEN, description="cover missing", location={"area": "D1.S1.C1.G01"})
    engine.trigger(shared.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(shared.id, "dispatch", by=DISPATCHER)
    clock.advance(minutes=20)
    engine.trigger(shared.id, "accept", by=WATER)
    clock.advance(hours=1)
    engine.trigger(
        shared.id, "request_extension", by=WATER, duration="1 working day", reason="parts"
    )
    engine.trigger(shared.id, "approve_extension", by=DISPATCHER, reason="fine")
    engine.trigger(shared.id, "request_info", by=WATER, question="which side of the road?")
    clock.advance(hours=2)
    engine.trigger(shared.id, "provide_info", by=CITIZEN, info="the north side")
    engine.trigger(shared.id, "request_suspension", by=WATER, reason="road works")
    engine.trigger(shared.id, "approve_suspension", by=SUPERVISOR, reason="agreed")
    clock.advance(hours=30)
    engine.trigger(shared.id, "resume", by=SUPERVISOR, reason="works over")
    clock.advance(hours=5)
    engine.trigger(shared.id, "complete_subtask", by=ROADS, result="lane closed")
    engine.trigger(shared.id, "complete_subtask", by=MINGJING, result="lane reopened")
    engine.trigger(shared.id, "submit_result", by=WATER, result="cover replaced")

    moved = engine.report(CITIZEN, description="cover loose", location={"area": "D1.S1.C1.G01"})
    engine.trigger(moved.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(moved.id, "dispatch", by=DISPATCHER)
    engine.trigger(moved.id, "return", by=WATER, reason_code="wrong_function", evidence="no")
    engine.trigger(moved.id, "redispatch", by=DISPATCHER, unit="MJ-STREET", reason="street")

    digest = hashlib.sha256()
    events = 0
    for case_id in (shared.id, moved.id):
        assert engine.verify(case_id).ok
        for event in engine.history(case_id):
            digest.update(canonical_json(event.changes))
            digest.update(event.hash.encode())
            events += 1
    return digest.hexdigest(), events


def test_a_fixed_command_sequence_gives_the_same_audit_bytes() -> None:
    assert trail_digest(handling_from_accept()) == (PINNED, 19)


def test_the_standard_workflow_with_handling_from_the_dispatch_is_pinned_too() -> None:
    assert trail_digest(workflows.standard()) == (PINNED_FROM_DISPATCH, 19)
