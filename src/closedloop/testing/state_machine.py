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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from closedloop.engine.definition import TransitionSpec, Workflow
from closedloop.engine.model import Actor, Case
from closedloop.engine.ports import CaseStore
from closedloop.engine.service import Engine
from closedloop.errors import ClosedLoopError, ValidationError
from closedloop.testing import invariants, permissions, steering, strategies
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
    extra_invariants: Sequence[Invariant] = (),
    report_coverage: bool = False,
    field_values: Mapping[str, st.SearchStrategy[Any]] | None = None,
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
        extra_invariants: Your own checks, run after every step with a read-only
            :class:`MachineView`; each raises ``AssertionError`` when its rule is broken.
        report_coverage: Print, after the test, which (state, trigger) pairs the run
            fired and how often (the class's ``coverage`` holds the counts either way).
        field_values: A Hypothesis strategy for a payload field, by field name, used
            for that field in every trigger that declares it, in valid and random
            payloads alike, instead of the defaults of its type (``docs/testing.md``
            lists them). Give it the values your guards decide on: a budget check
            ``cost <= 1000`` needs costs above 1000, which the default ``int`` values
            never reach.

    Raises:
        ValidationError: ``field_values`` names a field no trigger declares, or gives
            something that is not a Hypothesis strategy.

    Use it in a test module as ``TestMine = workflow_state_machine(...).TestCase``.
    """
    chosen = _field_values(workflow, field_values)
    pool = strategies.actor_pool(workflow, directory)
    options = dict(engine_options or {})
    # Strategies are built once: building one costs more than drawing from it.
    triggers = {s.name: strategies.triggers(workflow, s.name) for s in workflow.states}
    payloads = {t.name: strategies.payloads(workflow, t, chosen) for t in workflow.transitions}
    coverage = Coverage(workflow)
    words = replace(steering.vocabulary(options), field_values=chosen)
    steer = steering.Steering(workflow)
    valid_reports = steering.valid_reports(words)
    tour_steps = 2 * len(steer.pairs)
    hard = steer.hard
    declared = {
        s.name: [t.name for t in workflow.transitions_from(s.name)] for s in workflow.states
    }

    def _may(case: Case, actor: Actor, transition: TransitionSpec) -> bool:
        return permissions.may_act(workflow, case, actor, transition)

    def _intruders(case: Case, transition: TransitionSpec) -> st.SearchStrategy[Actor] | None:
        """Actors the declared rules do not allow to fire ``transition`` on ``case``:
        two times in three a party to the case, where a wrong rule is likeliest."""
        barred = [a for a in permissions.parties(workflow, case) if not _may(case, a, transition)]
        others = [a for a in pool if not _may(case, a, transition)]
        if barred and others:
            return strategies.weighted((2, st.sampled_from(barred)), (1, st.sampled_from(others)))
        return st.sampled_from(barred or others) if barred or others else None

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
            self.fired: set[tuple[str, str]] = set()
            self.aims: list[tuple[str, str]] = []
            self.tries: dict[tuple[str, str], int] = {}
            self.deferred: set[str] = set()  # timers a tick left for later (any engine)

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
            """One command: any trigger, mostly by someone entitled, now and then by a
            party to the case (reporter, unit members, role holders inside the lead unit,
            a stranger), any payload, maybe with an expected version (a stale one must
            lose)."""
            case_id = data.draw(self._cases(), label="case")
            stored = invariants.snapshot(self.engine, case_id).case
            name = data.draw(self._trigger(stored.state), label="trigger")
            transition = workflow.transition(name)
            actor = anyone
            if fitting in (1, 2):
                actor = data.draw(
                    st.sampled_from(permissions.parties(workflow, stored)), label="actor"
                )
            elif fitting:
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
        @rule(data=st.data())
        def intrude(self, data: st.DataObject) -> None:
            """A trigger of the case's state fired by someone the declared rules do not
            allow (a party to the case, a role holder barred as a party, a stranger):
            it must be refused for permission and write nothing."""
            case_id = data.draw(self._cases(), label="case")
            stored = invariants.snapshot(self.engine, case_id).case
            if not declared[stored.state]:
                return
            name = data.draw(st.sampled_from(declared[stored.state]), label="trigger")
            transition = workflow.transition(name)
            intruders = _intruders(stored, transition)
            if intruders is not None:
                actor = data.draw(intruders, label="actor")
                self._command(case_id, name, actor, data.draw(payloads[name], label="payload"))

        @initialize(data=st.data(), steps=st.integers(0, tour_steps))
        def tour(self, data: st.DataObject, steps: int) -> None:
            """Before the random steps: commands by entitled actors with valid payloads,
            steered towards the (state, trigger) pairs this example has not fired, on
            the case nearest to one, reporting a new case when every case has ended.
            Each example aims at the pairs in an order of its own (``aims``, the first
            most often a deep one or one that ends the case), giving one up after three
            tries."""
            first = data.draw(st.sampled_from(hard), label="first aim")
            self.aims = [first, *data.draw(st.permutations(steer.pairs), label="aims")]
            for _ in range(steps):
                opened = len(self.versions) < max_cases
                if not set(self.versions) - self.final:
                    if not opened:
                        return
                    report = data.draw(valid_reports, label="report")
                    self._report(report, data.draw(st.sampled_from(pool), label="reporter"))
                    continue
                own = self._own_reporter()
                if own is not None and opened:
                    # The aim is open only to its reporter: report a case as its holder.
                    self._report(data.draw(valid_reports, label="report"), own)
                    continue
                self._steered_command(data, data.draw(self._steered_case(), label="case"))
                # After every command, as between rules; a case the tour moved on was
                # not stuck, so liveness waits for the end of the tour.
                self._hold(moving=False)

        @precondition(lambda self: bool(set(self.versions) - self.final))
        @rule(data=st.data(), steps=st.integers(1, 8))
        def walk(self, data: st.DataObject, steps: int) -> None:
            """Several commands in a row on one case, steered as in ``tour``: gets deep
            into the loop."""
            case_id = data.draw(self._steered_case(), label="case")
            for _ in range(steps):
                if not self._steered_command(data, case_id):
                    return

        @precondition(lambda self: len(self.versions) < max_cases)
        @rule(report=valid_reports, reporter=st.sampled_from(pool))
        def report_valid(self, report: dict[str, Any], reporter: Actor) -> None:
            """A report the responsibility list can route (a category and area it names)."""
            self._report(report, reporter)

        @rule(minutes=st.integers(min_value=1, max_value=60 * 24 * 12), then_tick=st.booleans())
        def advance_clock(self, minutes: int, then_tick: bool) -> None:
            self.clock.advance(timedelta(minutes=minutes))
            if then_tick:
                self.tick()

        @rule(early=st.sampled_from([timedelta(0), timedelta(seconds=1), timedelta(minutes=1)]))
        def to_next_due(self, early: timedelta) -> None:
            """Jump to the next timer's due instant, or just short of it, and tick: a
            timer must fire at its instant, not a second before."""
            due = self.engine.next_due_at()
            if due is not None and due - early > self.clock.now():
                self.clock.set(due - early)
            self.tick()

        @rule()
        def tick(self) -> None:
            """Fire what is due: versions may only go up, and nothing due is left."""
            self.engine.tick()
            now = self.clock.now()
            self.deferred.update(s.point.id for s in self.engine.stuck_timers())
            snapshots = []
            for case_id, version in self.versions.items():
                seen = invariants.snapshot(self.engine, case_id)
                snapshots.append(seen)
                case = seen.case
                assert case.version >= version, f"{case_id!r} went back to version {case.version}"
                self.versions[case_id] = case.version
                self._settle(case_id, case.state)
                # Only a timer whose firing was deferred (its case stays leased) may be
                # left due.
                left = [
                    p.id for p in seen.due_points if p.due_at <= now and p.id not in self.deferred
                ]
                assert not left, f"a tick left timers due at {now.isoformat()}: {left}"
            invariants.check_next_due(self.engine.next_due_at(), snapshots)

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
            self._hold(liveness)

        def _hold(self, moving: bool) -> None:
            """The invariants, with liveness when ``moving``."""
            # A case is checked again when its version, the store object (a restart)
            # or, for liveness, the time has changed: nothing else can change it.
            now = self.clock.now()
            for case_id, version in self.versions.items():
                key = (case_id, version, self.restarts)
                if key not in self.checked:
                    seen = invariants.check_case(self.engine, case_id, version=version)
                    invariants.check_timers(self.engine, case_id, seen)
                    self.checked.add(key)
                if moving and (key, now) not in self.moving:
                    case = invariants.snapshot(self.engine, case_id).case
                    invariants.check_can_move(
                        self.engine,
                        case,
                        [*pool, *permissions.parties(workflow, case)],
                        now=now,
                        later=self._engine_at,
                    )
                    self.moving.add((key, now))
            if extra_invariants:
                view = MachineView(
                    workflow=workflow,
                    engine=self.engine,
                    cases=MappingProxyType(
                        {c: invariants.snapshot(self.engine, c).case for c in self.versions}
                    ),
                    versions=MappingProxyType(dict(self.versions)),
                    clock=self.clock,
                )
                for check in extra_invariants:
                    check(view)

        def _command(
            self,
            case_id: str,
            name: str,
            actor: Actor,
            payload: Any,
            expected_version: int | None = None,
        ) -> None:
            seen = invariants.snapshot(self.engine, case_id)
            before = _footprint(seen)
            transition = workflow.transition(name)
            try:
                case = self.engine.trigger(
                    case_id, name, by=actor, expected_version=expected_version, **payload
                )
            except ClosedLoopError as refused:
                after = _footprint(invariants.snapshot(self.engine, case_id))
                assert after == before, "a refused command changed the case"
                permissions.check_permission(workflow, seen.case, actor, transition, refused)
                return
            permissions.check_permission(workflow, seen.case, actor, transition, None)
            coverage.record(seen.case.state, name)
            self.fired.add((seen.case.state, name))
            event(f"trigger {name}")
            event(f"{seen.case.state} -> {name}")
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

        def _trigger(self, state: str) -> st.SearchStrategy[str]:
            """A trigger for a case in ``state``: half the time one this example has not
            yet fired from it, while there is one (steering towards rare pairs; what
            earlier examples fired must not change how this one draws)."""
            unreached = [t for t in declared[state] if (state, t) not in self.fired]
            if not unreached:
                return triggers[state]
            return strategies.weighted((1, st.sampled_from(unreached)), (1, triggers[state]))

        def _steered(self, state: str) -> st.SearchStrategy[str]:
            """A trigger from ``state`` towards what this example has not fired (nine
            times in ten), or any trigger ``triggers`` would draw."""
            toward = st.sampled_from(steer.toward(state, self.fired, self._aim()))
            return strategies.weighted((9, toward), (1, triggers[state]))

        def _own_reporter(self) -> Actor | None:
            """The holder of a role that acts only on its own reports (a global role
            without ``sees_all``), when the aim is open only to it and no new case of
            theirs is waiting for it."""
            aim = self._aim()
            if aim is None or aim[0] != workflow.initial.name:
                return None
            roles = steer.own_roles.get(aim[1], ())
            if not roles:
                return None
            holder = Actor(f"{roles[0]}-1", roles=frozenset({roles[0]}))
            for case_id in sorted(set(self.versions) - self.final):
                case = invariants.snapshot(self.engine, case_id).case
                if case.reporter_id == holder.id and case.state == aim[0]:
                    return None
            return holder

        def _aim(self) -> tuple[str, str] | None:
            """The first pair of ``aims`` neither fired yet nor given up (after eight
            steered commands spent on it)."""
            aimed = (p for p in self.aims if p not in self.fired and self.tries.get(p, 0) < 8)
            return next(aimed, None)

        def _steered_command(self, data: st.DataObject, case_id: str) -> bool:
            """One command on the case towards what this example has not fired; false
            when the case has ended."""
            stored = invariants.snapshot(self.engine, case_id).case
            if workflow.state(stored.state).final:
                return False
            aim = self._aim()
            if aim is not None:
                self.tries[aim] = self.tries.get(aim, 0) + 1
            name = data.draw(self._steered(stored.state), label="trigger")
            transition = workflow.transition(name)
            actor = data.draw(
                strategies.fitting_actors(workflow, stored, transition, pool), label="actor"
            )
            others = sorted(set(self.versions) - self.final - {case_id})
            if transition.merges_into and not others and len(self.versions) < max_cases:
                # A merge needs another open case to merge into: report one first.
                self._report({"description": "The same again"}, pool[-1])
                others = sorted(set(self.versions) - self.final - {case_id})
            now = self.clock.now()
            valid = steering.valid_payloads(workflow, transition, stored, words, others, now)
            mostly_valid = strategies.weighted((9, valid), (1, payloads[name]))
            payload = data.draw(mostly_valid, label="payload")
            intruders = _intruders(stored, transition)
            first = strategies.weighted((1, st.just(False)), (3, st.just(True)))
            if intruders is not None and data.draw(first, label="intruder first"):
                # The same command by someone the rules do not allow: it must be refused.
                self._command(case_id, name, data.draw(intruders, label="intruder"), payload)
            self._command(case_id, name, actor, payload)
            return True

        def _steered_case(self) -> st.SearchStrategy[str]:
            """An open case, most often one whose state is nearest to a (state, trigger)
            pair this example has not fired."""
            open_ = sorted(set(self.versions) - self.final)
            states = {c: invariants.snapshot(self.engine, c).case.state for c in open_}
            aim = self._aim()
            distance = steer.distances(self.fired if aim is None else set(steer.pairs) - {aim})
            near = min((distance.get(s, len(declared)) for s in states.values()), default=0)
            nearest = [c for c in open_ if distance.get(states[c], len(declared)) == near]
            if not nearest:
                return self._cases()
            return strategies.weighted((3, st.sampled_from(nearest)), (1, self._cases()))

        def _cases(self) -> st.SearchStrategy[str]:
            """A case id: nine times in ten an open case, if there is one."""
            every = st.sampled_from(sorted(self.versions))
            open_ = sorted(set(self.versions) - self.final)
            return strategies.weighted((9, st.sampled_from(open_)), (1, every)) if open_ else every

        def _engine_at(self, instant: datetime) -> Engine:
            """An engine over the same store whose clock reads ``instant`` (for asking
            who could act later; it never writes)."""
            return Engine(workflow, store=self.store, clock=ManualClock(instant), **options)

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

    WorkflowMachine.__name__ = f"{workflow.name.title().replace('_', '')}Machine"
    WorkflowMachine.coverage = coverage
    if report_coverage:
        base: Any = WorkflowMachine.TestCase

        class ReportingTestCase(base):  # type: ignore[misc]
            def runTest(self) -> None:
                try:
                    super().runTest()
                finally:
                    print(coverage.table())

        WorkflowMachine.TestCase = ReportingTestCase  # type: ignore[assignment]
    return WorkflowMachine


@dataclass(frozen=True, slots=True)
class MachineView:
    """What an ``extra_invariants`` check receives after every step; read it, never write.

    Attributes:
        workflow: The workflow under test.
        engine: The engine the machine drives (ask it ``get``, ``history``, ``allowed``,
            ``verify``; do not fire triggers or tick).
        cases: Every case the run opened, as its store holds it now, by id.
        versions: The version each case was at after the last step, by id.
        clock: The manual clock; ``clock.now()`` is the present instant.
    """

    workflow: Workflow
    engine: Engine
    cases: Mapping[str, Case]
    versions: Mapping[str, int]
    clock: ManualClock


Invariant = Callable[[MachineView], None]
"""A check of your own: raises ``AssertionError`` when the rule it holds is broken."""


class Coverage:
    """How often each (state, trigger) pair fired successfully, over every example of
    one machine class; ``reachable`` pairs are those the workflow declares."""

    def __init__(self, workflow: Workflow) -> None:
        self.declared: list[tuple[str, str]] = [
            (state.name, t.name)
            for state in workflow.states
            for t in workflow.transitions_from(state.name)
        ]
        self.counts: dict[tuple[str, str], int] = dict.fromkeys(self.declared, 0)

    def record(self, state: str, trigger: str) -> None:
        self.counts[(state, trigger)] = self.counts.get((state, trigger), 0) + 1

    def missed(self) -> list[tuple[str, str]]:
        """Declared pairs that never fired."""
        return [pair for pair in self.declared if self.counts[pair] == 0]

    def table(self) -> str:
        """A plain-text table: state, trigger, times fired; then the pairs missed."""
        width = max((len(s) for s, _ in self.declared), default=5)
        tw = max((len(t) for _, t in self.declared), default=7)
        lines = [f"{'state':<{width}}  {'trigger':<{tw}}  fired"]
        lines += [f"{s:<{width}}  {t:<{tw}}  {self.counts[(s, t)]:>5}" for s, t in self.declared]
        reached = len(self.declared) - len(self.missed())
        lines.append(f"{reached} of {len(self.declared)} (state, trigger) pairs fired")
        return "\n".join(lines)


def _close(store: CaseStore) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _footprint(seen: invariants.Snapshot) -> tuple[int, str, int, tuple[str, ...]]:
    return (
        seen.case.version,
        seen.case.state,
        len(seen.events),
        tuple(p.id for p in seen.due_points),
    )


def _field_values(
    workflow: Workflow, given: Mapping[str, st.SearchStrategy[Any]] | None
) -> dict[str, st.SearchStrategy[Any]]:
    """``given``, checked: every name a field some trigger declares, every value a
    strategy."""
    chosen = dict(given or {})
    declared = sorted({name for t in workflow.transitions for name in t.fields})
    problems = [
        (name, f"is not a field of any trigger of {workflow.name!r}; fields: {', '.join(declared)}")
        for name in sorted(set(chosen) - set(declared))
    ]
    problems += [
        (name, f"must be a Hypothesis strategy (such as st.integers(0, 5000)), not {value!r}")
        for name, value in sorted(chosen.items())
        if not isinstance(value, st.SearchStrategy)
    ]
    if problems:
        raise ValidationError(problems, subject="field_values")
    return chosen
