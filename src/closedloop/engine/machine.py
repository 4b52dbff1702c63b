"""The one module that uses ``transitions``: a workflow compiled into a state machine.

One machine is compiled per workflow. A case's state is attached as a throw-away
model only for the command being applied (attach, trigger, detach), because a
machine slows down as more models stay attached. ``auto_transitions`` is off, invalid
triggers raise, and no callbacks are registered: the engine applies guards, effects
and audit itself, so the machine's only job is the graph.
"""

from __future__ import annotations

import threading

from transitions import Machine, MachineError

from closedloop.engine.definition import Workflow
from closedloop.errors import TransitionNotAllowed


class _Token:
    """The model attached for one command; it carries nothing but the state."""

    def __init__(self) -> None:
        self.state = ""


class CompiledMachine:
    """The transition graph of one workflow, ready to fire triggers."""

    def __init__(self, workflow: Workflow) -> None:
        self._workflow = workflow
        self._machine = Machine(
            model=None,
            states=[state.name for state in workflow.states],
            transitions=[
                {"trigger": _edge(t.name, dest), "source": list(t.source), "dest": dest}
                for t in workflow.transitions
                for dest in workflow.destinations(t)
            ],
            initial=workflow.initial.name,
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=False,
        )
        # Attaching models mutates the machine's model list; one command at a time.
        self._lock = threading.Lock()

    @property
    def workflow(self) -> Workflow:
        """The workflow this machine was compiled from."""
        return self._workflow

    def triggers(self, state: str) -> tuple[str, ...]:
        """The triggers declared from ``state``, in declaration order."""
        return tuple(t.name for t in self._workflow.transitions_from(state))

    def fire(self, case_id: str, state: str, trigger: str, dest: str | None = None) -> str:
        """The state reached by firing ``trigger`` from ``state`` (towards ``dest``, one of
        its declared destinations, when the transition can divert).

        Raises:
            TransitionNotAllowed: ``trigger`` is not declared from ``state``.
        """
        spec = next((t for t in self._workflow.transitions if t.name == trigger), None)
        event = None
        if spec is not None:
            event = self._machine.events.get(_edge(trigger, dest or spec.dest))
        if event is None:
            raise TransitionNotAllowed(case_id, state, trigger, self.triggers(state))
        token = _Token()
        with self._lock:
            self._machine.add_model(token, initial=state)
            try:
                event.trigger(token)
            except MachineError:
                raise TransitionNotAllowed(case_id, state, trigger, self.triggers(state)) from None
            finally:
                self._machine.remove_model(token)
        return str(token.state)


def _edge(trigger: str, dest: str) -> str:
    """The machine's event for one destination of a trigger (a trigger may divert)."""
    return f"{trigger}->{dest}"
