"""Conflicts of interest: a party to a case (a member of its lead unit or a co-unit)
never verifies, confirms for the reporter, approves its own extension or arbitrates,
whatever role it also holds; the rule is declared (``not_party``) and validated."""

from __future__ import annotations

from typing import Any

import pytest

from closedloop import Actor, Case, Engine, InvalidWorkflow, Workflow, workflows
from closedloop.cli.definitions import party_rules
from closedloop.errors import ConflictOfInterest, PermissionDenied

CITIZEN = Actor("citizen-1")
DISPATCHER = Actor("op-1", roles={"dispatcher"})
WATER = Actor("crew-1", units={"water"})
VERIFIER = Actor("check-1", roles={"verifier"})
WATER_VERIFIER = Actor("check-2", roles={"verifier"}, units={"water"})
STREET_VERIFIER = Actor("check-3", roles={"verifier"}, units={"street_s1"})
WATER_DISPATCHER = Actor("op-2", roles={"dispatcher"}, units={"water"})
ARBITER = Actor("arb-1", roles={"arbiter"})
ROADS_ARBITER = Actor("arb-2", roles={"arbiter"}, units={"roads"})


def handled(engine: Engine, **dispatch: Any) -> Case:
    case = engine.report(CITIZEN, description="Manhole cover missing")
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water", **dispatch)
    engine.trigger(case.id, "accept", by=WATER)
    return case


def awaiting_confirmation(engine: Engine) -> Case:
    case = handled(engine, co_units=["street_s1"])
    engine.trigger(case.id, "complete_subtask", by=Actor("s-1", units={"street_s1"}), result="ok")
    engine.trigger(case.id, "submit_result", by=WATER, result="Cover replaced")
    return engine.trigger(case.id, "feedback", by=DISPATCHER)


def test_a_verifier_in_the_lead_unit_or_a_co_unit_cannot_confirm(engine: Engine) -> None:
    case = awaiting_confirmation(engine)
    before = engine.history(case.id)
    for verifier, unit in ((WATER_VERIFIER, "water"), (STREET_VERIFIER, "street_s1")):
        for trigger, payload in (("confirm", {}), ("reject_result", {"reason": "no"})):
            with pytest.raises(ConflictOfInterest) as refused:
                engine.trigger(case.id, trigger, by=verifier, **payload)
            assert (refused.value.units, refused.value.trigger) == ((unit,), trigger)
            assert refused.value.to_problem()["status"] == 403
        assert engine.allowed(case.id, verifier) == ()
    assert engine.history(case.id) == before  # nothing written
    assert engine.allowed(case.id, VERIFIER) == ("confirm", "reject_result")
    closed = engine.trigger(case.id, "confirm", by=VERIFIER, rating="satisfied")
    assert (closed.state, closed.version) == ("closed", case.version + 1)


def test_a_dispatcher_in_the_lead_unit_cannot_approve_its_extension(engine: Engine) -> None:
    case = handled(engine)
    engine.trigger(case.id, "request_extension", by=WATER, duration="2 working days", reason="x")
    with pytest.raises(ConflictOfInterest):
        engine.trigger(case.id, "approve_extension", by=WATER_DISPATCHER)
    assert "approve_extension" not in engine.allowed(case.id, WATER_DISPATCHER)
    approved = engine.trigger(case.id, "approve_extension", by=DISPATCHER)
    assert approved.counter("extensions") == 1


def test_an_arbiter_party_to_the_dispute_cannot_decide_it(engine: Engine) -> None:
    case = engine.report(CITIZEN, description="Water on the road")
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="roads")
    roads = Actor("crew-9", units={"roads"})
    engine.trigger(case.id, "return", by=roads, reason_code="wrong_area", evidence="not ours")
    engine.trigger(case.id, "reject_return", by=DISPATCHER, reason="it is yours")
    disputed = engine.trigger(
        case.id, "return", by=roads, reason_code="wrong_area", evidence="still not"
    )
    assert (disputed.state, disputed.lead_unit) == ("arbitration", "roads")
    with pytest.raises(ConflictOfInterest) as refused:
        engine.trigger(case.id, "arbitrate", by=ROADS_ARBITER, unit="roads", reason="mine")
    assert refused.value.units == ("roads",)
    decided = engine.trigger(case.id, "arbitrate", by=ARBITER, unit="water", reason="pipes")
    assert (decided.state, decided.lead_unit) == ("assigned", "water")


