"""The dispatch protocol on the engine: routing by the list, returns, arbitration, co-units."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from closedloop import (
    Actor,
    Case,
    CaseNotFound,
    CategoryCatalog,
    Engine,
    GuardRejected,
    InMemoryDirectory,
    PermissionDenied,
    ResponsibilityList,
    TransitionNotAllowed,
    Workflow,
    workflows,
)
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.model import Misdirect, RoutingRecord
from closedloop.engine.ports import CaseStore
from closedloop.errors import UnknownCode
from closedloop.testing import ManualClock

DISTRICT = Path(__file__).resolve().parents[2] / "examples" / "district"
SHANGHAI = ZoneInfo("Asia/Shanghai")
DIRECTORY = InMemoryDirectory.from_yaml(DISTRICT / "directory.yaml")
CATALOG = CategoryCatalog.from_yaml(DISTRICT / "categories.yaml")
DUTIES = ResponsibilityList.from_yaml(
    DISTRICT / "duties.yaml", directory=DIRECTORY, categories=CATALOG
)


def member(actor_id: str) -> Actor:
    actor = DIRECTORY.actor(actor_id)
    assert actor is not None, actor_id
    return actor


CITIZEN = Actor("citizen-9")
DISPATCHER = member("zhou.min")
ARBITER = member("qian.hao")
WATER = member("jiang.tao")  # YS-WATER
ROADS = member("chu.wei")  # YS-ROADS
MINGJING = member("han.xue")  # MJ-STREET
URBAN = member("chen.jing")  # YS-URBAN


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def engine_at(
    when: datetime, duties: ResponsibilityList = DUTIES, store: CaseStore | None = None
) -> tuple[Engine, ManualClock]:
    clock = ManualClock(when)
    engine = Engine(
        workflows.standard(), store=store or InMemoryStore(), clock=clock, responsibilities=duties
    )
    return engine, clock


def routing_of(case: Case) -> RoutingRecord:
    assert case.routing is not None, case.id
    return case.routing


def classified(engine: Engine, category: str, area: str) -> Case:
    case = engine.report(CITIZEN, description="reported by phone", location={"area": area})
    return engine.trigger(case.id, "classify", by=DISPATCHER, category=category)


def dispatched(engine: Engine, category: str, area: str, **payload: Any) -> Case:
    case = classified(engine, category, area)
    return engine.trigger(case.id, "dispatch", by=DISPATCHER, **payload)


def test_same_grid_owner_for_the_cover_territory_for_the_garbage() -> None:
    engine, _ = engine_at(local(2026, 2, 10, 8, 15))
    cover = dispatched(engine, "01.01", "D1.S1.C1.G01")
    garbage = dispatched(engine, "02.01", "D1.S1.C1.G01")
    assert (cover.lead_unit, routing_of(cover).entry) == ("YS-WATER", "E-0101")
    assert (garbage.lead_unit, routing_of(garbage).entry) == ("MJ-STREET", "E-02-S1")
    assert "E-0101 decides" in str(routing_of(cover).explanation)
    event = engine.history(cover.id)[-1]
    assert event.changes["attributes"]["routing"]["list_version"] == DUTIES.version


def test_no_entry_goes_to_the_fallback_owner_flagged_as_a_gap() -> None:
    engine, _ = engine_at(local(2026, 2, 10, 9))
    uncovered = DUTIES.gaps(CATALOG.leaves(), DIRECTORY.areas("grid"))
    assert uncovered, "the district list leaves some combination to the fallback"
    category, area = uncovered[0]
    case = dispatched(engine, category, area)
    routing = routing_of(case)
    assert routing.gap is True
    assert case.lead_unit == DUTIES.resolve(category, area, local(2026, 2, 10, 9)).lead_unit
    assert str(routing.entry).startswith("FB-")


def test_the_list_in_force_on_the_day_decides_and_dispatched_cases_stay() -> None:
    engine, clock = engine_at(local(2026, 2, 28, 23, 59))
    before = dispatched(engine, "03.01", "D1.S2.C4.G08")
    clock.set(local(2026, 3, 1, 0, 0))
    after = dispatched(engine, "03.01", "D1.S2.C4.G08")
    assert (before.lead_unit, after.lead_unit) == ("YS-ROADS", "YS-LIGHT")
    assert engine.get(before.id, viewer=DISPATCHER).lead_unit == "YS-ROADS"


def test_a_new_list_version_does_not_move_dispatched_cases() -> None:
    store = InMemoryStore()
    engine, _ = engine_at(local(2026, 2, 10, 9), store=store)
    case = dispatched(engine, "01.01", "D1.S1.C1.G01")
    data = yaml.safe_load((DISTRICT / "duties.yaml").read_text(encoding="utf-8"))
    data["version"] = "2026.2"
    for entry in data["entries"]:
        if entry["id"] == "E-0101":
            entry["lead_unit"] = "YS-ROADS"
    newer = ResponsibilityList.from_dict(data, directory=DIRECTORY, categories=CATALOG)
    restarted, _ = engine_at(local(2026, 2, 11, 9), duties=newer, store=store)
    kept = restarted.get(case.id, viewer=DISPATCHER)
    assert (kept.lead_unit, routing_of(kept).list_version) == ("YS-WATER", "2026.1")
    fresh = dispatched(restarted, "01.01", "D1.S1.C1.G01")
    assert (fresh.lead_unit, routing_of(fresh).list_version) == ("YS-ROADS", "2026.2")


def test_overriding_the_list_needs_a_reason_and_is_recorded() -> None:
    engine, _ = engine_at(local(2026, 2, 10, 9))
    case = classified(engine, "01.01", "D1.S1.C1.G01")
    with pytest.raises(GuardRejected, match="overriding it with 'YS-ROADS' needs a reason"):
        engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="YS-ROADS")
    with pytest.raises(GuardRejected, match="unknown unit"):
        engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="NO-SUCH", reason="x")
    case = engine.trigger(
        case.id, "dispatch", by=DISPATCHER, unit="YS-ROADS", reason="the water company is on strike"
    )
    routing = routing_of(case)
    assert (case.lead_unit, routing.override, routing.lead_unit) == (
        "YS-ROADS",
        True,
        "YS-WATER",
    )
    assert routing.reason == "the water company is on strike"


def returned(engine: Engine) -> Case:
    case = dispatched(engine, "01.01", "D1.S1.C1.G01")
    return engine.trigger(
        case.id, "return", by=WATER, reason_code="wrong_function", evidence="not our cover"
    )


def test_an_approved_return_counts_against_the_dispatcher_not_the_unit() -> None:
    engine, _ = engine_at(local(2026, 2, 10, 9))
    case = returned(engine)
    case = engine.trigger(
        case.id, "redispatch", by=DISPATCHER, unit="MJ-STREET", reason="street owns it"
    )
    assert (case.state, case.lead_unit) == ("assigned", "MJ-STREET")
    assert case.misdirects == (
        Misdirect(dispatcher="zhou.min", unit="YS-WATER", at=case.updated_at),
    )
    assert "misdirects" not in case.attributes
    assert case.counter("misdirects") == 1
    with pytest.raises(CaseNotFound):  # the water company no longer holds the case
        engine.get(case.id, viewer=WATER)


def test_a_return_cannot_be_approved_back_to_the_same_unit() -> None:
    engine, _ = engine_at(local(2026, 2, 10, 9))
    case = returned(engine)
    with pytest.raises(GuardRejected, match="approve the return with another unit"):
        engine.trigger(case.id, "redispatch", by=DISPATCHER, unit="YS-WATER", reason="x")


def test_a_rejected_return_keeps_the_unit_and_its_running_clock() -> None:
    engine, clock = engine_at(local(2026, 2, 10, 9))
    case = dispatched(engine, "01.01", "D1.S1.C1.G01")
    assert case.deadline is not None
    sign_for = case.deadline.due_at
    clock.advance(minutes=20)
    case = engine.trigger(
        case.id, "return", by=WATER, reason_code="wrong_area", evidence="outside our network"
    )
    clock.advance(minutes=30)
    case = engine.trigger(case.id, "reject_return", by=DISPATCHER, reason="our map shows it is")
    assert (case.state, case.lead_unit) == ("assigned", "YS-WATER")
    assert case.deadline is not None
    assert case.deadline.due_at == sign_for


def test_two_returns_go_to_arbitration_and_the_decision_is_final() -> None:
    engine, _ = engine_at(local(2026, 2, 10, 9))
    case = returned(engine)
    case = engine.trigger(case.id, "reject_return", by=DISPATCHER, reason="it is yours")
    case = engine.trigger(
        case.id, "return", by=WATER, reason_code="ownership_unclear", evidence="no records"
    )
    assert (case.state, case.counter("returns")) == ("arbitration", 2)
    case = engine.trigger(
        case.id, "arbitrate", by=ARBITER, unit="YS-WATER", reason="asset register, p. 12"
    )
    assert (case.state, case.lead_unit) == ("assigned", "YS-WATER")
    before = len(engine.history(case.id))
    with pytest.raises(TransitionNotAllowed):
        engine.trigger(case.id, "return", by=WATER, reason_code="other", evidence="still not ours")
    assert len(engine.history(case.id)) == before
    assert engine.trigger(case.id, "accept", by=WATER).state == "in_progress"


def test_other_units_cannot_act_and_the_unit_cannot_close_its_own_case() -> None:
    engine, _ = engine_at(local(2026, 2, 10, 9))
    case = dispatched(engine, "05.03", "D1.S1.C1.G01")  # MJ-STREET leads, YS-URBAN co-handles
    assert (case.lead_unit, case.co_units) == ("MJ-STREET", ("YS-URBAN",))
    for trigger, payload in (
        ("accept", {}),
        ("return", {"reason_code": "other", "evidence": "x"}),
    ):
        with pytest.raises(PermissionDenied):
            engine.trigger(case.id, trigger, by=URBAN, **payload)
    with pytest.raises(CaseNotFound):  # an unrelated unit cannot even see it
        engine.trigger(case.id, "accept", by=WATER)
    case = engine.trigger(case.id, "accept", by=MINGJING)
    with pytest.raises(PermissionDenied):
        engine.trigger(case.id, "submit_result", by=URBAN, result="done")
    engine.trigger(case.id, "complete_subtask", by=URBAN, result="advertiser fined")
    engine.trigger(case.id, "submit_result", by=MINGJING, result="flyers removed")
    case = engine.trigger(case.id, "feedback", by=DISPATCHER)
    for unit_member in (MINGJING, URBAN):
        with pytest.raises(PermissionDenied):
            engine.trigger(case.id, "confirm", by=unit_member)
    assert engine.get(case.id, viewer=DISPATCHER).state == "awaiting_confirmation"


def with_ordered_co_units() -> ResponsibilityList:
    data = yaml.safe_load((DISTRICT / "duties.yaml").read_text(encoding="utf-8"))
    for entry in data["entries"]:
        if entry["id"] == "E-0101":
            entry["co_units"] = [
                {"unit": "YS-ROADS", "duty": "close the lane", "within": "4 hours"},
                {"unit": "MJ-STREET", "duty": "reopen the lane", "after": "YS-ROADS"},
                {"unit": "YS-GREEN", "duty": "replant the verge", "mandatory": False},
            ]
    return ResponsibilityList.from_dict(data, directory=DIRECTORY, categories=CATALOG)


def test_subtasks_gate_the_result_and_start_one_after_another() -> None:
    engine, clock = engine_at(local(2026, 2, 10, 9), duties=with_ordered_co_units())
    case = dispatched(engine, "01.01", "D1.S1.C1.G01")
    case = engine.trigger(case.id, "accept", by=WATER)
    status = {t.unit: t.status for t in case.subtasks}
    assert status == {"YS-ROADS": "active", "MJ-STREET": "waiting", "YS-GREEN": "active"}
    with pytest.raises(GuardRejected, match="YS-ROADS, MJ-STREET"):
        engine.trigger(case.id, "submit_result", by=WATER, result="cover replaced")
    with pytest.raises(GuardRejected, match="has an active subtask"):
        engine.trigger(case.id, "complete_subtask", by=MINGJING, result="too early")
    clock.advance(hours=5)  # one hour past the four allowed
    case = engine.trigger(case.id, "complete_subtask", by=ROADS, result="lane closed")
    tasks = {t.unit: t for t in case.subtasks}
    assert (tasks["YS-ROADS"].status, tasks["YS-ROADS"].late) == ("done", True)
    assert tasks["MJ-STREET"].status == "active"
    case = engine.trigger(case.id, "complete_subtask", by=MINGJING, result="lane reopened")
    assert {t.unit: t.late for t in case.subtasks if t.late is not None} == {
        "YS-ROADS": True,
        "MJ-STREET": False,
    }
    case = engine.trigger(case.id, "submit_result", by=WATER, result="cover replaced")
    assert case.state == "handled"  # the optional greening subtask does not block
    assert engine.verify(case.id).ok


def test_dispatch_without_a_list_needs_a_named_unit() -> None:
    engine = Engine(workflows.standard(), store=InMemoryStore(), clock=ManualClock())
    case = engine.report(CITIZEN, description="x", location={"area": "D1.S1"})
    case = engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    with pytest.raises(GuardRejected, match="no responsibility list is configured"):
        engine.trigger(case.id, "dispatch", by=DISPATCHER)
    case = engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="ANY-UNIT")
    assert case.lead_unit == "ANY-UNIT"


class CountingList:
    """The district list, counting how often it is asked to route."""

    def __init__(self) -> None:
        self.asked = 0

    def resolve(self, category: str, area: str, at: datetime) -> Any:
        self.asked += 1
        return DUTIES.resolve(category, area, at)

    def __getattr__(self, name: str) -> Any:
        return getattr(DUTIES, name)


def test_one_dispatch_asks_the_list_once() -> None:
    counting = CountingList()
    engine, _ = engine_at(local(2026, 2, 10, 9), duties=counting)  # type: ignore[arg-type]
    case = classified(engine, "01.01", "D1.S1.C1.G01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER)
    assert counting.asked == 1


def unchanged(engine: Engine, case: Case) -> tuple[Case, list[str]]:
    """The case as the dispatcher reads it, and the triggers of its history."""
    return engine.get(case.id, viewer=DISPATCHER), [e.trigger for e in engine.history(case.id)]


def in_arbitration(engine: Engine) -> Case:
    case = returned(engine)
    case = engine.trigger(case.id, "reject_return", by=DISPATCHER, reason="it is yours")
    case = engine.trigger(
        case.id, "return", by=WATER, reason_code="ownership_unclear", evidence="no records"
    )
    assert case.state == "arbitration"
    return case


def test_an_arbiter_cannot_decide_for_a_unit_the_directory_does_not_know() -> None:
    engine, _ = engine_at(local(2026, 2, 10, 9))
    case = in_arbitration(engine)
    before = unchanged(engine, case)
    with pytest.raises(
        GuardRejected, match=r"'known_units': unknown unit 'YS-WATR'; known: LH-STREET, MJ-STREET, "
    ):
        engine.trigger(case.id, "arbitrate", by=ARBITER, unit="YS-WATR", reason="typo")
    assert unchanged(engine, case) == before
    assert not before[0].final_assignment
    case = engine.trigger(case.id, "arbitrate", by=ARBITER, unit="YS-WATER", reason="register")
    assert (case.state, case.lead_unit, case.final_assignment) == ("assigned", "YS-WATER", True)


@pytest.mark.parametrize("trigger", ["dispatch", "redispatch", "arbitrate"])
def test_every_co_unit_named_must_be_known_to_the_directory(trigger: str) -> None:
    engine, _ = engine_at(local(2026, 2, 10, 9))
    if trigger == "dispatch":
        case = classified(engine, "01.01", "D1.S1.C1.G01")
        by, unit = DISPATCHER, "YS-ROADS"
    elif trigger == "redispatch":
        case, by, unit = returned(engine), DISPATCHER, "MJ-STREET"
    else:
        case, by, unit = in_arbitration(engine), ARBITER, "YS-WATER"
    before = unchanged(engine, case)
    named = {"unit": unit, "reason": "co-handled", "co_units": ["YS-URBAN", "YS-URBN", "NO-SUCH"]}
    with pytest.raises(
        GuardRejected, match=r"unknown co-units 'YS-URBN', 'NO-SUCH'; known: LH-STREET, MJ-STREET, "
    ):
        engine.trigger(case.id, trigger, by=by, **named)
    assert unchanged(engine, case) == before
    case = engine.trigger(case.id, trigger, by=by, **{**named, "co_units": ["YS-URBAN"]})
    assert (case.state, case.lead_unit, case.co_units) == ("assigned", unit, ("YS-URBAN",))


def test_a_dispatch_by_the_list_refuses_an_unknown_co_unit_too() -> None:
    engine, _ = engine_at(local(2026, 2, 10, 9))
    case = classified(engine, "01.01", "D1.S1.C1.G01")
    before = unchanged(engine, case)
    with pytest.raises(GuardRejected, match=r"'routable': unknown co-unit 'YS-URBN'; known: "):
        engine.trigger(case.id, "dispatch", by=DISPATCHER, co_units=["YS-URBN"])
    assert unchanged(engine, case) == before


def test_co_units_named_without_the_unit_are_refused_not_dropped() -> None:
    # Routed by the list, the list decides the co-units: naming some without the unit
    # would have them dropped without a word.
    engine, _ = engine_at(local(2026, 2, 10, 9))
    case = classified(engine, "01.01", "D1.S1.C1.G01")
    before = unchanged(engine, case)
    with pytest.raises(GuardRejected, match=r"'routable': co_units are named together with"):
        engine.trigger(case.id, "dispatch", by=DISPATCHER, co_units=["YS-ROADS"])
    assert unchanged(engine, case) == before
    named = engine.trigger(
        case.id, "dispatch", by=DISPATCHER, unit="YS-WATER", co_units=["YS-ROADS"]
    )
    assert (named.lead_unit, named.co_units) == ("YS-WATER", ("YS-ROADS",))


def test_an_sla_row_for_a_category_the_catalogue_does_not_list_is_refused() -> None:
    data = yaml.safe_load(workflows.standard_yaml())
    handling = next(clock for clock in data["clocks"] if clock["name"] == "handling")
    handling["sla"] = [
        {"category": "01.01", "duration": "1 working day"},
        {"category": "01.09", "duration": "2 working days"},
    ]
    misspelt = Workflow.from_dict(data)  # the workflow alone knows no catalogue
    with pytest.raises(UnknownCode) as refused:
        Engine(misspelt, store=InMemoryStore(), responsibilities=DUTIES)
    assert refused.value.fields == ("clocks[5] (handling).sla[1].category",)
    assert refused.value.closest == {
        "clocks[5] (handling).sla[1].category": ("01.01", "01.02", "01.03")
    }
    assert "unknown code '01.09'; closest: 01.01, 01.02, 01.03" in str(refused.value)
    Engine(misspelt, store=InMemoryStore())  # without a catalogue any code is taken
    handling["sla"][1]["category"] = "01.02"
    engine = Engine(Workflow.from_dict(data), store=InMemoryStore(), responsibilities=DUTIES)
    assert [row.category for row in engine.workflow.clock("handling").sla] == ["01.01", "01.02"]
