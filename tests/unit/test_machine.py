"""The compiled machine: the workflow's graph, fired from many threads at once."""

from __future__ import annotations

import threading

import pytest

from closedloop import workflows
from closedloop.engine.machine import CompiledMachine
from closedloop.errors import TransitionNotAllowed

MACHINE = CompiledMachine(workflows.standard())


def test_a_declared_trigger_reaches_its_destination() -> None:
    assert MACHINE.fire("c1", "reported", "classify") == "classified"
    assert MACHINE.fire("c1", "assigned", "accept") == "in_progress"


def test_a_trigger_not_declared_from_the_state_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(TransitionNotAllowed) as raised:
        MACHINE.fire("c1", "reported", "confirm")
    assert raised.value.state == "reported"
    assert "classify" in str(raised.value)


def test_an_unknown_trigger_or_state_is_refused() -> None:
    with pytest.raises(TransitionNotAllowed):
        MACHINE.fire("c1", "reported", "teleport")
    with pytest.raises(TransitionNotAllowed):
        MACHINE.fire("c1", "nowhere", "classify")


def test_a_refused_fire_does_not_leave_its_state_for_the_next_command() -> None:
    with pytest.raises(TransitionNotAllowed):
        MACHINE.fire("c1", "closed", "classify")
    assert MACHINE.fire("c2", "reported", "classify") == "classified"


def test_threads_firing_at_once_each_get_their_own_answer() -> None:
    moves = [("reported", "classify", "classified"), ("assigned", "accept", "in_progress")]
    start = threading.Barrier(8)
    wrong: list[tuple[str, str]] = []

    def fire(n: int) -> None:
        source, trigger, expected = moves[n % 2]
        start.wait()
        for _ in range(300):
            reached = MACHINE.fire(f"c{n}", source, trigger)
            if reached != expected:
                wrong.append((trigger, reached))

    threads = [threading.Thread(target=fire, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert wrong == []
