"""Deadlines on cases: working-day clocks, warnings, extensions, pauses, the ladder, expiry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from closedloop import Case, Engine, GuardRejected, PermissionDenied, Workflow, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.engine.calendars import ChineseHolidays, WorkingCalendar
from closedloop.engine.ports import CaseStore
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER, SUPERVISOR, WATER

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def workflow_with(**clock_changes: dict[str, Any]) -> Workflow:
    """The standard workflow with some clocks changed, e.g. handling={"duration": ...}."""
    data = yaml.safe_load(workflows.standard_yaml())
    for clock in data["clocks"]:
        clock.update(clock_changes.get(clock["name"], {}))
    return Workflow.from_dict(data)


HANDLING_10 = {"duration": "10 working days", "calendar": "cn", "sla": []}


def engine_on(workflow: Workflow, clock: ManualClock, store: CaseStore | None = None) -> Engine:
    cn = WorkingCalendar("cn", timezone="Asia/Shanghai", days=ChineseHolidays())
    return Engine(workflow, store=store or InMemoryStore(), clock=clock, calendars={"cn": cn})


def accepted(engine: Engine, **classify: Any) -> Case:
    case = engine.report(CITIZEN, description="路面塌陷 road surface collapsed")
    case = engine.trigger(case.id, "classify", by=DISPATCHER, **{"category": "03.01", **classify})
    case = engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    return engine.trigger(case.id, "accept", by=WATER)


def system_events(engine: Engine, case_id: str) -> list[tuple[str, Any]]:
    return [
        (e.trigger, e.payload.get("level")) for e in engine.history(case_id) if e.actor == "system"
    ]


def test_yellow_at_seventy_percent_of_ten_working_days() -> None:
    clock = ManualClock(local(2026, 11, 2, 10))  # a Monday
    engine = engine_on(workflow_with(handling=HANDLING_10), clock)
    case = accepted(engine)
    assert case.deadline is not None
    assert case.deadline.due_at == local(2026, 11, 17)  # end of the 10th working day, 11-16
    assert case.deadline.warn_at == local(2026, 11, 12)  # end of the 7th, 11-11
    clock.set(local(2026, 11, 11, 23, 59))
    engine.tick()
    assert system_events(engine, case.id) == []
    clock.set(local(2026, 11, 12))
    assert engine.tick().applied == 1
    assert system_events(engine, case.id) == [("warn", None)]
    assert engine.get(case.id, viewer=DISPATCHER).deadline.warning == "yellow"  # type: ignore[union-attr]


def test_an_approved_extension_moves_yellow_and_red() -> None:
    clock = ManualClock(local(2026, 11, 2, 10))
    engine = engine_on(workflow_with(handling=HANDLING_10), clock)
    case = accepted(engine)
    clock.set(local(2026, 11, 12, 9))
    engine.tick()  # yellow fires at 11-12 00:00
    case = engine.trigger(
        case.id, "request_extension", by=WATER, duration="5 working days", reason="pipes ordered"
    )
    case = engine.trigger(case.id, "approve_extension", by=DISPATCHER)
    deadline = case.deadline
    assert deadline is not None
    assert [e.as_written() for e in deadline.extensions] == ["5 working days"]
    assert deadline.due_at == local(2026, 11, 24)  # 5 more working days: 17-20, 23
    assert deadline.warn_at == local(2026, 11, 17, 12)  # 70% of 15 days = 10.5 days
    assert deadline.warning == "none"  # the warning time moved past now
    clock.set(local(2026, 11, 17, 11, 59))
    engine.tick()
    assert system_events(engine, case.id) == [("warn", None)]
    clock.set(local(2026, 11, 24))
    engine.tick()
    assert system_events(engine, case.id) == [
        ("warn", None),
        ("warn", None),
        ("breach", None),
        ("escalate", 1),
    ]


def test_second_extension_needs_a_supervisor_and_late_requests_are_refused() -> None:
    clock = ManualClock(local(2026, 11, 2, 10))
    engine = engine_on(workflow_with(handling=HANDLING_10), clock)
    case = accepted(engine)
    ask = {"duration": "2 working days", "reason": "weather"}
    engine.trigger(case.id, "request_extension", by=WATER, **ask)
    engine.trigger(case.id, "approve_extension", by=DISPATCHER)
    case = engine.trigger(case.id, "request_extension", by=WATER, **ask)
    with pytest.raises(PermissionDenied) as denied:
        engine.trigger(case.id, "approve_extension", by=DISPATCHER)
    assert denied.value.roles == ("supervisor",)
    assert engine.get(case.id, viewer=DISPATCHER).version == case.version
    case = engine.trigger(case.id, "approve_extension", by=SUPERVISOR)
    assert case.counter("extensions") == 2
    assert case.deadline is not None
    clock.set(case.deadline.due_at + timedelta(minutes=1))
    with pytest.raises(GuardRejected) as late:
        engine.trigger(case.id, "request_extension", by=WATER, **ask)
    assert late.value.guard == "before_due"


def test_an_extension_in_another_unit_is_refused() -> None:
    clock = ManualClock(local(2026, 11, 2, 10))
    engine = engine_on(workflow_with(handling=HANDLING_10), clock)
    case = accepted(engine)
    with pytest.raises(GuardRejected, match="units differ"):
        engine.trigger(case.id, "request_extension", by=WATER, duration="3 hours", reason="x")


def test_an_extension_of_no_time_is_refused_and_counts_nothing() -> None:
    clock = ManualClock(local(2026, 11, 2, 10))
    engine = engine_on(workflow_with(handling=HANDLING_10), clock)
    case = accepted(engine)
    before = engine.get(case.id, viewer=DISPATCHER), len(engine.history(case.id))
    for nothing in ("0 working days", "0.0 working days"):
        with pytest.raises(GuardRejected) as refused:
            engine.trigger(case.id, "request_extension", by=WATER, duration=nothing, reason="x")
        assert refused.value.guard == "extension_fits"
        assert refused.value.reason == (
            f"an extension of {nothing!r} adds no time; ask for more than zero "
            "(the clock's limit is 10 working days)"
        )
    assert (engine.get(case.id, viewer=DISPATCHER), len(engine.history(case.id))) == before
    assert before[0].extension_request is None
    assert before[0].counter("extensions") == 0


def test_awaiting_information_moves_the_due_time_by_the_pause() -> None:
    clock = ManualClock(local(2026, 11, 2, 10))
    engine = engine_on(workflow_with(handling=HANDLING_10), clock)
    case = accepted(engine)
    assert case.deadline is not None
    before = case.deadline.due_at
    case = engine.trigger(case.id, "request_info", by=WATER, question="Which side of the road?")
    assert case.deadline is not None
    assert case.deadline.paused_at == clock.now()
    clock.set(local(2026, 11, 5, 10))  # three working days later
    case = engine.trigger(case.id, "provide_info", by=CITIZEN, info="North side")
    assert case.deadline is not None
    assert before == local(2026, 11, 17)
    assert case.deadline.due_at == local(2026, 11, 20)  # exactly three working days later
    assert case.deadline.paused_seconds == timedelta(days=3).total_seconds()


def test_no_timer_runs_while_paused() -> None:
    clock = ManualClock(local(2026, 11, 2, 10))
    engine = engine_on(workflow_with(handling=HANDLING_10), clock)
    case = accepted(engine)
    engine.trigger(case.id, "request_suspension", by=WATER, reason="road closed for works")
    engine.trigger(case.id, "approve_suspension", by=SUPERVISOR)
    clock.set(local(2026, 12, 20))
    assert engine.tick().applied == 0
    assert system_events(engine, case.id) == []


def test_engine_down_for_days_then_hourly_ticks_fire_each_point_once_in_order() -> None:
    clock = ManualClock(local(2026, 11, 2, 10))
    engine = engine_on(workflow_with(handling=HANDLING_10), clock)
    case = accepted(engine)
    due = local(2026, 11, 17)
    level_two = local(2026, 11, 24)  # breach + 5 working days: 17, 18, 19, 20, 23
    clock.set(local(2026, 11, 18, 10))  # first tick after the engine was down
    while clock.now() < local(2026, 11, 26):
        engine.tick()
        engine.tick()  # a tick that arrives twice changes nothing
        clock.advance(hours=1)
    fired = [e for e in engine.history(case.id) if e.actor == "system"]
    assert [(e.trigger, e.payload.get("level")) for e in fired] == [
        ("warn", None), ("breach", None), ("escalate", 1), ("escalate", 2),
    ]  # fmt: skip
    for event in fired:
        assert event.at >= datetime.fromisoformat(event.payload["due_at"])
    assert datetime.fromisoformat(fired[1].payload["due_at"]) == due
    assert datetime.fromisoformat(fired[3].payload["due_at"]) == level_two
    assert fired[3].at < level_two + timedelta(hours=1)
    final = engine.get(case.id, viewer=DISPATCHER)
    assert final.supervised
    assert final.deadline is not None
    assert final.deadline.escalation == 2
    assert engine.verify(case.id).ok


def test_auto_close_on_expiry_records_who_and_why() -> None:
    reason = "no answer within 3 working days of the feedback"
    workflow = workflow_with(
        confirmation={
            "on_expiry": {"trigger": "close_unconfirmed", "after": "0 hours", "reason": reason}
        }
    )
    clock = ManualClock(local(2026, 11, 2, 10))
    engine = engine_on(workflow, clock)
    case = accepted(engine)
    engine.trigger(case.id, "submit_result", by=WATER, result="Road patched")
    case = engine.trigger(case.id, "feedback", by=DISPATCHER)
    assert case.deadline is not None
    clock.set(case.deadline.due_at + timedelta(hours=1))
    engine.tick()
    closed = engine.get(case.id, viewer=DISPATCHER)
    last = engine.history(case.id)[-1]
    assert closed.state == "closed"
    assert closed.attributes["confirmed"] is False
    assert (last.trigger, last.actor, last.role, last.reason) == (
        "close_unconfirmed", "system", "system", reason,
    )  # fmt: skip
    assert closed.deadline is None


REMINDED = """
name: reminded
roles:
  - {name: dispatcher, kind: global, sees_all: true}
  - {name: system, kind: global, sees_all: true}
  - {name: reporter, kind: reporter}
