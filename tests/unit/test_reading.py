"""The read side through the engine: inboxes, finds, counts and facets, as a viewer sees them."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from closedloop import Actor, Case, Engine, ValidationError, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.ports import CaseStore
from closedloop.errors import NaiveDatetime, StoreError
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER, OTHER_CITIZEN, STREET, WATER

PHONE = "13812345678"
ROADS = Actor("roads-1", units={"roads"})
ROADS_CITIZEN = Actor("citizen-5")


def report(engine: Engine, by: Actor = CITIZEN, **kwargs: Any) -> Case:
    fields: dict[str, Any] = {
        "description": "井盖缺失 manhole cover missing",
        "location": {"address": "南京路 9 号", "area": "D1.S1.C1.G01"},
        "contact": {"name": "李雷", "phone": PHONE},
    }
    return engine.report(by, **{**fields, **kwargs})


def dispatch(engine: Engine, case: Case, unit: str, **kwargs: Any) -> Case:
    case = engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    return engine.trigger(case.id, "dispatch", by=DISPATCHER, unit=unit, **kwargs)


def ids(page: Any) -> list[str]:
    return [case.id for case in page.cases]


@pytest.fixture
def town(engine: Engine, clock: ManualClock) -> dict[str, Case]:
    """Four cases: one with the dispatcher, two sent to water (one accepted), one to roads."""
    cases = {"fresh": report(engine, description="路灯不亮 street light out")}
    clock.advance(hours=1)
    cases["water"] = dispatch(engine, report(engine), "water", co_units=["street_s1"])
    clock.advance(hours=1)
    accepted = dispatch(engine, report(engine, by=OTHER_CITIZEN), "water")
    cases["working"] = engine.trigger(accepted.id, "accept", by=WATER)
    clock.advance(hours=1)
    cases["roads"] = dispatch(engine, report(engine, location={"area": "D2.S1"}), "roads")
    return cases


def test_an_inbox_holds_what_waits_on_the_actor_most_urgent_first(
    engine: Engine, town: dict[str, Case]
) -> None:
    assert ids(engine.inbox(WATER)) == [town["water"].id, town["working"].id]
    assert ids(engine.inbox(ROADS)) == [town["roads"].id]
    assert ids(engine.inbox(DISPATCHER)) == [town["fresh"].id]
    assert ids(engine.inbox(STREET)) == []  # a co-unit owns no step of the standard loop
    assert ids(engine.inbox(CITIZEN)) == []


def test_find_shows_only_cases_the_viewer_may_see_and_masks_contacts(
    engine: Engine, town: dict[str, Case]
) -> None:
    assert ids(engine.find(WATER)) == [town["water"].id, town["working"].id]
    assert ids(engine.find(STREET)) == [town["water"].id]
    assert ids(engine.find(OTHER_CITIZEN)) == [town["working"].id]
    assert len(ids(engine.find(DISPATCHER))) == 4
    # The lead unit is entitled to the reporter's contact data; a co-unit sees it masked.
    for viewer, full in ((WATER, True), (STREET, False)):
        shown = engine.find(viewer).cases
        assert all(c.contact is not None and (c.contact.phone == PHONE) == full for c in shown)
        assert [c.contact for c in shown] == [
            engine.get(c.id, viewer=viewer).contact for c in shown
        ]
    assert {c.contact.phone for c in engine.find(DISPATCHER).cases if c.contact} == {PHONE}


def test_criteria_orders_counts_and_facets(engine: Engine, town: dict[str, Case]) -> None:
    assert ids(engine.find(DISPATCHER, area="D2")) == [town["roads"].id]
    assert ids(engine.find(DISPATCHER, co_unit="street_s1")) == [town["water"].id]
    assert ids(engine.find(DISPATCHER, text="路灯")) == [town["fresh"].id]
    assert ids(engine.find(DISPATCHER, reporter=OTHER_CITIZEN.id)) == [town["working"].id]
    assert ids(engine.find(DISPATCHER, order="newest", limit=1)) == [town["roads"].id]
    assert engine.count(DISPATCHER, area="D1") == 3
    assert engine.count(WATER, area="D1") == 2
    assert engine.facets(DISPATCHER, by="state") == {"reported": 1, "assigned": 2, "in_progress": 1}
    assert engine.facets(WATER, by="lead_unit") == {"water": 2}


def test_cases_are_found_by_their_latest_change(
    engine: Engine, clock: ManualClock, town: dict[str, Case]
) -> None:
    since = clock.now()  # the roads case changed last, at this instant
    clock.advance(hours=1)
    engine.trigger(town["fresh"].id, "classify", by=DISPATCHER, category="01.01")
    changed = [town[k].id for k in ("water", "working", "roads", "fresh")]
    assert ids(engine.find(DISPATCHER, order="updated")) == changed
    assert ids(engine.find(DISPATCHER, updated_from=since, order="updated")) == changed[2:]
    assert ids(engine.find(DISPATCHER, updated_before=since)) == changed[:2]
    assert ids(engine.find(WATER, updated_from=since)) == []  # as the viewer may see
    assert engine.count(DISPATCHER, updated_from=since, area="D1") == 1
    with pytest.raises(NaiveDatetime):
        engine.find(DISPATCHER, updated_from=since.replace(tzinfo=None))


def test_states_and_units_may_come_as_any_collection(engine: Engine, town: dict[str, Case]) -> None:
    water = Actor("water-1", units=["water"])  # type: ignore[arg-type]
    expected = [town["water"].id, town["working"].id]
    for states in (["assigned", "in_progress"], {"assigned", "in_progress"}, ("assigned",)):
        found = ids(engine.find(DISPATCHER, state=states, waiting_on=water))
        assert found == expected[: len(states)]
    assert engine.count(DISPATCHER, state=["assigned"]) == 2
    with pytest.raises(ValidationError) as refused:
        engine.find(DISPATCHER, state=[1])  # type: ignore[list-item]
    assert refused.value.fields == ("states",)


def test_pages_follow_the_cursor(engine: Engine, town: dict[str, Case]) -> None:
    first = engine.find(DISPATCHER, limit=3)
    assert first.next_cursor is not None
    rest = engine.find(DISPATCHER, limit=3, after=first.next_cursor)
    assert ids(first) + ids(rest) == [town[k].id for k in ("fresh", "water", "working", "roads")]
    assert rest.next_cursor is None
    with pytest.raises(ValidationError):
        engine.find(DISPATCHER, order="urgent", after=first.next_cursor)


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000,  # nested past the interpreter's recursion limit
        '["oldest",' * 40 + "1" + "]" * 40,
        '["oldest","9999-12-31T23:59:59.999999-23:59",2]',  # past the last instant in UTC
        '["oldest","0001-01-01T00:00:00+00:01",2]',  # before the first
        '["oldest","2026-03-02T00:37:45+00:00",99999999999999999999999]',
        '["oldest","2026-03-02T00:37:45+00:00",-1]',
        '["oldest","2026-03-02T00:37:45+00:00",true]',
        '["oldest","2026-03-02T00:37:45+00:00",1.5]',
        '["oldest","2026-03-02T08:37:45+08:00",1]',  # not as a store writes it
        '["oldest",["2026-03-02T00:37:45+00:00"],1]',
        '["oldest",{"at":"2026-03-02T00:37:45+00:00"},1]',
        '["oldest"]',
        "",
    ],
)
def test_a_cursor_no_store_handed_out_is_refused_as_one(
    engine: Engine, town: dict[str, Case], text: str
) -> None:
    for order in ("oldest", "urgent"):
        with pytest.raises(ValidationError, match="is not a cursor returned by this store"):
            engine.find(DISPATCHER, order=order, after=_cursor(text.replace("oldest", order)))
    with pytest.raises(ValidationError, match="is not a cursor returned by this store"):
        engine.find(DISPATCHER, after="A" * 4000)


def test_a_store_without_queries_is_named(store: CaseStore) -> None:
    class Bare:
        def transaction(self, *, read_only: bool = False) -> Any:
            return store.transaction(read_only=read_only)

    from closedloop import workflows

    engine = Engine(workflows.standard(), store=Bare())  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="answers no case queries"):
        engine.find(DISPATCHER)


def documented_keys(heading: str) -> set[str]:
    """The keys named in the first column of the table after ``heading`` in docs/reading.md."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "reading.md").read_text("utf-8")
    table = text.split(heading, 1)[1].split("\n\n")[1]
    keys: set[str] = set()
    for row in table.splitlines()[2:]:
        keys.update(re.findall(r"`([a-z_]+)`", row.split("|")[1]))
    return keys


