"""A Hypothesis stateful test for ANY workflow: ``workflow_state_machine``.

It reports cases, fires random triggers by random actors with random payloads,
advances the clock, ticks the timers and restarts the engine over the same store, and
after every step checks the invariants of the closed loop (``docs/architecture.md``
lists them all, with the tests that hold each):

1. every case is in a declared state, reached by a declared transition;
2. a non-final case waits on its state's owner with its state's clock running; a
   final one waits on nobody, has no clock and no live timers;
3. the audit chain verifies and replaying it gives the stored case;
4. versions only increase, by one per change; a command expecting a stale version
   loses;
5. a timer never fires before its due time, nor twice; a tick leaves nothing due;
6. a refused command raises a ``ClosedLoopError`` and changes nothing (case, trail,
   timers); a refused report stores nothing, an accepted one keeps its text (NFC);
7. (``liveness``) nobody is stuck: for every open case someone is offered a trigger by
   ``Engine.allowed``, or its clock will fire an expiry action.

Any other exception (a bug in a guard, an effect, a store, the engine) fails the test,
and Hypothesis shrinks the steps that led to it.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from closedloop.engine.definition import Workflow
from closedloop.engine.model import Actor
from closedloop.engine.ports import CaseStore, DuePoint
from closedloop.engine.service import Engine
from closedloop.errors import ClosedLoopError
from closedloop.testing import invariants, strategies
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
    liveness: bool = True,
    engine_options: Mapping[str, Any] | None = None,
) -> type[RuleBasedStateMachine]:
    """Build a ``RuleBasedStateMachine`` class that fuzzes ``workflow``.

    Args:
        workflow: Any valid workflow definition.
        store_factory: Returns a fresh, empty store; called once per example.
        reopen: Returns a new store object over the same data as the one given, as a
            restarted process would open it; by default the same object is reused.
        directory: Optional ``Directory`` whose members join the actor pool.
        max_cases: How many cases one example may open.
        liveness: Check that no open case is stuck (see invariant 7). Turn it off for a
            workflow whose only way out of some state is opened by the payload, which
            ``Engine.allowed`` does not see.
        engine_options: More keyword arguments for ``Engine`` (``calendar``,
            ``responsibilities``, ``directory``, ...).

    Use it in a test module as ``TestMine = workflow_state_machine(...).TestCase``.
    """
    pool = strategies.actor_pool(workflow, directory)
    options = dict(engine_options or {})
    # Strategies are built once: building one costs more than drawing from it.
    triggers = {s.name: strategies.triggers(workflow, s.name) for s in workflow.states}
    payloads = {t.name: strategies.payloads(workflow, t) for t in workflow.transitions}

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
            self.final: set[str] = set()
            self.restarts = 0
            self.checked: set[tuple[str, int, int]] = set()
            self.moving: set[tuple[tuple[str, int, int], datetime]] = set()

        @initialize(reporter=st.sampled_from(pool))
        def first_report(self, reporter: Actor) -> None:
            self._report({"description": "A first, valid report"}, reporter)

        @precondition(lambda self: len(self.versions) < max_cases)
        @rule(report=strategies.reports(), reporter=st.sampled_from(pool))
        def report(self, report: dict[str, Any], reporter: Actor) -> None:
            self._report(report, reporter)

        @precondition(lambda self: bool(self.versions))
        @rule(
            data=st.data(),
            anyone=st.sampled_from(pool),
            fitting=st.integers(0, 9),
            check=st.sampled_from([None, None, None, "current", "stale"]),
        )
        def fire(self, data: st.DataObject, anyone: Actor, fitting: int, check: str | None) -> None:
            """One command: any trigger, mostly by someone entitled, any payload, maybe
            with an expected version (a stale one must lose)."""
            case_id = data.draw(self._cases(), label="case")
            stored = invariants.snapshot(self.engine, case_id).case
            name = data.draw(triggers[stored.state], label="trigger")
            transition = workflow.transition(name)
            actor = anyone
            if fitting:
                actor = data.draw(
                    strategies.fitting_actors(workflow, stored, transition, pool), label="actor"
                )
            payload = data.draw(payloads[name], label="payload")
            if check is not None:
                stale = check == "stale"
                expected = self.versions[case_id] - stale
                self._command(case_id, name, actor, payload, expected_version=expected)
            else:
                self._command(case_id, name, actor, payload)

        @precondition(lambda self: bool(set(self.versions) - self.final))
        @rule(data=st.data(), steps=st.integers(1, 8))
        def walk(self, data: st.DataObject, steps: int) -> None:
            """Several commands in a row by entitled actors: gets deep into the loop."""
            case_id = data.draw(self._cases(), label="case")
            for _ in range(steps):
                stored = invariants.snapshot(self.engine, case_id).case
                if workflow.state(stored.state).final:
                    return
                name = data.draw(triggers[stored.state], label="trigger")
                transition = workflow.transition(name)
                actor = data.draw(
                    strategies.fitting_actors(workflow, stored, transition, pool), label="actor"
                )
                payload = data.draw(payloads[name], label="payload")
                self._command(case_id, name, actor, payload)

        @rule(minutes=st.integers(min_value=1, max_value=60 * 24 * 12), then_tick=st.booleans())
        def advance_clock(self, minutes: int, then_tick: bool) -> None:
            self.clock.advance(timedelta(minutes=minutes))
            if then_tick:
                self.tick()

        @rule()
        def tick(self) -> None:
            """Fire what is due: versions may only go up, and nothing due is left."""
            self.engine.tick()
            now = self.clock.now()
            for case_id, version in self.versions.items():
                seen = invariants.snapshot(self.engine, case_id)
                case = seen.case
                assert case.version >= version, f"{case_id!r} went back to version {case.version}"
                self.versions[case_id] = case.version
                self._settle(case_id, case.state)
                # Only a timer whose firing was deferred (and stays leased) may be left due.
                left = [p.id for p in seen.due_points if p.due_at <= now and not _leased(p, now)]
                assert not left, f"a tick left timers due at {now.isoformat()}: {left}"

        @rule()
        def restart(self) -> None:
            if reopen is not None:
                old, self.store = self.store, reopen(self.store)
                if old is not self.store:  # the process that held it is gone, with its pool
                    _close(old)
            self.engine = self._engine()
            self.restarts += 1

        def teardown(self) -> None:
            _close(self.store)

        @invariant()
        def closed_loop_holds(self) -> None:
            # A case is checked again when its version, the store object (a restart)
            # or, for liveness, the time has changed: nothing else can change it.
            now = self.clock.now()
            for case_id, version in self.versions.items():
                key = (case_id, version, self.restarts)
                if key not in self.checked:
                    seen = invariants.check_case(self.engine, case_id, version=version)
                    invariants.check_timers(self.engine, case_id, seen)
                    self.checked.add(key)
                if liveness and (key, now) not in self.moving:
                    case = invariants.snapshot(self.engine, case_id).case
                    invariants.check_can_move(self.engine, case, pool, now=now)
                    self.moving.add((key, now))

        def _command(
            self,
            case_id: str,
            name: str,
            actor: Actor,
            payload: Any,
            expected_version: int | None = None,
        ) -> None:
            before = self._footprint(case_id)
            try:
                case = self.engine.trigger(
                    case_id, name, by=actor, expected_version=expected_version, **payload
                )
            except ClosedLoopError:
                assert self._footprint(case_id) == before, "a refused command changed the case"
                return
            stale = expected_version is not None and expected_version != before[0]
            assert not stale, f"a command expecting version {expected_version} won over {before[0]}"
            assert case.version == self.versions[case_id] + 1, "a change must add one version"
            assert case.state in workflow.destinations(workflow.transition(name))
            self.versions[case_id] = case.version
            self._settle(case_id, case.state)
            self._follow_others(case_id)

        def _follow_others(self, case_id: str) -> None:
            """Take in the versions a command wrote on other cases: a merge records the
            duplicate on its master, a master that ends tells its duplicates."""
            for other, version in self.versions.items():
                if other != case_id:
                    stored = invariants.snapshot(self.engine, other).case.version
                    assert stored >= version, f"{other!r} went back to version {stored}"
                    self.versions[other] = stored

        def _settle(self, case_id: str, state: str) -> None:
            if workflow.state(state).final:
                self.final.add(case_id)

        def _cases(self) -> st.SearchStrategy[str]:
            """A case id: nine times in ten an open case, if there is one."""
            every = st.sampled_from(sorted(self.versions))
            open_ = sorted(set(self.versions) - self.final)
            return st.one_of(*[st.sampled_from(open_)] * 9, every) if open_ else every

        def _engine(self) -> Engine:
            return Engine(
                workflow, store=self.store, clock=self.clock, id_factory=self.new_id, **options
            )

        def _report(self, report: dict[str, Any], reporter: Actor) -> None:
            known = set(self.store.case_ids())
            try:
                case = self.engine.report(reporter, **report)
            except ClosedLoopError:
                assert set(self.store.case_ids()) == known, "a refused report was stored"
                return
            assert case.version == 1
            assert case.state == workflow.initial.name
            assert case.description == unicodedata.normalize("NFC", report["description"])
            self.versions[case.id] = case.version

        def _footprint(self, case_id: str) -> tuple[int, str, int, tuple[str, ...]]:
            seen = invariants.snapshot(self.engine, case_id)
            points = tuple(p.id for p in seen.due_points)
            return seen.case.version, seen.case.state, len(seen.events), points

    WorkflowMachine.__name__ = f"{workflow.name.title().replace('_', '')}Machine"
    return WorkflowMachine


def _leased(point: DuePoint, now: datetime) -> bool:
    return point.lease_expires_at is not None and point.lease_expires_at > now


def _close(store: CaseStore) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()
