"""The one module that uses ``transitions``: a workflow compiled into the state machine
that decides each transition.

One machine is compiled per workflow. Each workflow transition becomes one event of
the machine, declared once per destination in order: every diversion first, as a
conditional transition whose condition is the diversion's guard or counter threshold,
then the plain destination, unconditional. Firing a trigger therefore decides
everything about the move in one place, in this order:

1. the machine refuses a trigger that is not declared from the case's state;
2. the command is admitted (the caller's ``admit``: who may fire it, its payload, its
   guards), which may refuse it with an error;
3. the first transition whose conditions hold, in declaration order, gives the
   destination.

Cases are never attached to the machine. Once compiled, the machine's events are read
into a table of routes by event and source state (each a destination and its
conditions, in the machine's order), and a command walks that table on a
:class:`Firing` of its own, which carries the state and the command: the same
decision ``Event.trigger`` makes, without the library's per-call callback resolution.
Nothing is added to or shared in the machine, so threads fire at once without a lock.
``auto_transitions`` is off and no callbacks are registered: the engine applies
effects and the audit trail itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from transitions import Machine

from closedloop.engine.context import Context
from closedloop.engine.definition import Divert, TransitionSpec, Workflow
from closedloop.engine.model import Case
from closedloop.errors import TransitionNotAllowed

Admit = Callable[[TransitionSpec], tuple[Context, str]]
"""Admits a command to fire a transition: the context its guards, effects and
diversions see, and the role it fires as; raises to refuse it."""


@dataclass(slots=True)
class Firing:
    """One trigger being fired on one case: the model the machine moves for one call.

    ``state`` starts as the case's state and ends as the destination the machine
    chose; ``context`` and ``role`` are what ``admit`` answered.
    """

    state: str
    case: Case
    trigger: str
    admit: Admit
    context: Context | None = None
    role: str = ""

    @property
    def ctx(self) -> Context:
        """The admitted command's context (set before any condition is evaluated)."""
        assert self.context is not None, "the machine admits a firing before deciding it"
        return self.context


class CompiledMachine:
    """The transition graph of one workflow, deciding the destination of each trigger."""

    def __init__(self, workflow: Workflow) -> None:
        self._workflow = workflow
        self._machine = Machine(
            model=None,
            states=[state.name for state in workflow.states],
            initial=workflow.initial.name,
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=False,
        )
        for spec in workflow.transitions:
            for divert in spec.divert:
                self._machine.add_transition(
                    spec.name,
                    list(spec.source),
                    divert.to,
                    conditions=[_diverts(workflow, spec, divert)],
                )
            self._machine.add_transition(spec.name, list(spec.source), spec.dest)
        self._routes = _routes(self._machine)

    @property
    def workflow(self) -> Workflow:
        """The workflow this machine was compiled from."""
        return self._workflow

    def triggers(self, state: str) -> tuple[str, ...]:
        """The triggers the machine accepts from ``state``, in declaration order."""
        if state not in self._machine.states:
            return ()
        return tuple(self._machine.get_triggers(state))

    def fire(self, case: Case, trigger: str, admit: Admit) -> Firing:
        """Fire ``trigger`` on ``case``: admit the command, then choose the destination.

        Raises:
            TransitionNotAllowed: ``trigger`` is not declared from the case's state.
            ClosedLoopError: whatever ``admit`` raises to refuse the command.
        """
        routes = self._routes.get((trigger, case.state))
        if routes is None:
            raise self._refused(case, trigger)
        firing = Firing(case.state, case, trigger, admit)
        self._admit(firing)
        for dest, conditions in routes:
            if all(condition(firing) for condition in conditions):
                firing.state = dest
                break
        return firing

    def _admit(self, firing: Firing) -> None:
        firing.context, firing.role = firing.admit(self._workflow.transition(firing.trigger))

    def _refused(self, case: Case, trigger: str) -> TransitionNotAllowed:
        return TransitionNotAllowed(case.id, case.state, str(trigger), self.triggers(case.state))


Route = tuple[str, tuple[Callable[[Firing], bool], ...]]
"""A destination of an event from one state, with the conditions that must hold."""


def _routes(machine: Machine) -> dict[tuple[str, str], tuple[Route, ...]]:
    """The compiled machine's transitions by event and source state, in declaration
    order: what ``Event.trigger`` would try, read once so that a command evaluates them
    without the library's per-call callback resolution."""
    routes: dict[tuple[str, str], tuple[Route, ...]] = {}
    for name, event in machine.events.items():
        for source, transitions in event.transitions.items():
            routes[(name, source)] = tuple(
                (str(t.dest), tuple(_condition(c.func, c.target) for c in t.conditions))
                for t in transitions
            )
    return routes


def _condition(func: object, target: bool) -> Callable[[Firing], bool]:
    """A condition as ``Condition.check`` evaluates it (the machine holds only the
    callables this module gave it)."""
    assert callable(func)
    if target:
        return func
    return lambda firing: not func(firing)


def _diverts(workflow: Workflow, spec: TransitionSpec, divert: Divert) -> Callable[[Firing], bool]:
    """The condition of one diversion: its guard allows, or its counter, counted with
    this transition's own increments, reached the threshold."""
    counter, threshold = divert.counter, divert.at_least or 0

    def holds(firing: Firing) -> bool:
        if divert.guard is not None and workflow.registry.guard(divert.guard)(firing.ctx) is None:
            return True
        if counter is None:
            return False
        return firing.case.counters.get(counter, 0) + spec.counts.count(counter) >= threshold

    return holds
