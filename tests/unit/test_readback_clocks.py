"""A case whose new clock shares parts with the clock stored before reads back as it is
only when every part it does not share would: the shared parts are not checked again,
the others are, however deep in the clocks it resumes or runs beside they are."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from closedloop import Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.adapters.readback import reads_back
from closedloop.engine.durations import Duration
from closedloop.engine.model import Case, Deadline, replaced
from closedloop.testing import ManualClock

CITIZEN_REPORT = {"description": "Leak", "location": {"area": "310101"}}
ELSEWHERE = timezone(timedelta(hours=8))


def _dispatched() -> Case:
    """A stored case whose clock resumes nothing yet, and the one after a trigger."""
    from closedloop import Actor

    engine = Engine(workflows.standard(), store=InMemoryStore(), clock=ManualClock())
    dispatcher = Actor("disp-1", roles=frozenset({"dispatcher"}))
    case = engine.report(Actor("citizen-1"), **CITIZEN_REPORT)
    engine.trigger(case.id, "classify", by=dispatcher, category="01.02", urgency="normal")
    return engine.get(case.id, viewer=dispatcher)


def _with_clock(case: Case, clock: Deadline) -> Case:
    return replaced(case, {"deadline": clock, "version": case.version + 1})


def _left(clock: Deadline, update: dict[str, object]) -> Deadline:
    """A clock entered from ``clock``, resuming ``clock`` as it was but ``update``."""
    return replaced(clock, {"started_at": clock.due_at, "previous": replaced(clock, update)})


def test_a_new_clock_resuming_the_stored_one_as_it_is_reads_back() -> None:
    stored = _dispatched()
    assert stored.deadline is not None
    assert reads_back(_with_clock(stored, _left(stored.deadline, {"previous": None})), stored)


@pytest.mark.parametrize(
    "damage",
    [
        {"due_at": "elsewhere"},
        {"warn_at": "elsewhere"},
        {"limit": "computed"},
        {"paused_seconds": float("nan")},
        {"clock": 7},
    ],
)
def test_a_part_changed_in_the_clock_it_resumes_is_checked(damage: dict[str, str]) -> None:
    stored = _dispatched()
    clock = stored.deadline
    assert clock is not None
    update = {name: _damaged(clock, name, kind) for name, kind in damage.items()}
    assert not reads_back(_with_clock(stored, _left(clock, update)), stored)
    assert not reads_back(_with_clock(stored, replaced(clock, update)), stored)
    beside = replaced(clock, {"beside": replaced(clock, update)})
    assert not reads_back(_with_clock(stored, beside), stored)
    assert not reads_back(_with_clock(stored, _left(clock, update)), None)


def _damaged(clock: Deadline, name: str, kind: object) -> object:
    if kind == "elsewhere":
        return getattr(clock, name).astimezone(ELSEWHERE)
    if kind == "computed":
        return Duration.parse("1 days").scaled(1)
    return kind