def test_the_documented_json_shapes_are_the_models(engine: Engine, town: dict[str, Case]) -> None:
    case = engine.get(town["water"].id, viewer=WATER)
    assert documented_keys("**A case**") == set(case.model_dump(mode="json"))
    event = engine.history(case.id)[0]
    assert documented_keys("**An audit event**") == set(event.model_dump(mode="json"))
    page = engine.find(WATER, limit=1).to_json()
    assert set(page) == {"cases", "next_cursor"}
    assert page["cases"][0] == engine.find(WATER, limit=1).cases[0].model_dump(mode="json")


def test_a_duplicates_reporter_finds_the_master_and_duplicates_are_found_by_it(
    engine: Engine, town: dict[str, Case]
) -> None:
    master = town["water"]
    duplicate = report(engine, by=ROADS_CITIZEN)
    engine.trigger(duplicate.id, "merge", by=DISPATCHER, duplicate_of=master.id)
    assert ids(engine.find(DISPATCHER, merged_into=master.id)) == [duplicate.id]
    assert set(ids(engine.find(ROADS_CITIZEN))) == {duplicate.id, master.id}
    shown = next(c for c in engine.find(ROADS_CITIZEN).cases if c.id == master.id)
    assert shown == engine.get(master.id, viewer=ROADS_CITIZEN)
    assert (shown.reporter_id, shown.contact) == ("[hidden]", None)  # another citizen's
    assert [d.reporter for d in shown.duplicates] == [ROADS_CITIZEN.id]


