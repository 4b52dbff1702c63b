"""The audit trail's bytes are part of the stored data: a fixed command sequence on the
standard workflow gives the same event changes and hashes, release after release."""

from __future__ import annotations

import hashlib
from itertools import count

from closedloop import Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.audit import canonical_json
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
PINNED = "2861ec5f4040f2ef8e766f2a405db38f413a217dbc7a45665aa964477881ab2b"
"""Moved once on purpose: co-units' subtasks record their clocks (due, warning, clock)."""


def trail_digest() -> tuple[str, int]:
    numbers = count(1)
    clock = ManualClock(local(2026, 2, 10, 9))
    engine = Engine(
        workflows.standard(),
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
    assert trail_digest() == (PINNED, 19)
