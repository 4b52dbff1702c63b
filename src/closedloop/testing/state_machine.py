"""A Hypothesis stateful test for ANY workflow: ``workflow_state_machine``.

It reports cases, fires random triggers by random actors with random payloads,
advances the clock and restarts the engine over the same store, and after every step
checks the invariants of the closed loop:

1. every case is in a declared state;
2. a refused command raises a ``ClosedLoopError`` and changes nothing;
3. versions only increase, by one per change;
4. the audit chain verifies and replaying it gives the stored case;
5. a non-final case has an owner who must act and a running clock; a final one has none.

Any other exception (a bug in a guard, a store, the engine) fails the test, and
Hypothesis shrinks the steps that led to it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from closedloop.engine.definition import Workflow
from closedloop.engine.model import Actor
from closedloop.engine.ports import CaseStore
from closedloop.engine.service import Engine
from closedloop.errors import ClosedLoopError
from closedloop.testing import strategies
from closedloop.testing.clock import ManualClock

StoreFactory = Callable[[], CaseStore]
Reopen = Callable[[CaseStore], CaseStore]


def workflow_state_machine(
    workflow: Workflow,
    *,
    store_factory: StoreFactory,
    reopen: Reopen | None = None,
    directory: Any = None,
    max_cases: int = 6,
) -> type[RuleBasedStateMachine]:
    """Build a ``RuleBasedStateMachine`` class that fuzzes ``workflow``.

    Args:
        workflow: Any valid workflow definition.
        store_factory: Returns a fresh, empty store; called once per example.
        reopen: Returns a new store object over the same data as the one given, as a
            restarted process would open it; by default the same object is reused.
        directory: Optional ``Directory`` whose members join the actor pool.
        max_cases: How many cases one example may open.

    Use it in a test module as ``TestMine = workflow_state_machine(...).TestCase``.
    """
    pool = strategies.actor_pool(workflow, directory)

    class WorkflowMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = ManualClock()
            self.store = store_factory()
            # Deterministic ids: Hypothesis must draw the same way when it replays.
            numbers = itertools.count(1)
            self.new_id = lambda: f"case-{next(numbers)}"
            self.engine = self._engine()
            self.versions: dict[str, int] = {}

        @initialize(reporter=st.sampled_from(pool))
        def first_report(self, reporter: Actor) -> None:
            self._report({"description": "A first, valid report"}, reporter)

        @precondition(lambda self: len(self.versions) < max_cases)
        @rule(report=strategies.reports(), reporter=st.sampled_from(pool))
        def report(self, report: dict[str, Any], reporter: Actor) -> None:
            self._report(report, reporter)

        @precondition(lambda self: bool(self.versions))
        @rule(data=st.data(), anyone=st.sampled_from(pool), fitting=st.integers(0, 9))
        def fire(self, data: st.DataObject, anyone: Actor, fitting: int) -> None:
            """One command: any trigger, mostly by someone entitled, any payload."""
            case_id = data.draw(st.sampled_from(list(self.versions)), label="case")
            stored = _stored(self.engine, case_id)
            name = data.draw(strategies.triggers(workflow, stored.state), label="trigger")
            transition = workflow.transition(name)
            actor = anyone
            if fitting:
                actor = data.draw(strategies.fitting_actors(workflow, stored, transition, pool))
            payload = data.draw(strategies.payloads(workflow, transition), label="payload")
            self._command(case_id, name, actor, payload)

        @precondition(lambda self: bool(self.versions))
        @rule(data=st.data(), steps=st.integers(1, 8))
        def walk(self, data: st.DataObject, steps: int) -> None:
            """Several commands in a row by entitled actors: gets deep into the loop."""
            case_id = data.draw(st.sampled_from(list(self.versions)), label="case")
            for _ in range(steps):
                stored = _stored(self.engine, case_id)
                if workflow.state(stored.state).final:
                    return
                name = data.draw(strategies.triggers(workflow, stored.state), label="trigger")
                transition = workflow.transition(name)
                actor = data.draw(strategies.fitting_actors(workflow, stored, transition, pool))
                payload = data.draw(strategies.payloads(workflow, transition), label="payload")
                self._command(case_id, name, actor, payload)

        @rule(minutes=st.integers(min_value=1, max_value=60 * 24 * 12))
        def advance_clock(self, minutes: int) -> None:
            self.clock.advance(timedelta(minutes=minutes))

        @rule()
        def restart(self) -> None:
            self.store = reopen(self.store) if reopen else self.store
            self.engine = self._engine()

        @invariant()
        def closed_loop_holds(self) -> None:
            for case_id, version in self.versions.items():
                report = self.engine.verify(case_id)
                assert report.ok, report.problems
                assert report.events == version, "versions must never go back"
                events = self.engine.history(case_id)
                case = _stored(self.engine, case_id)
                state = workflow.state(case.state)  # KeyError: an undeclared state
                assert events[-1].to_state == case.state
                if state.final:
                    assert case.deadline is None, "a final case has a running clock"
                    assert case.waiting_on is None, "a final case waits on someone"
                else:
                    assert case.waiting_on == state.owner, "a waiting case has no owner"
                    assert case.deadline is not None, "a waiting case has no clock"
                    assert case.deadline.clock == state.clock

        def _command(self, case_id: str, name: str, actor: Actor, payload: Any) -> None:
            before = self._footprint(case_id)
            try:
                case = self.engine.trigger(case_id, name, by=actor, **payload)
            except ClosedLoopError:
                assert self._footprint(case_id) == before, "a refused command changed the case"
                return
            assert case.version == self.versions[case_id] + 1, "a change must add one version"
            assert case.state == workflow.transition(name).dest
            self.versions[case_id] = case.version

        def _engine(self) -> Engine:
            return Engine(workflow, store=self.store, clock=self.clock, id_factory=self.new_id)

        def _report(self, report: dict[str, Any], reporter: Actor) -> None:
            known = set(self.store.case_ids())
            try:
                case = self.engine.report(reporter, **report)
            except ClosedLoopError:
                assert set(self.store.case_ids()) == known, "a refused report was stored"
                return
            assert case.version == 1
            assert case.state == workflow.initial.name
            self.versions[case.id] = case.version

        def _footprint(self, case_id: str) -> tuple[int, str, int]:
            case = _stored(self.engine, case_id)
            return case.version, case.state, len(self.engine.history(case_id))

    WorkflowMachine.__name__ = f"{workflow.name.title().replace('_', '')}Machine"
    return WorkflowMachine


def _stored(engine: Engine, case_id: str) -> Any:
    with engine.store.transaction() as tx:
        case = tx.get_case(case_id)
    assert case is not None, f"case {case_id} vanished from the store"
    return case