def test_changing_a_case_found_or_got_changes_nothing_stored_or_shown_again(
    engine: Engine, town: dict[str, Case]
) -> None:
    # Each store hands the reader its own objects (the in-memory store its stored cases,
    # the SQL store the cases it keeps built); a host editing a page must not reach them.
    found = engine.find(DISPATCHER).cases
    for case in found:
        case.attributes["edited"] = {"by": "host"}
        case.counters["edited"] = 7
    again = engine.find(DISPATCHER).cases
    assert [c.id for c in again] == [c.id for c in found]
    for case in again:
        assert "edited" not in case.attributes
        assert "edited" not in case.counters
        stored = engine.get(case.id, viewer=DISPATCHER)
        assert "edited" not in stored.attributes
        assert "edited" not in stored.counters
    got = engine.get(town["water"].id, viewer=WATER)
    got.attributes["edited"] = True
    got.counters["edited"] = 1
    assert "edited" not in engine.get(town["water"].id, viewer=WATER).attributes
    # A command after the edits works from the stored case, not an edited copy.
    water = engine.trigger(town["water"].id, "accept", by=WATER)
    assert "edited" not in water.attributes
    assert water.counters.get("edited") is None


class StoreWithoutEventsByTime(InMemoryStore):
    """A host's store that does not read events by time (no ``events_between``)."""

    events_between = None  # type: ignore[assignment]


@pytest.mark.parametrize("store_type", [InMemoryStore, StoreWithoutEventsByTime])
def test_changes_are_the_events_of_a_window_of_the_cases_the_viewer_sees(
    store_type: type[InMemoryStore],
) -> None:
    clock = ManualClock()
    engine = Engine(workflows.standard(), store=store_type(), clock=clock)
    mine = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
    clock.advance(timedelta(minutes=5))
    start = clock.now()
    theirs = engine.report(OTHER_CITIZEN, description="Lamp out", location={"area": "310101"})
    clock.advance(timedelta(minutes=1))
    engine.trigger(mine.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    clock.advance(timedelta(minutes=5))
    before = clock.now()
    engine.trigger(mine.id, "dispatch", by=DISPATCHER, unit="water")  # after the window

    changes = list(engine.changes(DISPATCHER, start=start, before=before))
    assert [(e.case_id, e.trigger) for e in changes] == [
        (theirs.id, "report"),
        (mine.id, "classify"),
    ]
    own = list(engine.changes(CITIZEN, start=start, before=before))
    assert [(e.case_id, e.trigger) for e in own] == [(mine.id, "classify")]
    assert list(engine.changes(DISPATCHER, start=before, before=before)) == []
    with pytest.raises(NaiveDatetime):
        engine.changes(DISPATCHER, start=datetime(2026, 1, 1), before=before)