def test_a_reporter_who_is_not_party_still_confirms(engine: Engine) -> None:
    case = awaiting_confirmation(engine)
    with pytest.raises(PermissionDenied) as refused:
        engine.trigger(case.id, "confirm", by=WATER)  # no verifier role at all
    assert type(refused.value) is PermissionDenied
    assert engine.trigger(case.id, "confirm", by=CITIZEN).state == "closed"


def test_a_grid_worker_of_the_lead_unit_cannot_confirm_their_own_report(engine: Engine) -> None:
    grid_worker = Actor("grid-7", roles={"grid_worker"}, units={"water"})
    case = engine.report(grid_worker, description="Manhole cover missing", channel="grid")
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    engine.trigger(case.id, "accept", by=grid_worker)
    engine.trigger(case.id, "submit_result", by=grid_worker, result="Cover replaced")
    case = engine.trigger(case.id, "feedback", by=DISPATCHER)
    before = engine.get(case.id, viewer=DISPATCHER), engine.history(case.id)
    with pytest.raises(ConflictOfInterest) as refused:
        engine.trigger(case.id, "confirm", by=grid_worker, rating="satisfied")
    assert (refused.value.units, refused.value.trigger) == (("water",), "confirm")
    assert (engine.get(case.id, viewer=DISPATCHER), engine.history(case.id)) == before
    assert engine.allowed(case.id, grid_worker) == ("reject_result",)
    closed = engine.trigger(case.id, "confirm", by=VERIFIER, rating="satisfied")
    assert (closed.state, engine.history(case.id)[-1].actor) == ("closed", VERIFIER.id)


def minimal(role_rules: list[dict[str, Any]], roles: list[str]) -> dict[str, Any]:
    return {
        "name": "check",
        "roles": [
            {"name": "clerk", "kind": "global"},
            {"name": "checker", "kind": "global"},
            {"name": "assignee", "kind": "lead_unit"},
        ],
        "clocks": [{"name": "c", "duration": "1 day"}],
        "states": [
            {"name": "open", "initial": True, "owner": "clerk", "clock": "c"},
            {"name": "done", "final": True},
        ],
        "transitions": [
            {"name": "finish", "from": ["open"], "to": "done", "roles": roles,
             "role_rules": role_rules},
        ],
    }  # fmt: skip


def test_the_validator_refuses_not_party_rules_that_cannot_work() -> None:
    with pytest.raises(InvalidWorkflow) as invalid:
        Workflow.from_dict(
            minimal(
                [
                    {"not_party": True},
                    {"not_party": True, "roles": ["checker"]},
                    {"not_party": True, "counter": "n", "at_least": 1},
                    {"roles": ["clerk"]},
                ],
                ["clerk", "assignee"],
            )
        )
    where = "transitions[0] (finish).role_rules"
    assert list(invalid.value.problems) == [
        f"{where}[0]: not_party bars 'assignee', a role only parties to the case hold, "
        "so nobody could ever fire 'finish' as 'assignee'",
        f"{where}[1]: not_party bars 'checker', which cannot fire 'finish'",
        f"{where}[2]: a not_party rule takes no counter or at_least; write two rules",
        f"{where}[2]: not_party bars 'assignee', a role only parties to the case hold, "
        "so nobody could ever fire 'finish' as 'assignee'",
        f"{where}[3]: give counter, at_least and roles, or not_party: true",
    ]
    valid = Workflow.from_dict(minimal([{"not_party": True}], ["clerk", "checker"]))
    assert valid.barred_to_parties(valid.transition("finish")) == {"clerk", "checker"}


def test_validate_lists_what_parties_may_not_do() -> None:
    assert party_rules(workflows.standard()) == (
        "Conflicts of interest: a party to the case may not fire arbitrate (any role), "
        "approve_extension (any role), confirm (any role), reject_result (as verifier), "
        "reopen (as verifier)."
    )
