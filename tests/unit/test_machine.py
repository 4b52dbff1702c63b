"""The compiled machine: the workflow's graph deciding each move, from many threads."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from closedloop import Actor, workflows
from closedloop.engine.definition import TransitionSpec
from closedloop.engine.machine import CompiledMachine
from closedloop.engine.model import Case
from closedloop.engine.registry import Context
from closedloop.errors import PermissionDenied, TransitionNotAllowed
from closedloop.testing.contract.base import new_case

MACHINE = CompiledMachine(workflows.standard())
NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
CLERK = Actor("clerk-1", roles=frozenset({"dispatcher"}))


def case_in(state: str, **fields: object) -> Case:
    case, _ = new_case("c1", state=state, **fields)
    return case


def admit_as(case: Case, payload: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    def admit(transition: TransitionSpec) -> tuple[Context, str]:
        return Context(case, CLERK, payload or {}, NOW, transition), "dispatcher"

    return admit


def fire(case: Case, trigger: str, payload: dict[str, object] | None = None) -> str:
    return MACHINE.fire(case, trigger, admit_as(case, payload)).state


def test_a_declared_trigger_reaches_its_destination() -> None:
    assert fire(case_in("reported"), "classify") == "classified"
    assert fire(case_in("assigned"), "accept") == "in_progress"


def test_the_firing_carries_what_the_command_was_admitted_with() -> None:
    case = case_in("reported")
    firing = MACHINE.fire(case, "classify", admit_as(case, {"category": "01.02"}))
    assert (firing.role, firing.ctx.transition.name, dict(firing.ctx.payload)) == (
        "dispatcher",
        "classify",
        {"category": "01.02"},
    )


def test_a_counter_reaching_its_threshold_diverts_counting_this_transition() -> None:
    assert fire(case_in("assigned"), "return") == "returned"
    assert fire(case_in("assigned", counters={"returns": 1}), "return") == "arbitration"


def test_a_diversion_whose_guard_refuses_leaves_the_plain_destination() -> None:
    # routing_disputed allows when the list flags the case for arbitration; with the
    # unit named by the dispatcher it refuses, so the plain destination is taken.
    assert fire(case_in("classified"), "dispatch", {"unit": "water"}) == "assigned"


def test_a_trigger_not_declared_from_the_state_is_refused_before_admission() -> None:
    case = case_in("reported")

    def admit(transition: TransitionSpec) -> tuple[Context, str]:
        raise PermissionDenied(case.id, transition.name, "nobody", ("dispatcher",))

    with pytest.raises(TransitionNotAllowed) as raised:
        MACHINE.fire(case, "confirm", admit)
    assert (raised.value.case_id, raised.value.state, raised.value.trigger) == (
        "c1",
        "reported",
        "confirm",
    )
    declared = MACHINE.workflow.transitions_from("reported")
    assert raised.value.allowed == tuple(sorted(t.name for t in declared))
    assert "classify" in raised.value.allowed


def test_a_refusal_by_admission_is_raised_as_it_is() -> None:
    case = case_in("reported")

    def admit(transition: TransitionSpec) -> tuple[Context, str]:
        raise PermissionDenied(case.id, transition.name, "nobody", ("dispatcher",))

    with pytest.raises(PermissionDenied):
        MACHINE.fire(case, "classify", admit)


def test_an_unknown_trigger_or_state_is_refused() -> None:
    with pytest.raises(TransitionNotAllowed):
        fire(case_in("reported"), "teleport")
    with pytest.raises(TransitionNotAllowed) as raised:
        fire(case_in("nowhere"), "classify")
    assert raised.value.allowed == ()


def test_threads_firing_at_once_each_get_their_own_answer() -> None:
    moves = [
        (case_in("reported"), "classify", "classified"),
        (case_in("assigned"), "accept", "in_progress"),
        (case_in("assigned", counters={"returns": 1}), "return", "arbitration"),
        (case_in("assigned"), "return", "returned"),
    ]
    start = threading.Barrier(8)
    wrong: list[tuple[str, str]] = []

    def run(n: int) -> None:
        case, trigger, expected = moves[n % len(moves)]
        start.wait()
        for _ in range(300):
            reached = fire(case, trigger)
            if reached != expected:
                wrong.append((trigger, reached))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert wrong == []
