"""The one module that uses ``transitions``: a workflow compiled into a state machine.

One machine is compiled per workflow. Cases are never attached to it: a command
borrows a token (a model that carries nothing but a state) from a small pool, sets the
case's state on it, fires, and returns it. Attaching a model binds every trigger to it,
which would cost more than the rest of the transition, and a machine slows down as
models pile up; the pool holds one token per thread that fired at the same time.
``auto_transitions`` is off, invalid triggers raise, and no callbacks are registered:
the engine applies guards, effects and audit itself, so the machine's only job is the
graph.
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
        # Attaching a token mutates the machine's model list: one attach at a time.
        self._lock = threading.Lock()
        self._idle: list[_Token] = []

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
        token = self._borrow()
        try:
            self._machine.set_state(state, model=token)
            event.trigger(token)
            reached = str(token.state)
        except (MachineError, ValueError):
            raise TransitionNotAllowed(case_id, state, trigger, self.triggers(state)) from None
        finally:
            self._idle.append(token)  # list.append and pop are atomic
        return reached

    def _borrow(self) -> _Token:
        try:
            return self._idle.pop()
        except IndexError:
            token = _Token()
            with self._lock:
                self._machine.add_model(token, initial=self._workflow.initial.name)
            return token


def _edge(trigger: str, dest: str) -> str:
    """The machine's event for one destination of a trigger (a trigger may divert)."""
    return f"{trigger}->{dest}"
