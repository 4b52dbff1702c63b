"""``field_values`` lets a workflow's own tests choose a field's values: a guard's
threshold that the default values never cross is crossed, and a planted threshold bug is
found."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from closedloop import Context, Registry, ValidationError, Workflow
from closedloop.adapters.memory import InMemoryStore
from closedloop.testing import workflow_state_machine
from closedloop.testing.profiles import CI_EXAMPLES
from closedloop.testing.state_machine import MachineView

BUDGET = 1000

LIGHTS = {
    "name": "lights",
    "roles": [
        {"name": "dispatcher", "kind": "global", "sees_all": True},
        {"name": "supervisor", "kind": "global", "sees_all": True},
        {"name": "crew", "kind": "lead_unit"},
        {"name": "reporter", "kind": "reporter"},
    ],
    "clocks": [
        {"name": "triage", "duration": "4 hours"},
        {"name": "repair", "duration": "3 days"},
        {"name": "approval", "duration": "1 day"},
    ],
    "states": [
        {"name": "reported", "initial": True, "owner": "dispatcher", "clock": "triage"},
        {"name": "repairing", "owner": "crew", "clock": "repair"},
        {"name": "approving", "owner": "supervisor", "clock": "approval"},
        {"name": "fixed", "final": True},
    ],
    "transitions": [
        {
            "name": "send_crew",
            "from": ["reported"],
            "to": "repairing",
            "roles": ["dispatcher"],
            "fields": {"unit": {"type": "code", "required": True}},
            "sets": {"lead_unit": "unit"},
        },
        {
            "name": "finish",
            "from": ["repairing"],
            "to": "fixed",
            "roles": ["crew"],
            "guards": ["cost_within_budget"],
            "fields": {"cost": {"type": "int", "required": True}},
            "sets": {"cost": "cost"},
        },
        {
            "name": "ask_approval",
            "from": ["repairing"],
            "to": "approving",
            "roles": ["crew"],
            "guards": ["cost_over_budget"],
            "fields": {"cost": {"type": "int", "required": True}},
        },
        {
            "name": "approve",
            "from": ["approving"],
            "to": "fixed",
            "roles": ["supervisor"],
        },
    ],
}


def lights(allowed: int) -> Workflow:
    """The workflow, its budget guard letting a crew finish up to ``allowed``."""

    def within(ctx: Context) -> str | None:
        cost = ctx.payload.get("cost", 0)
        return None if cost <= allowed else f"cost {cost} is over the budget"

    def over(ctx: Context) -> str | None:
        cost = ctx.payload.get("cost", 0)
        return None if cost > BUDGET else f"cost {cost} is within the budget"

    guards = {"cost_within_budget": within, "cost_over_budget": over}
    return Workflow.from_dict(LIGHTS, registry=Registry.default().extended(guards=guards))


def over_budget_needs_approval(view: MachineView) -> None:
    """Our rule: a crew finishes by itself only within the budget."""
    for case_id, case in view.cases.items():
        cost = case.attributes.get("cost")
        assert cost is None or cost <= BUDGET, f"{case_id}: cost {cost} finished without approval"


def run(workflow: Workflow, **options: Any) -> None:
    machine = workflow_state_machine(
        workflow,
        store_factory=InMemoryStore,
        extra_invariants=[over_budget_needs_approval],
        **options,
    )
    run_state_machine_as_test(
        machine, settings=settings(max_examples=CI_EXAMPLES, stateful_step_count=30)
    )


COSTS = {"cost": st.integers(0, 5 * BUDGET)}


def test_the_default_int_values_never_cross_a_threshold_of_a_thousand() -> None:
    run(lights(allowed=10 * BUDGET))  # the planted bug goes unseen: values stay small


def test_a_planted_threshold_bug_is_found_with_the_field_values_given() -> None:
    with pytest.raises(AssertionError, match="finished without approval"):
        run(lights(allowed=10 * BUDGET), field_values=COSTS)


def test_the_right_threshold_passes_with_the_same_values() -> None:
    run(lights(allowed=BUDGET), field_values=COSTS)


def test_field_values_must_name_declared_fields_and_give_strategies() -> None:
    with pytest.raises(ValidationError) as refused:
        workflow_state_machine(
            lights(BUDGET),
            store_factory=InMemoryStore,
            field_values={"cots": st.integers(), "cost": range(5)},  # type: ignore[dict-item]
        )
    assert refused.value.errors == (
        ("cots", "is not a field of any trigger of 'lights'; fields: cost, unit"),
        ("cost", "must be a Hypothesis strategy (such as st.integers(0, 5000)), not range(0, 5)"),
    )
