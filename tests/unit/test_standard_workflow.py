"""Every transition of the standard workflow, fired by a permitted and by a denied actor."""

from __future__ import annotations

from typing import Any

import pytest

from closedloop import Actor, Case, Engine, PermissionDenied, workflows
from closedloop.engine.definition import TransitionSpec
from tests.cast import (
    ARBITER,
    CITIZEN,
    DISPATCHER,
    GRID_WORKER,
    STREET,
    SUPERVISOR,
    SYSTEM_ACTOR,
    VERIFIER,
    WATER,
)

WORKFLOW = workflows.standard()

# How to bring a fresh case to each state: (trigger, actor) steps; payloads are sample().
PATHS: dict[str, list[str]] = {
    "reported": [],
    "classified": ["classify"],
    "assigned": ["classify", "dispatch"],
    "returned": ["classify", "dispatch", "return"],
    "arbitration": ["classify", "dispatch", "return", "refer_to_arbitration"],
    "in_progress": ["classify", "dispatch", "accept"],
    "handled": ["classify", "dispatch", "accept", "submit_result"],
    "awaiting_confirmation": ["classify", "dispatch", "accept", "submit_result", "feedback"],
}
# Triggers whose guards need an earlier step in the same state.
SETUP: dict[str, list[str]] = {
    "approve_extension": ["request_extension"],
    "refuse_extension": ["request_extension"],
    "provide_info": ["request_info"],
    "approve_suspension": ["request_suspension"],
    "refuse_suspension": ["request_suspension"],
    "resume": ["request_suspension", "approve_suspension"],
}
ROLE_ACTORS: dict[str, Actor] = {
    "dispatcher": DISPATCHER,
    "supervisor": SUPERVISOR,
    "arbiter": ARBITER,
    "verifier": VERIFIER,
    "system": SYSTEM_ACTOR,
    "grid_worker": GRID_WORKER,
    "assignee": WATER,
    "co_unit": STREET,
}
SAMPLES: dict[str, Any] = {
    "category": "01.01",
    "unit": "water",
    "duplicate_of": "case-0",
    "duration": "3 working days",
}


def sample(transition: TransitionSpec) -> dict[str, Any]:
    """A valid payload: every required field filled with a plausible value."""
    if transition.name == "redispatch":  # a return approved goes to another unit
        return {"unit": "street_s1", "reason": "the street owns this pavement"}
    payload: dict[str, Any] = {}
    for name, spec in transition.fields.items():
        if not spec.required and name != "unit":  # no responsibility list: name the unit
            continue
        if spec.type == "choice":
            payload[name] = spec.choices[0]
        else:
            payload[name] = SAMPLES.get(name, f"{name} text")
    return payload


def actor_for(role: str, reporter: Actor) -> Actor:
    return reporter if role == "reporter" else ROLE_ACTORS[role]


def denied_actor(transition: TransitionSpec, reporter: Actor) -> Actor:
    """An actor who can see the case but holds none of the transition's roles."""
    options = [
        (DISPATCHER, {"dispatcher"}),
        (SUPERVISOR, {"supervisor"}),
        (ARBITER, {"arbiter"}),
        (reporter, {"reporter"} | set(reporter.roles)),
    ]
    return next(actor for actor, held in options if not held & set(transition.roles))


def fire(engine: Engine, case: Case, trigger: str, reporter: Actor, **extra: Any) -> Case:
    transition = WORKFLOW.transition(trigger)
    by = actor_for(transition.roles[0], reporter)
    return engine.trigger(case.id, trigger, by=by, **{**sample(transition), **extra})


def case_in(engine: Engine, state: str, trigger: str) -> tuple[Case, Actor]:
    """A case in ``state`` ready for ``trigger`` (guards satisfied), and its reporter."""
    reporter = GRID_WORKER if trigger == "resolve_on_spot" else CITIZEN
    case = engine.report(reporter, description="路灯不亮", location="1 Elm St")
    steps = PATHS[state]
    if trigger == "reopen":  # needs a case without a lead unit
        steps = [] if state == "reported" else ["answer"]
    for step in [*steps, *SETUP.get(trigger, [])]:
        extra = {}
        if step == "dispatch" and trigger == "complete_subtask":
            extra = {"co_units": ["street_s1"]}  # a co-unit with a subtask to complete
        case = fire(engine, case, step, reporter, **extra)
    return case, reporter


CASES = [
    pytest.param(t.name, source, id=f"{t.name}-from-{source}")
    for t in WORKFLOW.transitions
    for source in t.source
]


@pytest.mark.parametrize(("trigger", "source"), CASES)
def test_permitted_actor_moves_the_case(memory_engine: Engine, trigger: str, source: str) -> None:
    case, reporter = case_in(memory_engine, source, trigger)
    transition = WORKFLOW.transition(trigger)
    for role in transition.roles:
        case, reporter = case_in(memory_engine, source, trigger)
        by = actor_for(role, reporter)
        payload = sample(transition)
        if trigger == "merge":  # the master must be an open case
            payload["duplicate_of"] = memory_engine.report(CITIZEN, description="first").id
        after = memory_engine.trigger(case.id, trigger, by=by, **payload)
        assert after.state == transition.dest
        assert after.version == case.version + 1
        last = memory_engine.history(case.id)[-1]
        assert (last.trigger, last.actor, last.role) == (trigger, by.id, role)
        assert memory_engine.verify(case.id).ok


@pytest.mark.parametrize(("trigger", "source"), CASES)
def test_denied_actor_changes_nothing(memory_engine: Engine, trigger: str, source: str) -> None:
    case, reporter = case_in(memory_engine, source, trigger)
    transition = WORKFLOW.transition(trigger)
    denied = denied_actor(transition, reporter)
    before = memory_engine.history(case.id)
    with pytest.raises(PermissionDenied) as raised:
        memory_engine.trigger(case.id, trigger, by=denied, **sample(transition))
    assert raised.value.trigger == trigger
    assert set(raised.value.roles) == set(transition.roles)
    assert memory_engine.history(case.id) == before
    assert memory_engine.get(case.id, viewer=DISPATCHER).version == case.version


def test_every_state_is_covered_by_a_path() -> None:
    non_final = {s.name for s in WORKFLOW.states if not s.final}
    assert non_final == set(PATHS)


def test_handling_unit_cannot_confirm_its_own_case(memory_engine: Engine) -> None:
    case, _ = case_in(memory_engine, "awaiting_confirmation", "confirm")
    with pytest.raises(PermissionDenied):
        memory_engine.trigger(case.id, "confirm", by=WATER)
    assert memory_engine.get(case.id, viewer=WATER).state == "awaiting_confirmation"


def test_rework_goes_back_to_the_same_unit(memory_engine: Engine) -> None:
    case, reporter = case_in(memory_engine, "awaiting_confirmation", "reject_result")
    case = memory_engine.trigger(case.id, "reject_result", by=reporter, reason="still broken")
    assert (case.state, case.lead_unit, case.counter("reworks")) == ("in_progress", "water", 1)
    assert memory_engine.allowed(case.id, WATER) == (
        "request_extension",
        "request_info",
        "request_suspension",
        "submit_result",
    )
