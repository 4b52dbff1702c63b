"""No clock is lost at year end: provisional due points, and recounting them once the
holiday data is supplied or corrected. Every due time is worked out by hand below, on
every store."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from closedloop import Engine, Workflow, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.cli.worker import stuck_lines
from closedloop.engine.calendars import (
    ChineseHolidays,
    HolidaySource,
    HolidayTable,
    NaturalCalendar,
    WorkingCalendar,
)
from closedloop.engine.deadlines import Timekeeper
from closedloop.engine.model import Deadline, to_stored
from closedloop.engine.ports import CaseStore
from closedloop.engine.ticking import TimerFailure
from closedloop.errors import UnknownName, ValidationError
from closedloop.metrics.facts import summarize
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER, WATER

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The State Council's 2027 schedule, as docs/calendars.md supplies it.
CN_2027: dict[str, Any] = {
    "name": "cn-2027",
    "years": {
        2027: {
            "holidays": ["2027-01-01", "2027-02-06..2027-02-13", "2027-10-01..2027-10-07"],
            "workdays": ["2027-02-14", "2027-10-09"],
        }
    },
}


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def handling_on_cn(duration: str) -> Workflow:
    data = yaml.safe_load(workflows.standard_yaml())
    for clock in data["clocks"]:
        if clock["name"] == "handling":
            clock.update({"duration": duration, "calendar": "cn", "sla": []})
    return Workflow.from_dict(data)


def cn(days: HolidaySource) -> WorkingCalendar:
    return WorkingCalendar("cn", timezone="Asia/Shanghai", days=days)


def signed_for(engine: Engine) -> str:
    case = engine.report(CITIZEN, description="井盖缺失 manhole cover missing")
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    return engine.trigger(case.id, "accept", by=WATER).id


def system_events(engine: Engine, case_id: str) -> list[tuple[str, Any]]:
    return [
        (e.trigger, e.payload.get("level")) for e in engine.history(case_id) if e.actor == "system"
    ]


def test_a_rung_in_an_uncovered_year_is_provisional_then_recounted(store: CaseStore) -> None:
    assert ChineseHolidays().last_year == 2026  # the installed tables end with 2026
    clock = ManualClock(local(2026, 12, 21, 10))  # Monday, dispatched and signed for
    engine = Engine(
        handling_on_cn("5 working days"),
        store=store,
        clock=clock,
        calendars={"cn": cn(ChineseHolidays())},
    )
    case_id = signed_for(engine)
    deadline = engine.get(case_id, viewer=DISPATCHER).deadline
    assert deadline is not None
    # Working days after 12-21: 22, 23, 24, 25, 28; due at the end of 12-28. The
    # warning at 70 %, 3.5 days: 22, 23, 24 and half of 25.
    assert (deadline.due_at, deadline.warn_at) == (local(2026, 12, 29), local(2026, 12, 25, 12))
    assert not deadline.provisional  # the next rung falls at the breach, in 2026

    clock.set(local(2026, 12, 29))
    assert engine.tick().applied == 3
    assert system_events(engine, case_id) == [("warn", None), ("breach", None), ("escalate", 1)]
    deadline = engine.get(case_id, viewer=DISPATCHER).deadline
    assert deadline is not None
    assert deadline.provisional
    assert deadline.provisional_reason == (
        "calendar 'cn' has no holiday data for 2027-01-01..2027-01-04: "
        "counted Monday to Friday until the data is supplied"
    )
    # Rung 2, 5 working days after the breach, is the 10th working day after 12-21:
    # 29, 30, 31 of 2026, then Friday 2027-01-01 and Monday 01-04 standing in.
    assert engine.next_due_at() == local(2027, 1, 5)

    corrected = cn(HolidayTable.from_dict(CN_2027).over(ChineseHolidays()))
    clock.set(local(2026, 12, 30, 9))
    assert engine.recompute_deadlines(since=date(2027, 1, 1), calendar=corrected) == (case_id,)
    deadline = engine.get(case_id, viewer=DISPATCHER).deadline
    assert deadline is not None
    assert not deadline.provisional
    assert (deadline.warning, deadline.escalation) == ("red", 1)
    # 2027-01-01 is a holiday: the 9th and 10th working days are 01-04 and 01-05.
    assert engine.next_due_at() == local(2027, 1, 6)
    event = engine.history(case_id)[-1]
    assert (event.trigger, event.actor) == ("deadline_recomputed", "system")
    assert event.payload["old_timers"] == {"escalation.2": "2027-01-04T16:00:00+00:00"}
    assert event.payload["new_timers"] == {"escalation.2": "2027-01-05T16:00:00+00:00"}
    assert engine.recompute_deadlines(since=date(2027, 1, 1), calendar="cn") == ()

    clock.set(local(2027, 1, 5))
    assert engine.tick().applied == 0
    clock.set(local(2027, 1, 6))
    assert engine.tick().applied == 1
    assert system_events(engine, case_id) == [
        ("warn", None),
        ("breach", None),
        ("escalate", 1),
        ("deadline_recomputed", None),
        ("escalate", 2),
    ]
    assert engine.verify(case_id).ok


def before_the_make_up_day(store: CaseStore, clock: ManualClock) -> Engine:
    """Two working days of handling on 2027's holidays as first announced: the Spring
    Festival, without the make-up working day of Sunday 02-14."""
    first = dict(CN_2027, years={2027: {"holidays": ["2027-02-06..2027-02-13"]}})
    return Engine(
        handling_on_cn("2 working days"),
        store=store,
        clock=clock,
        calendars={"cn": cn(HolidayTable.from_dict(first))},
    )


def test_a_make_up_day_announced_late_moves_the_due_time(store: CaseStore) -> None:
    clock = ManualClock(local(2027, 2, 10, 10))  # Wednesday, inside the Spring Festival
    engine = before_the_make_up_day(store, clock)
    case_id = signed_for(engine)
    deadline = engine.get(case_id, viewer=DISPATCHER).deadline
    assert deadline is not None
    # Working days after 02-10: 15 and 16; the warning at 1.4 days, 09:36 on the 16th.
    assert (deadline.due_at, deadline.warn_at) == (local(2027, 2, 17), local(2027, 2, 16, 9, 36))

    clock.set(local(2027, 2, 12, 9))
    corrected = cn(HolidayTable.from_dict(CN_2027))  # Sunday 02-14 is a working day
    assert engine.recompute_deadlines(since=date(2027, 2, 14), calendar=corrected) == (case_id,)
    deadline = engine.get(case_id, viewer=DISPATCHER).deadline
    assert deadline is not None
    # Now 14 and 15: due at the end of the 15th, the warning at 09:36 on the 15th.
    assert (deadline.due_at, deadline.warn_at) == (local(2027, 2, 16), local(2027, 2, 15, 9, 36))
    event = engine.history(case_id)[-1]
    assert (event.payload["old_due_at"], event.payload["new_due_at"]) == (
        "2027-02-16T16:00:00+00:00",
        "2027-02-15T16:00:00+00:00",
    )


def test_recomputing_takes_a_day_and_a_known_calendar() -> None:
    engine = Engine(workflows.standard(), store=InMemoryStore())
    with pytest.raises(ValidationError) as caught:
        engine.recompute_deadlines(since=datetime(2027, 1, 1, tzinfo=UTC))
    assert caught.value.fields == ("since",)
    with pytest.raises(UnknownName):
        engine.recompute_deadlines(since=date(2027, 1, 1), calendar="cn")


def test_a_correction_before_a_clock_leaves_it_alone(store: CaseStore) -> None:
    clock = ManualClock(local(2027, 3, 1, 10))
    engine = Engine(
        handling_on_cn("2 working days"),
        store=store,
        clock=clock,
        calendars={"cn": cn(HolidayTable.from_dict(CN_2027))},
    )
    case_id = signed_for(engine)
    corrected = cn(HolidayTable.from_dict(CN_2027))
    assert engine.recompute_deadlines(since=date(2027, 10, 1), calendar=corrected) == ()
    assert [e.trigger for e in engine.history(case_id)][-1] == "accept"


def test_a_timer_that_cannot_be_applied_is_logged_counted_and_listed(
    store: CaseStore, caplog: pytest.LogCaptureFixture
) -> None:
    data = yaml.safe_load(workflows.standard_yaml())
    for clock in data["clocks"]:
        if clock["name"] == "confirmation":
            clock["on_expiry"] = {"trigger": "close_unconfirmed", "after": "0 hours", "reason": "x"}
    for transition in data["transitions"]:
        if transition["name"] == "close_unconfirmed":
            transition["guards"] = ["has_lead_unit"]  # an answered case has none: refused
    clock = ManualClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    engine = Engine(Workflow.from_dict(data), store=store, clock=clock)
    case = engine.report(CITIZEN, description="when is the bulky waste collected?")
    engine.trigger(case.id, "answer", by=DISPATCHER, answer="Thursdays")
    # 3 working days of natural time: due 01-08 09:00, the expiry at the same instant.
    clock.set(datetime(2026, 1, 8, 9, tzinfo=UTC))
    with caplog.at_level(logging.WARNING, logger="closedloop.timers"):
        report = engine.tick()
    assert (report.applied, report.stale, report.deferred) == (2, 0, 1)
    assert report.deferred_by == {TimerFailure.REFUSED: 1}
    assert "not applied (refused, attempt 1)" in caplog.text
    (stuck,) = engine.stuck_timers()
    assert (stuck.point.case_id, stuck.point.kind, stuck.reason, stuck.attempts) == (
        case.id,
        "expiry",
        TimerFailure.REFUSED,
        1,
    )
    assert "the case has no lead unit" in stuck.detail
    clock.set(datetime(2026, 1, 8, 9, 10, tzinfo=UTC))  # the 5-minute lease has run out
    assert engine.tick().deferred_by == {TimerFailure.REFUSED: 1}
    assert [s.attempts for s in engine.stuck_timers()] == [2]
    assert stuck_lines(engine) == [
        f"timer stuck: case {case.id} expiry (refused, 2 attempts): "
        f"{' '.join(engine.stuck_timers()[0].detail.split())}"
    ]


def test_a_clock_stored_before_provisional_marks_still_loads_and_keeps_its_timers(
    store: CaseStore,
) -> None:
    workflow = handling_on_cn("5 working days")
    clock = ManualClock(local(2026, 12, 21, 10))
    calendars = {"cn": cn(ChineseHolidays())}
    engine = Engine(workflow, store=store, clock=clock, calendars=calendars)
    case_id = signed_for(engine)
    clock.set(local(2026, 12, 29))
    engine.tick()
    marked = engine.get(case_id, viewer=DISPATCHER)
    assert marked.deadline is not None
    # The same clock as an earlier release stored it: no provisional fields at all.
    stored = marked.deadline.model_dump(mode="json")
    del stored["provisional"], stored["provisional_reason"]
    old = Deadline.model_validate(stored)
    assert (old.provisional, old.provisional_reason) == (False, None)
    unmarked = to_stored(marked.model_copy(update={"deadline": old}))["deadline"]
    assert isinstance(unmarked, dict)
    assert {"provisional", "provisional_reason"}.isdisjoint(unmarked)
    keeper = Timekeeper(workflow, {**calendars, "natural": NaturalCalendar()}, "natural")
    (rung,) = keeper.due_points(marked.model_copy(update={"deadline": old}))
    assert (rung.kind, rung.level, rung.due_at) == ("escalation", 2, local(2027, 1, 5))
    assert keeper.touches(old, date(2027, 1, 1), "cn")
    assert engine.verify(case_id).ok


def test_a_case_on_a_calendar_the_engine_lacks_is_a_stuck_timer_with_its_reason(
    store: CaseStore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    office = WorkingCalendar("office", timezone="Asia/Shanghai", days=ChineseHolidays())
    reporting = Engine(workflows.standard(), store=store, clock=clock, calendar=office)
    case = reporting.report(CITIZEN, description="a manhole cover is missing")
    assert case.deadline is not None
    assert case.deadline.calendar == "office"
    due = case.deadline.warn_at
    clock.set(due)
    plain = Engine(workflows.standard(), store=store, clock=clock)  # knows no "office"
    with caplog.at_level(logging.WARNING, logger="closedloop.timers"):
        report = plain.tick()
    assert (report.applied, report.stale, report.deferred) == (0, 0, 1)
    assert report.deferred_by == {TimerFailure.UNFIT: 1}
    assert "not applied (unfit, attempt 1)" in caplog.text
    (stuck,) = plain.stuck_timers()
    assert (stuck.point.case_id, stuck.point.kind, stuck.point.due_at, stuck.reason) == (
        case.id,
        "warning",
        due,
        TimerFailure.UNFIT,
    )
    assert "unknown calendar 'office'" in stuck.detail
    (line,) = stuck_lines(plain)
    assert line.startswith(f"timer stuck: case {case.id} warning (unfit, 1 attempt): ")
    assert [e.trigger for e in plain.history(case.id)] == ["report"]  # nothing written
    clock.set(due + timedelta(minutes=10))
    assert reporting.tick().applied == 1  # the lease ran out; the engine with it applies it
    assert [e.trigger for e in reporting.history(case.id)] == ["report", "warn"]


def test_a_correction_moves_the_handling_clock_beside_a_case_not_yet_signed_for(
    store: CaseStore,
) -> None:
    # The handling clock runs from the dispatch, beside the sign-for clock (on the
    # engine's office hours): a case never signed for is due when it runs out, so a
    # corrected calendar must move it although the sign-for clock does not move.
    clock = ManualClock(local(2027, 2, 10, 10))  # Wednesday, inside the Spring Festival
    engine = before_the_make_up_day(store, clock)
    case = engine.report(CITIZEN, description="井盖缺失 manhole cover missing")
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    deadline = engine.get(case.id, viewer=DISPATCHER).deadline
    assert deadline is not None
    assert deadline.beside is not None
    assert (deadline.clock, deadline.beside.clock) == ("sign_for", "handling")
    sign_for_due = deadline.due_at
    # Working days after 02-10: 15 and 16, so due at the end of the 16th.
    assert deadline.beside.due_at == local(2027, 2, 17)

    clock.set(local(2027, 2, 12, 9))
    corrected = cn(HolidayTable.from_dict(CN_2027))  # Sunday 02-14 is a working day
    assert engine.recompute_deadlines(since=date(2027, 2, 14), calendar=corrected) == (case.id,)
    deadline = engine.get(case.id, viewer=DISPATCHER).deadline
    assert deadline is not None
    assert deadline.beside is not None
    assert deadline.due_at == sign_for_due
    assert deadline.beside.due_at == local(2027, 2, 16)  # now 14 and 15
    event = engine.history(case.id)[-1]
    assert (event.trigger, event.payload["old_due_at"], event.payload["new_due_at"]) == (
        "deadline_recomputed",
        sign_for_due.isoformat(),
        sign_for_due.isoformat(),
    )
    assert (event.payload["old_beside_due_at"], event.payload["new_beside_due_at"]) == (
        "2027-02-16T16:00:00+00:00",
        "2027-02-15T16:00:00+00:00",
    )
    facts = summarize(engine.history(case.id), as_of=local(2027, 2, 20))
    assert facts is not None
    assert facts.handling is not None
    assert facts.handling.due_at == local(2027, 2, 16)
    assert engine.recompute_deadlines(since=date(2027, 2, 14), calendar="cn") == ()
    assert engine.verify(case.id).ok
