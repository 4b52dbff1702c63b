"""Generated workflows: valid ones load, round-trip and survive the generated state
machine; every broken one is refused with a problem naming its injected defect."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from closedloop import Actor, ClosedLoopError, Engine, InvalidWorkflow, Workflow
from closedloop.adapters.memory import InMemoryStore
from closedloop.testing import ManualClock, workflow_state_machine, workflows
from tests.property.defects import DEFECTS, broken_workflows

WORKFLOWS_RUN = 24
"""At least this many distinct generated workflows go through the state machine."""


@given(workflows(as_dict=True))
def test_generated_workflows_load_and_round_trip_through_json(data: dict[str, Any]) -> None:
    workflow = Workflow.from_dict(data)
    assert Workflow.from_json(json.dumps(data)) == workflow
    assert {s.name for s in workflow.states if s.final}
    assert workflow.initial.name == data["states"][0]["name"]


def test_the_state_machine_holds_on_generated_workflows() -> None:
    """Each generated workflow runs through a few short stateful examples: no exception
    other than a ClosedLoopError, and every invariant (liveness included) holds."""
    seen: set[str] = set()
    inner = settings(
        settings.default,
        max_examples=max(4, settings.default.max_examples // 50),
        stateful_step_count=30,
        report_multiple_bugs=False,
    )

    @settings(
        settings.default,
        max_examples=max(WORKFLOWS_RUN, settings.default.max_examples // 10),
        suppress_health_check=[HealthCheck.nested_given, HealthCheck.too_slow],
    )
    @given(workflows())
    def run(workflow: Workflow) -> None:
        seen.add(workflow.model_dump_json())
        machine = workflow_state_machine(workflow, store_factory=InMemoryStore)
        run_state_machine_as_test(machine, settings=inner)

    run()
    assert len(seen) >= 20, f"only {len(seen)} distinct workflows were generated"


@given(broken_workflows())
def test_every_broken_workflow_is_refused_naming_its_defect(pair: Any) -> None:
    data, defect = pair
    with pytest.raises(InvalidWorkflow) as refused:
        Workflow.from_dict(data)
    assert defect.found_in(refused.value.problems), (defect, refused.value.problems)


@pytest.mark.parametrize("kind", DEFECTS)
@settings(max_examples=3)
@given(data=st.data())
def test_each_kind_of_defect_is_named(kind: str, data: st.DataObject) -> None:
    broken, defect = data.draw(broken_workflows(kinds=[kind]))
    assert defect.kind == kind
    with pytest.raises(InvalidWorkflow) as refused:
        Workflow.from_dict(broken)
    assert defect.found_in(refused.value.problems), (defect, refused.value.problems)


def test_an_unknown_defect_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown defect kinds"):
        broken_workflows(kinds=["typo"])


# -- found by fuzzing: definitions the loader accepts that then break the engine ----------
# Each test passes once either the loader refuses the definition or the engine copes.


def one_step(finish: dict[str, Any], **clock: Any) -> dict[str, Any]:
    """A one-state workflow whose ``finish`` transition has the given extra keys."""
    return {
        "name": "one_step",
        "roles": [{"name": "clerk", "sees_all": True}, {"name": "system", "sees_all": True}],
        "clocks": [{"name": "wait", "duration": "1 hours", **clock}],
        "states": [
            {"name": "open", "initial": True, "owner": "clerk", "clock": "wait"},
            {"name": "done", "final": True},
        ],
        "transitions": [
            {"name": "finish", "from": ["open"], "to": "done", "roles": ["clerk"], **finish},
            {"name": "close", "from": ["open"], "to": "done", "roles": ["clerk"]},
        ],
    }


CLERK = Actor("clerk-1", roles=frozenset({"clerk"}))


@pytest.mark.parametrize(
    ("finish", "payload"),
    [
        pytest.param(
            {"fields": {"n": {"type": "int"}}, "sets": {"urgency": "n"}},
            {"n": 3},
            id="sets-a-number-as-urgency",
        ),
        pytest.param(
            {"fields": {"n": {"type": "int"}}, "sets": {"co_units": "n"}},
            {"n": 3},
            id="sets-a-number-as-co-units",
        ),
        pytest.param({"marks": {"lead_unit": 5}}, {}, id="marks-a-number-as-lead-unit"),
        pytest.param({"effects": ["assign_named_unit"]}, {}, id="assign-effect-without-unit"),
        pytest.param({"effects": ["route"]}, {}, id="route-effect-without-its-guard"),
        pytest.param({"effects": ["complete_subtask"]}, {}, id="subtask-effect-without-guard"),
        pytest.param(
            {"fields": {"name": {"type": "text"}}},
            {"name": "Li"},
            id="field-named-like-an-argument",
        ),
    ],
)
def test_a_command_on_a_loaded_workflow_only_raises_closedloop_errors(
    finish: dict[str, Any], payload: dict[str, Any]
) -> None:
    try:
        workflow = Workflow.from_dict(one_step(finish))
    except InvalidWorkflow:
        return  # the loader refusing it is a fix too
    engine = Engine(workflow, store=InMemoryStore(), clock=ManualClock())
    case = engine.report(CLERK, description="one step")
    with contextlib.suppress(ClosedLoopError):
        engine.trigger(case.id, "finish", by=CLERK, **payload)


def test_an_expiry_action_that_cannot_take_its_reason_does_not_stop_every_timer() -> None:
    expiry = {"on_expiry": {"trigger": "finish", "reason": "too late"}}
    try:  # 'finish' declares no 'reason' field for the engine's reason
        workflow = Workflow.from_dict(one_step({"roles": ["clerk", "system"]}, **expiry))
    except InvalidWorkflow:
        return
    clock = ManualClock()
    engine = Engine(workflow, store=InMemoryStore(), clock=clock)
    first = engine.report(CLERK, description="expires first")
    clock.advance(minutes=30)
    second = engine.report(CLERK, description="due later")
    clock.advance(hours=2)
    for _ in range(2):  # whatever the first case's expiry does, the sweep goes on
        with contextlib.suppress(ClosedLoopError):
            engine.tick()
        clock.advance(hours=1)
    assert "breach" in [e.trigger for e in engine.history(second.id)]
    assert engine.verify(first.id).ok


def test_a_timer_cancelled_within_a_tick_is_not_reported_as_deferred() -> None:
    workflow = Workflow.from_dict(
        one_step(
            {"roles": ["system"], "fields": {"reason": {"type": "text"}}},
            escalation=[{"after": "1 hours"}],
            on_expiry={"trigger": "finish", "reason": "too late"},
        )
    )
    clock = ManualClock()
    engine = Engine(workflow, store=InMemoryStore(), clock=clock)
    engine.report(CLERK, description="expires before its escalation")
    clock.advance(hours=3)
    report = engine.tick()  # warn, breach, expiry; the escalation is cancelled by the expiry
    assert (report.applied, report.deferred) == (3, 0), report
    assert engine.next_due_at() is None
