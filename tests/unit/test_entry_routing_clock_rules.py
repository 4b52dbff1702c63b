"""Routing as of the report, codes checked where they are entered, where handling starts.

Every expected value is worked out by hand from examples/district (the list replaces
street-lamp entry E-0301-A by E-0301-B on 2026-03-01, Asia/Shanghai) and from the
calendars in each test; each test runs on every store.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from closedloop import Actor, CategoryCatalog, Engine, InMemoryDirectory, ResponsibilityList
from closedloop.engine.calendars import HolidayTable, WorkingCalendar
from closedloop.engine.definition import Workflow
from closedloop.engine.ports import CaseStore
from closedloop.errors import InvalidWorkflow, UnknownCode, ValidationError
from closedloop.testing import ManualClock
from closedloop.workflows import standard

DISTRICT = Path(__file__).resolve().parents[2] / "examples" / "district"
SHANGHAI = ZoneInfo("Asia/Shanghai")
DIRECTORY = InMemoryDirectory.from_yaml(DISTRICT / "directory.yaml")
CATALOG = CategoryCatalog.from_yaml(DISTRICT / "categories.yaml")
DUTIES = ResponsibilityList.from_yaml(
    DISTRICT / "duties.yaml", directory=DIRECTORY, categories=CATALOG
)
CITIZEN = Actor("citizen-9")


def member(actor_id: str) -> Actor:
    actor = DIRECTORY.actor(actor_id)
    assert actor is not None
    return actor


DISPATCHER = member("zhou.min")
WATER = member("jiang.tao")  # YS-WATER


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def workflow_with(**changes: object) -> Workflow:
    data = standard().model_dump(by_alias=True, exclude_defaults=True)
    data.update(changes)
    return Workflow.from_dict(data)


def engine_on(store: CaseStore, at: datetime, workflow: Workflow | None = None) -> Engine:
    return Engine(
        workflow or standard(), store=store, clock=ManualClock(at), responsibilities=DUTIES
    )


# -- 1. the list in force when the case was reported routes it ----------------------------


def reported_before_midnight_dispatched_after(engine: Engine) -> tuple[str, str]:
    clock = engine._clock
    assert isinstance(clock, ManualClock)
    case = engine.report(CITIZEN, description="lamp out", location={"area": "D1.S2.C4.G08"})
    engine.trigger(case.id, "classify", by=DISPATCHER, category="03.01")
    clock.set(local(2026, 3, 1, 0, 5))
    dispatched = engine.trigger(case.id, "dispatch", by=DISPATCHER)
    assert dispatched.routing is not None
    return str(dispatched.lead_unit), str(dispatched.routing.explanation)


def test_a_report_before_the_replacement_goes_to_the_old_entry(store: CaseStore) -> None:
    engine = engine_on(store, local(2026, 2, 28, 23, 59))
    unit, explanation = reported_before_midnight_dispatched_after(engine)
    assert unit == "YS-ROADS"
    assert "Entry E-0301-A decides" in explanation
    assert "(list 2026.1)" in explanation
    assert "2026-02-28 23:59" in explanation


def test_route_at_dispatch_asks_the_list_in_force_at_the_dispatch(store: CaseStore) -> None:
    engine = engine_on(store, local(2026, 2, 28, 23, 59), workflow_with(route_at="dispatch"))
    unit, explanation = reported_before_midnight_dispatched_after(engine)
    assert unit == "YS-LIGHT"
    assert "Entry E-0301-B decides" in explanation
    assert "(list 2026.1)" in explanation


def test_route_at_is_report_or_dispatch() -> None:
    assert standard().route_at == "report"
    with pytest.raises(InvalidWorkflow, match="route_at"):
        workflow_with(route_at="classify")


# -- 8. category and area are checked where they are entered ----------------------------


def test_an_unknown_area_is_refused_at_the_report(store: CaseStore) -> None:
    engine = engine_on(store, local(2026, 2, 10, 9))
    with pytest.raises(UnknownCode) as caught:
        engine.report(CITIZEN, description="x", location={"area": "D1.S1.C1.G1"}, category="0101")
    assert caught.value.fields == ("category", "location.area")
    assert caught.value.closest["location.area"][0] == "D1.S1.C1.G01"
    assert caught.value.closest["category"][0] == "01.01"
    assert isinstance(caught.value, ValidationError)


def test_an_unknown_category_is_refused_at_classify(store: CaseStore) -> None:
    engine = engine_on(store, local(2026, 2, 10, 9))
    case = engine.report(CITIZEN, description="x", location={"area": "D1.S1.C1.G01"})
    with pytest.raises(UnknownCode) as caught:
        engine.trigger(case.id, "classify", by=DISPATCHER, category="01.09")
    assert caught.value.fields == ("category",)
    assert caught.value.closest["category"] == ("01.01", "01.02", "01.03")
    assert engine.get(case.id, viewer=DISPATCHER).state == "reported"
    assert len(engine.history(case.id)) == 1
    classified = engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    assert classified.category == "01.01"


def test_without_a_catalogue_and_directory_any_code_is_taken(store: CaseStore) -> None:
    engine = Engine(standard(), store=store, clock=ManualClock(local(2026, 2, 10, 9)))
    case = engine.report(CITIZEN, description="x", location={"area": "Z9"}, category="99")
    assert engine.trigger(case.id, "classify", by=DISPATCHER, category="98").category == "98"


# -- 9. where the handling clock starts -------------------------------------------------

# Whole working days, Monday to Friday; 2026-01-01 (Thursday) is a holiday.
CALENDAR = WorkingCalendar(
    "plain",
    timezone="Asia/Shanghai",
    days=HolidayTable(name="plain", years=(2026,), holidays=(date(2026, 1, 1),)),
)


def handling_due(store: CaseStore, workflow: Workflow) -> tuple[datetime, datetime]:
    clock = ManualClock(local(2026, 1, 9, 16))  # Friday 16:00: dispatched
    engine = Engine(workflow, store=store, clock=clock, calendar=CALENDAR, responsibilities=DUTIES)
    case = engine.report(CITIZEN, description="cover", location={"area": "D1.S1.C1.G01"})
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    assigned = engine.trigger(case.id, "dispatch", by=DISPATCHER)
    assert assigned.deadline is not None
    clock.set(local(2026, 1, 12, 9))  # Monday 09:00: signed for
    accepted = engine.trigger(case.id, "accept", by=WATER)
    assert accepted.deadline is not None
    assert accepted.deadline.clock == "handling"
    return assigned.deadline.due_at, accepted.deadline.due_at


def test_handling_counts_from_the_dispatch_by_default(store: CaseStore) -> None:
    sign_for_due, handling = handling_due(store, standard())
    # 4 working hours from Friday 16:00 on whole days: Friday 20:00.
    assert sign_for_due == local(2026, 1, 9, 20).astimezone(UTC)
    # 5 working days after Friday 01-09: Mon 12 .. Fri 16, due at the end of Friday.
    assert handling == local(2026, 1, 17, 0).astimezone(UTC)


def test_handling_can_count_from_the_sign_for(store: CaseStore) -> None:
    data = standard().model_dump(by_alias=True, exclude_defaults=True)
    for clock in data["clocks"]:
        if clock["name"] == "handling":
            clock["starts"] = "accept"
    _, handling = handling_due(store, Workflow.from_dict(data))
    # 5 working days after Monday 01-12: Tue 13 .. Mon 19, due at the end of Monday.
    assert handling == local(2026, 1, 20, 0).astimezone(UTC)


def test_a_clock_starts_on_a_declared_transition() -> None:
    data = standard().model_dump(by_alias=True, exclude_defaults=True)
    data["clocks"][0]["starts"] = "teleport"
    with pytest.raises(InvalidWorkflow, match="starts: unknown transition 'teleport'"):
        Workflow.from_dict(data)
