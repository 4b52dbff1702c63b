"""Generated workflows: valid ones load, round-trip and survive the generated state
machine; every broken one is refused with a problem naming its injected defect."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from closedloop import Actor, Engine, GuardRejected, InvalidWorkflow, Workflow
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
        max_examples=max(2, settings.default.max_examples // 50),
        # Each example starts with a steered tour of up to two commands per declared
        # (state, trigger) pair; a few random steps after it are enough here.
        stateful_step_count=10,
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


# -- found by fuzzing: definitions the loader once accepted that then broke the engine -----
# Each broken form is now refused, naming the problem; the corrected form loads, and the
# engine runs it to the end (or refuses the command with the guard the fix added).


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
FINISH = "transitions[0] (finish)"


@pytest.mark.parametrize(
    ("broken", "problem", "fixed", "payload", "outcome"),
    [
        pytest.param(
            {"fields": {"n": {"type": "int"}}, "sets": {"urgency": "n"}},
            ".sets.urgency: needs a field of type ['choice', 'code', 'text'], not int",
            {"fields": {"n": {"type": "text"}}, "sets": {"urgency": "n"}},
            {"n": "high"},
            {"urgency": "high"},
            id="sets-a-number-as-urgency",
        ),
        pytest.param(
            {"fields": {"n": {"type": "int"}}, "sets": {"co_units": "n"}},
            ".sets.co_units: needs a field of type ['codes'], not int",
            {"fields": {"n": {"type": "codes"}}, "sets": {"co_units": "n"}},
            {"n": ["u1", "u2"]},
            {"co_units": ("u1", "u2")},
            id="sets-a-number-as-co-units",
        ),
        pytest.param(
            {"marks": {"lead_unit": 5}},
            ".marks.lead_unit: case field 'lead_unit' takes only text or null",
            {"marks": {"lead_unit": "u5"}},
            {},
            {"lead_unit": "u5"},
            id="marks-a-number-as-lead-unit",
        ),
        pytest.param(
            {"effects": ["assign_named_unit"]},
            ".effects: 'assign_named_unit' needs a required field 'unit'",
            {
                "effects": ["assign_named_unit"],
                "guards": ["known_units"],
                "fields": {"unit": {"type": "code", "required": True}},
            },
            {"unit": "u1"},
            {"lead_unit": "u1"},
            id="assign-effect-without-unit",
        ),
        pytest.param(
            {
                "effects": ["assign_named_unit"],
                "fields": {"unit": {"type": "code", "required": True}},
            },
            ".effects: 'assign_named_unit' needs one of the guards 'known_units', "
            "'another_unit' on the same transition (they refuse a unit the directory does "
            "not know)",
            {
                "effects": ["assign_named_unit"],
                "guards": ["known_units"],
                "fields": {"unit": {"type": "code", "required": True}},
            },
            {"unit": "u1"},
            {"lead_unit": "u1"},
            id="assign-effect-without-unit-check",
        ),
        pytest.param(
            {"effects": ["route"]},
            ".effects: 'route' needs the guard 'routable' on the same transition",
            {"effects": ["route"], "guards": ["routable"]},
            {},
            "no responsibility list is configured",
            id="route-effect-without-its-guard",
        ),
        pytest.param(
            {"effects": ["complete_subtask"]},
            ".effects: 'complete_subtask' needs the guard 'has_active_subtask' on the same "
            "transition",
            {"effects": ["complete_subtask"], "guards": ["has_active_subtask"]},
            {},
            "none of the actor's units has an active subtask",
            id="subtask-effect-without-guard",
        ),
        pytest.param(
            {"fields": {"by": {"type": "text"}}},
            ".fields.by: 'by' is an argument of Engine.trigger; name the field otherwise",
            {"fields": {"who": {"type": "text"}}},
            {"who": "Li"},
            {"state": "done"},
            id="field-named-like-an-argument",
        ),
    ],
)
def test_a_definition_that_broke_the_engine_is_refused_and_its_fix_runs(
    broken: dict[str, Any],
    problem: str,
    fixed: dict[str, Any],
    payload: dict[str, Any],
    outcome: dict[str, Any] | str,
) -> None:
    with pytest.raises(InvalidWorkflow) as refused:
        Workflow.from_dict(one_step(broken))
    assert FINISH + problem in refused.value.problems
    engine = Engine(Workflow.from_dict(one_step(fixed)), store=InMemoryStore(), clock=ManualClock())
    case = engine.report(CLERK, description="one step")
    if isinstance(outcome, str):  # the guard the fix added refuses, and nothing changes
        with pytest.raises(GuardRejected, match=outcome):
            engine.trigger(case.id, "finish", by=CLERK, **payload)
        assert engine.get(case.id, viewer=CLERK).version == case.version
        return
    done = engine.trigger(case.id, "finish", by=CLERK, **payload)
    assert done.state == "done"
    assert {field: getattr(done, field) for field in outcome} == outcome
    assert engine.history(case.id)[-1].payload == payload
    assert engine.verify(case.id).ok


def test_an_expiry_action_must_take_its_reason_and_then_moves_every_expired_case() -> None:
    expiry = {"on_expiry": {"trigger": "finish", "reason": "too late"}}
    with pytest.raises(InvalidWorkflow) as refused:  # 'finish' declares no 'reason' field
        Workflow.from_dict(one_step({"roles": ["clerk", "system"]}, **expiry))
    assert refused.value.problems == (
        "clocks[0] (wait).on_expiry.trigger: 'finish' must take a text field 'reason' "
        "(why it fired)",
    )
    reason = {"roles": ["clerk", "system"], "fields": {"reason": {"type": "text"}}}
    clock = ManualClock()
    engine = Engine(
        Workflow.from_dict(one_step(reason, **expiry)), store=InMemoryStore(), clock=clock
    )
    first = engine.report(CLERK, description="expires first")
    clock.advance(minutes=30)
    second = engine.report(CLERK, description="expires later")
    clock.advance(minutes=45)
    engine.tick()
    assert [engine.get(c.id, viewer=CLERK).state for c in (first, second)] == ["done", "open"]
    assert engine.history(first.id)[-1].payload["reason"] == "too late"
    clock.advance(hours=1)
    engine.tick()
    assert engine.get(second.id, viewer=CLERK).state == "done"
    assert engine.verify(first.id).ok
    assert engine.verify(second.id).ok


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
