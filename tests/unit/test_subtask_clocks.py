"""Co-units' subtasks have clocks of their own: due, warnings, breach, escalation,
notifications to the co-unit, and their own on-time figure in metrics.

The case (Asia/Shanghai, the natural calendar) is reported, classified and dispatched
by the list on Tuesday 2026-02-10 09:00; entry E-0101 gives it to YS-WATER, with
YS-ROADS (within 4 hours), MJ-STREET (after YS-ROADS) and YS-GREEN (optional) as
co-units, and YS-URBAN supervising. YS-WATER signs for it at 09:20, so:

* the handling clock runs 5 days from the dispatch: due 02-15 09:00, warning at 70 %:
  02-13 21:00;
* YS-ROADS starts at 09:20: due 13:20, warning at 70 % of 4 hours (2 h 48 min): 12:08;
* YS-GREEN starts at 09:20 and is due with the case: 02-15 09:00, warning 02-13 21:00.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from closedloop import Case, Engine, workflows
from closedloop.engine.ports import DuePoint
from closedloop.metrics import Period, compute
from closedloop.testing import ManualClock
from tests.unit.test_dispatch import (
    CITIZEN,
    DISPATCHER,
    MINGJING,
    ROADS,
    WATER,
    classified,
    local,
    with_ordered_co_units,
)
from tests.unit.test_outbox import Inbox

if TYPE_CHECKING:
    from tests.conftest import Backend

WEEK = Period.week(date(2026, 2, 9), timezone="Asia/Shanghai")


def timers(engine: Engine, case_id: str) -> list[DuePoint]:
    with engine.store.transaction(read_only=True) as tx:
        case = tx.get_case(case_id)
    assert case is not None
    return engine.due_points(case)


def accepted(backend: Backend) -> tuple[Engine, ManualClock, Inbox, Case]:
    clock, inbox = ManualClock(local(2026, 2, 10, 9)), Inbox()
    engine = Engine(
        workflows.standard(),
        store=backend.fresh(),
        clock=clock,
        responsibilities=with_ordered_co_units(),
        notifier=inbox,
    )
    case = classified(engine, "01.01", "D1.S1.C1.G01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER)
    clock.set(local(2026, 2, 10, 9, 20))
    case = engine.trigger(case.id, "accept", by=WATER)
    engine.deliver()
    inbox.received.clear()
    return engine, clock, inbox, case


def test_each_subtask_starts_with_its_own_due_and_warning(backend: Backend) -> None:
    _, _, _, case = accepted(backend)
    assert case.deadline is not None
    assert case.deadline.due_at == local(2026, 2, 15, 9)
    tasks = {t.unit: t for t in case.subtasks}
    roads, street, green = tasks["YS-ROADS"], tasks["MJ-STREET"], tasks["YS-GREEN"]
    assert (roads.due_at, roads.warn_at, roads.clock) == (
        local(2026, 2, 10, 13, 20),
        local(2026, 2, 10, 12, 8),
        "handling",
    )
    assert (green.due_at, green.warn_at) == (local(2026, 2, 15, 9), local(2026, 2, 13, 21))
    assert (street.status, street.due_at) == ("waiting", None)  # it waits on YS-ROADS


def test_a_late_co_unit_warns_breaches_and_escalates_on_its_own(backend: Backend) -> None:
    engine, clock, inbox, case = accepted(backend)
    clock.set(local(2026, 2, 10, 13, 20))
    report = engine.tick()
    # YS-ROADS: warning 12:08, breach 13:20, first rung ("0 hours" after the breach,
    # supervised) 13:20. The case's own clock is far from due.
    assert report.applied == 3
    events = [e for e in engine.history(case.id) if e.actor == "system"]
    assert [(e.trigger, e.payload["unit"], e.payload["due_at"]) for e in events] == [  # UTC
        ("subtask_warn", "YS-ROADS", "2026-02-10T04:08:00+00:00"),
        ("subtask_breach", "YS-ROADS", "2026-02-10T05:20:00+00:00"),
        ("subtask_escalate", "YS-ROADS", "2026-02-10T05:20:00+00:00"),
    ]
    case = engine.get(case.id, viewer=DISPATCHER)
    roads = next(t for t in case.subtasks if t.unit == "YS-ROADS")
    assert (roads.warning, roads.escalation, roads.supervised) == ("red", 1, True)
    # The lead unit is not charged: its clock has no warning and the case no flag.
    assert case.deadline is not None
    assert (case.deadline.warning, case.deadline.escalation, case.supervised) == ("none", 0, False)
    # Next rung: 5 working days (natural) after the breach.
    (rung,) = [
        p
        for p in timers(engine, case.id)
        if p.kind == "subtask_escalation" and "/subtask/YS-ROADS/" in p.id
    ]
    assert (rung.level, rung.due_at) == (2, local(2026, 2, 15, 13, 20))

    engine.deliver()
    sent = sorted((n.event, n.recipient) for n in inbox.received)
    assert sent == [
        ("subtask_breach", "unit:YS-ROADS"),
        ("subtask_breach", "unit:YS-WATER"),
        ("subtask_escalate", "unit:YS-ROADS"),
        ("subtask_escalate", "unit:YS-URBAN"),  # the rung's supervising unit
        ("subtask_warn", "unit:YS-ROADS"),
    ]
    warning = next(n for n in inbox.received if n.event == "subtask_warn")
    assert "2026-02-10 05:20 (UTC)" in warning.body  # the subtask's due time (13:20 local)
    assert "YS-ROADS" in warning.subject

    # Done an hour late: the subtask's timers are gone, it is marked late, and MJ-STREET
    # starts with the case's clock (due 02-15 09:00).
    clock.set(local(2026, 2, 10, 14, 20))
    case = engine.trigger(case.id, "complete_subtask", by=ROADS, result="lane closed")
    tasks = {t.unit: t for t in case.subtasks}
    assert (tasks["YS-ROADS"].late, tasks["MJ-STREET"].due_at) == (True, local(2026, 2, 15, 9))
    assert [p for p in timers(engine, case.id) if "/subtask/YS-ROADS/" in p.id] == []
    assert engine.verify(case.id).ok


def test_each_co_unit_has_its_own_on_time_figure(backend: Backend) -> None:
    engine, clock, _, case = accepted(backend)
    clock.set(local(2026, 2, 10, 14, 20))
    engine.trigger(case.id, "complete_subtask", by=ROADS, result="lane closed")  # late
    clock.set(local(2026, 2, 11, 10))
    engine.trigger(case.id, "complete_subtask", by=MINGJING, result="lane reopened")  # on time
    engine.trigger(case.id, "submit_result", by=WATER, result="cover replaced")
    table = compute(engine.store, WEEK, by="unit")
    # Subtasks due this week: YS-ROADS (02-10 13:20, done 14:20: late), MJ-STREET
    # (02-15 09:00, done 02-11: on time), YS-GREEN (02-15 09:00, never done: late).
    figures = {
        row.group: (row.subtasks_due, row.subtasks_on_time, row.on_time_subtask_rate)
        for row in table.rows
    }
    assert figures["YS-ROADS"] == (1, 0, 0.0)
    assert figures["MJ-STREET"] == (1, 1, 1.0)
    assert figures["YS-GREEN"] == (1, 0, 0.0)
    assert figures["YS-WATER"] == (0, 0, None)  # the lead is not charged for its co-units
    total = table.total
    assert (total.subtasks_due, total.subtasks_on_time) == (3, 1)
    assert total.on_time_subtask_rate == 1 / 3
    assert compute(engine.store, WEEK, as_of=local(2026, 2, 10, 14)).total.subtasks_due == 1
    assert compute(engine.store, Period.week(date(2026, 2, 16))).total.subtasks_due == 0


def test_subtasks_of_a_withdrawn_case_are_not_charged(backend: Backend) -> None:
    engine, clock, _, case = accepted(backend)
    # Withdrawn at 10:00, before YS-ROADS (due 13:20) or YS-GREEN (02-15) were done:
    # their clocks end with the case, and neither co-unit is charged.
    clock.set(local(2026, 2, 10, 10))
    engine.trigger(case.id, "cancel", by=CITIZEN, reason="fixed it myself")
    assert timers(engine, case.id) == []
    total = compute(engine.store, WEEK).total
    assert (total.subtasks_due, total.subtasks_on_time) == (0, 0)
