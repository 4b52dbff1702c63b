"""One store, two workflows: each engine handles the cases of its own workflow (its
ticks claim them, its queries select them, its commands and reads reach them), and
leaves the other's alone; on every store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from closedloop import Actor, Engine, Workflow, workflows
from closedloop.engine.ticking import TimerFailure
from closedloop.errors import CaseNotFound
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER
from tests.conftest import StoreFactory

PERMITS: dict[str, Any] = yaml.safe_load("""
name: permits
roles:
  - {name: clerk, kind: global, sees_all: true}
  - {name: applicant, kind: reporter}
clocks:
  - name: review
    duration: "1 hours"
    warn_at: 0.5
    escalation: [{after: "0 hours", supervise: true}]
states:
  - {name: submitted, initial: true, owner: clerk, clock: review}
  - {name: decided, final: true}
transitions:
  - name: decide
    from: [submitted]
    to: decided
    roles: [clerk]
    fields:
      outcome: {type: choice, choices: [granted, refused], required: true}
    sets: {outcome: outcome}
""")
CLERK = Actor("clerk-1", roles={"clerk"})
START = datetime(2026, 1, 5, 9, tzinfo=UTC)  # a Monday


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def engines(store_factory: StoreFactory, clock: ManualClock) -> tuple[Engine, Engine]:
    """The standard workflow and the permits workflow, each on a store of its own over
    one database (as two processes would have)."""
    standard = Engine(workflows.standard(), store=store_factory(), clock=clock)
    permits = Engine(Workflow.from_dict(PERMITS), store=store_factory(), clock=clock)
    return standard, permits


def triggers(engine: Engine, case_id: str) -> list[str]:
    return [event.trigger for event in engine.history(case_id)]


def test_each_engine_ticks_the_timers_of_its_own_workflow_only(
    engines: tuple[Engine, Engine], clock: ManualClock
) -> None:
    standard, permits = engines
    report = standard.report(CITIZEN, description="a manhole cover is missing")
    permit = permits.report(CITIZEN, description="a permit for a street stall")
    # review: warning at 09:30, due at 10:00; classify: 2 working hours, due at 11:00.
    assert permits.next_due_at() == START + timedelta(minutes=30)
    assert standard.next_due_at() == report.deadline.warn_at  # type: ignore[union-attr]
    clock.set(START + timedelta(hours=3))
    done = standard.tick()
    assert (done.applied, done.stale, done.deferred, done.deferred_by) == (2, 0, 0, {})
    assert triggers(standard, report.id) == ["report", "warn", "breach"]
    assert triggers(permits, permit.id) == ["report"]  # untouched, not leased
    done = permits.tick()
    assert (done.applied, done.stale, done.deferred, done.deferred_by) == (3, 0, 0, {})
    assert triggers(permits, permit.id) == ["report", "warn", "breach", "escalate"]
    assert triggers(standard, report.id) == ["report", "warn", "breach"]
    assert standard.stuck_timers() == []
    assert permits.stuck_timers() == []
    assert permits.next_due_at() is None
    assert (standard.tick().applied, permits.tick().applied) == (0, 0)


def test_each_engine_finds_counts_and_tallies_the_cases_of_its_own_workflow(
    engines: tuple[Engine, Engine],
) -> None:
    standard, permits = engines
    reports = [standard.report(CITIZEN, description=f"report {n}") for n in range(2)]
    permit = permits.report(CITIZEN, description="a permit for a street stall")
    assert [c.id for c in standard.find(DISPATCHER).cases] == [c.id for c in reports]
    assert [c.id for c in permits.find(CLERK).cases] == [permit.id]
    assert [c.id for c in standard.find(CITIZEN).cases] == [c.id for c in reports]
    assert [c.id for c in permits.find(CITIZEN).cases] == [permit.id]
    assert [c.id for c in permits.inbox(CLERK).cases] == [permit.id]
    assert (standard.count(DISPATCHER), permits.count(CLERK)) == (2, 1)
    assert standard.facets(DISPATCHER, by="state") == {"reported": 2}
    assert permits.facets(CLERK, by="state") == {"submitted": 1}
    assert permits.facets(CLERK, by="warning_level") == {"none": 1}
    assert standard.facets(DISPATCHER, by="lead_unit", state="reported") == {None: 2}


def test_another_workflows_case_is_not_found_and_a_command_on_it_writes_nothing(
    engines: tuple[Engine, Engine],
) -> None:
    standard, permits = engines
    report = standard.report(CITIZEN, description="a manhole cover is missing")
    permit = permits.report(CITIZEN, description="a permit for a street stall")
    refusals = [
        lambda: standard.trigger(permit.id, "classify", by=DISPATCHER, category="A.01"),
        lambda: permits.trigger(report.id, "decide", by=CLERK, outcome="granted"),
        lambda: standard.get(permit.id, viewer=DISPATCHER),
        lambda: permits.get(report.id, viewer=CLERK),
        lambda: standard.history(permit.id),
        lambda: standard.history(permit.id, viewer=CITIZEN),
        lambda: permits.allowed(report.id, CLERK),
        lambda: standard.verify(permit.id),
    ]
    for refused in refusals:
        with pytest.raises(CaseNotFound):
            refused()
    assert triggers(permits, permit.id) == ["report"]
    assert triggers(standard, report.id) == ["report"]
    assert permits.get(permit.id, viewer=CLERK).version == permit.version
    assert standard.get(report.id, viewer=DISPATCHER).version == report.version
    assert permits.verify(permit.id).ok
    assert standard.verify(report.id).ok


def test_a_case_of_another_version_that_lacks_its_state_is_a_stuck_timer(
    store_factory: StoreFactory, clock: ManualClock
) -> None:
    first = Engine(Workflow.from_dict(PERMITS), store=store_factory(), clock=clock)
    permit = first.report(CITIZEN, description="a permit for a street stall")
    renamed = yaml.safe_load(yaml.safe_dump(PERMITS))
    renamed["states"][0]["name"] = "received"
    renamed["transitions"][0]["from"] = ["received"]
    second = Engine(Workflow.from_dict(renamed), store=store_factory(), clock=clock)
    clock.set(START + timedelta(hours=1))
    done = second.tick()
    assert (done.applied, done.deferred, done.deferred_by) == (0, 1, {TimerFailure.UNFIT: 1})
    (stuck,) = second.stuck_timers()
    assert (stuck.point.case_id, stuck.point.kind, stuck.reason) == (
        permit.id,
        "warning",
        TimerFailure.UNFIT,
    )
    assert "state 'submitted', which workflow 'permits' does not declare" in stuck.detail
    assert triggers(first, permit.id) == ["report"]