clocks:
  - name: triage
    duration: "1 day"
    on_expiry: {trigger: remind, after: "0 hours", reason: "still waiting"}
states:
  - {name: reported, initial: true, owner: dispatcher, clock: triage}
  - {name: done, final: true}
transitions:
  - {name: remind, from: [reported], to: reported, roles: [system], fields: {reason: {type: text}}}
  - {name: finish, from: [reported], to: done, roles: [dispatcher]}
  - name: ask
    from: [reported]
    to: reported
    roles: [dispatcher]
    fields: {duration: {type: text}}
    sets: {extension: duration}
  - {name: grant, from: [reported], to: reported, roles: [dispatcher], extends_clock: extension}
"""


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_an_expiry_back_into_its_own_state_fires_once(store: str, tmp_path: Any) -> None:
    # The clock runs on through the reminder, so its expiry has happened: later ticks
    # find nothing, however long the case waits.
    clock = ManualClock(local(2026, 11, 2, 10))
    stored: CaseStore = (
        InMemoryStore() if store == "memory" else SQLStore(f"sqlite:///{tmp_path / 'c.db'}")
    )
    engine = engine_on(Workflow.from_dict(yaml.safe_load(REMINDED)), clock, stored)
    case = engine.report(CITIZEN, description="路灯不亮 street light out")
    for _ in range(3):
        clock.advance(timedelta(days=2))
        engine.tick()
    assert [e.trigger for e in engine.history(case.id)] == ["report", "warn", "breach", "remind"]
    assert engine.next_due_at() is None
    assert engine.verify(case.id).ok
    assert engine.trigger(case.id, "finish", by=DISPATCHER).state == "done"
    stored.close()


def test_an_extended_deadline_expires_anew_after_its_reminder() -> None:
    clock = ManualClock(local(2026, 11, 2, 10))
    engine = engine_on(Workflow.from_dict(yaml.safe_load(REMINDED)), clock)
    case = engine.report(CITIZEN, description="路灯不亮 street light out")
    clock.advance(timedelta(days=2))
    engine.tick()
    engine.trigger(case.id, "ask", by=DISPATCHER, duration="3 days")
    engine.trigger(case.id, "grant", by=DISPATCHER)
    clock.advance(timedelta(days=4))
    engine.tick()
    engine.tick()
    fired = [e.trigger for e in engine.history(case.id) if e.actor == "system"]
    assert fired == ["warn", "breach", "remind", "warn", "breach", "remind"]


def test_an_emergency_runs_in_natural_time_on_a_working_calendar() -> None:
    clock = ManualClock(local(2026, 11, 22, 23))  # a Sunday, 23:00
    engine = engine_on(workflow_with(handling={"calendar": "cn"}), clock)
    case = accepted(engine, urgency="emergency")
    assert case.deadline is not None
    assert (case.deadline.limit.as_written(), case.deadline.due_at) == (
        "2 hours",
        local(2026, 11, 23, 1),
    )


def test_a_due_time_beyond_the_holiday_data_is_provisional() -> None:
    assert ChineseHolidays().last_year == 2026  # the installed tables end with 2026
    clock = ManualClock(local(2026, 12, 28, 10))
    engine = engine_on(workflow_with(handling=HANDLING_10), clock)
    case = accepted(engine)
    assert case.state == "in_progress"
    deadline = case.deadline
    assert deadline is not None
    assert deadline.provisional
    # 12-29, 12-30, 12-31 from the tables, then Monday to Friday standing in:
    # 2027-01-01 and 01-04..01-08 and 01-11 make ten; due at the end of 01-11.
    assert deadline.due_at == local(2027, 1, 12)
    assert "no holiday data for 2027-01-01..2027-01-" in str(deadline.provisional_reason)
    event = engine.history(case.id)[-1]
    assert event.changes["deadline"]["provisional"] is True
    assert "no holiday data" in event.changes["deadline"]["provisional_reason"]


def test_final_cases_have_no_timers() -> None:
    clock = ManualClock(local(2026, 11, 2, 10))
    engine = engine_on(workflow_with(handling=HANDLING_10), clock)
    case = engine.report(CITIZEN, description="duplicate")
    case = engine.trigger(case.id, "reject", by=DISPATCHER, reason="not a public matter")
    assert case.deadline is None
    clock.set(local(2026, 12, 31))
    assert engine.tick().applied == 0
    assert engine.next_due_at() is None


def test_a_manual_clock_can_tick_the_engine_as_it_moves() -> None:
    clock = ManualClock(local(2026, 11, 2, 10))
    engine = engine_on(workflow_with(handling=HANDLING_10), clock)
    case = accepted(engine)
    clock.after_each_move(engine.tick)
    clock.set(local(2026, 11, 12, 1))
    assert system_events(engine, case.id) == [("warn", None)]
    clock.advance(days=6)
    assert system_events(engine, case.id) == [("warn", None), ("breach", None), ("escalate", 1)]
