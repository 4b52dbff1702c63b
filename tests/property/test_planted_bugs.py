"""The generated state machine catches planted bugs: the test passes only if the kit FAILS.

Each planted bug is a small, test-only change to a working part: a store that loses an
audit event, one that forgets to bump the version, one that never cancels a closed
case's timer, one that reads events back out of order, a sweep that fires timers early
(a month, or one minute), a guard that raises a plain exception, and two permission
bugs in the engine's command path (the handling unit may confirm its own case; anyone
who sees a case may dispatch it). Each is caught within the ``ci`` profile's budget of examples;
``benchmarks/bench_testing.py`` prints how quickly.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from closedloop import Registry, Workflow, workflows
from closedloop.adapters.memory import InMemoryStore, InMemoryTransaction
from closedloop.engine.context import Context
from closedloop.engine.definition import TransitionSpec
from closedloop.engine.model import Actor, AuditEvent, Case
from closedloop.engine.ports import CaseStore, DuePoint, TimerClaim
from closedloop.engine.ticking import TimerSweep
from closedloop.engine.writer import CaseWriter
from closedloop.testing import workflow_state_machine
from closedloop.testing.profiles import CI_EXAMPLES

Authorise = Callable[[CaseWriter, Case, TransitionSpec, Actor], str]

# -- planted store bugs ------------------------------------------------------------------


class DroppingTransaction(InMemoryTransaction):
    """Loses the audit event of every case's third change."""

    def update_case(
        self, case: Case, expected_version: int, event: AuditEvent, **timers: Any
    ) -> None:
        super().update_case(case, expected_version, event, **timers)
        if event.seq == 3:
            self.staged.events[case.id].pop()


class StuckVersionTransaction(InMemoryTransaction):
    """Stores every change under the version it replaces."""

    def update_case(
        self, case: Case, expected_version: int, event: AuditEvent, **timers: Any
    ) -> None:
        stuck = case.model_copy(update={"version": expected_version})
        super().update_case(stuck, expected_version, event, **timers)


class ReorderingTransaction(InMemoryTransaction):
    """Reads a case's events back with the second and third swapped."""

    def get_events(self, case_id: str) -> list[AuditEvent]:
        events = list(super().get_events(case_id))
        if len(events) >= 3:
            events[1], events[2] = events[2], events[1]
        return events


class NeverCancelsTransaction(InMemoryTransaction):
    """Keeps a case's timer instant when told it has no timer left (as when it closes)."""

    def update_case(
        self,
        case: Case,
        expected_version: int,
        event: AuditEvent,
        *,
        next_timer_at: datetime | None = None,
        claim: TimerClaim | None = None,
    ) -> None:
        super().update_case(case, expected_version, event, next_timer_at=next_timer_at, claim=claim)
        if next_timer_at is None:
            del self.staged.timers[case.id]


def store_with(transaction: type[InMemoryTransaction]) -> type[InMemoryStore]:
    class PlantedStore(InMemoryStore):
        def transaction(self, *, read_only: bool = False) -> InMemoryTransaction:
            return transaction(self._records)

    return PlantedStore


def claims_early_by(slack: timedelta) -> type[InMemoryStore]:
    """A store that hands out cases ``slack`` before their earliest timer is due."""

    class EarlyClaimsStore(InMemoryStore):
        def claim_due(
            self,
            now: datetime,
            *,
            owner: str,
            lease: timedelta,
            limit: int,
            workflow: str | None = None,
        ) -> list[TimerClaim]:
            return super().claim_due(
                now + slack, owner=owner, lease=lease, limit=limit, workflow=workflow
            )

    return EarlyClaimsStore


def kit_run(machine: type[RuleBasedStateMachine], examples: int = CI_EXAMPLES) -> None:
    """Run the machine; no shrinking, which is slow on long programs and beside the point."""
    chosen = settings(
        settings.default,
        max_examples=examples,
        stateful_step_count=30,
        report_multiple_bugs=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    run_state_machine_as_test(machine, settings=chosen)


@pytest.mark.parametrize(
    ("store", "complaint"),
    [
        (store_with(DroppingTransaction), "audit trail does not verify"),
        (store_with(StuckVersionTransaction), "version"),
        (store_with(NeverCancelsTransaction), "the store's next timer is due at"),
        (store_with(ReorderingTransaction), "audit trail does not verify"),
    ],
    ids=[
        "drops-an-audit-event",
        "forgets-the-version",
        "never-cancels-timers",
        "reorders-events",
    ],
)
def test_a_planted_store_bug_is_reported(store: type[CaseStore], complaint: str) -> None:
    machine = workflow_state_machine(workflows.standard(), store_factory=store)
    with pytest.raises(AssertionError, match=complaint):
        kit_run(machine)


def test_the_same_machine_passes_on_the_real_store() -> None:
    """The planted-bug tests are not failing for some other reason."""
    kit_run(workflow_state_machine(workflows.standard(), store_factory=InMemoryStore), 10)


# -- planted timer bugs in the engine ----------------------------------------------------

DueNow = Callable[[TimerSweep, Case, datetime], list[DuePoint]]


def due_early_by(slack: timedelta) -> DueNow:
    def due_now(self: TimerSweep, case: Case, now: datetime) -> list[DuePoint]:
        return [p for p in self._clocks.due_points(case) if p.due_at <= now + slack]

    return due_now


@pytest.mark.parametrize(
    "slack", [timedelta(days=30), timedelta(minutes=1)], ids=["early-timers", "a-minute-early"]
)
def test_a_planted_early_timer_bug_is_reported(
    slack: timedelta, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sweep trusts its claims, and the store hands them out early.
    monkeypatch.setattr(TimerSweep, "_due_now", due_early_by(slack))
    store = claims_early_by(slack)
    machine = workflow_state_machine(workflows.standard(), store_factory=store)
    with pytest.raises(AssertionError, match="before it was due"):
        kit_run(machine)


# -- a planted guard bug -----------------------------------------------------------------


def inspected(ctx: Context) -> str | None:
    """Buggy: reads a record that does not exist until someone inspects."""
    return None if ctx.case.attributes["inspection"]["passed"] else "the inspection failed"


INSPECTION = {
    "name": "inspection",
    "roles": [{"name": "inspector", "sees_all": True}],
    "clocks": [{"name": "inspect", "duration": "2 days"}],
    "states": [
        {"name": "waiting", "initial": True, "owner": "inspector", "clock": "inspect"},
        {"name": "passed", "final": True},
    ],
    "transitions": [
        {"name": "pass", "from": ["waiting"], "to": "passed", "roles": ["inspector"]},
        {
            "name": "pass_inspected",
            "from": ["waiting"],
            "to": "passed",
            "roles": ["inspector"],
            "guards": ["inspected"],
        },
    ],
}


def test_a_guard_raising_a_plain_exception_is_reported() -> None:
    workflow = Workflow.from_dict(
        INSPECTION, registry=Registry.default().extended(guards={"inspected": inspected})
    )
    machine = workflow_state_machine(workflow, store_factory=InMemoryStore)
    with pytest.raises(KeyError, match="inspection"):
        kit_run(machine)


# -- planted permission bugs in the engine ---------------------------------------------


SHORT_LOOP = {
    "name": "short_loop",
    "roles": [
        {"name": "dispatcher", "sees_all": True},
        {"name": "verifier", "sees_all": True},
        {"name": "reporter", "kind": "reporter"},
        {"name": "assignee", "kind": "lead_unit"},
    ],
    "clocks": [{"name": "day", "duration": "1 days"}],
    "states": [
        {"name": "reported", "initial": True, "owner": "dispatcher", "clock": "day"},
        {"name": "handling", "owner": "assignee", "clock": "day"},
        {"name": "confirming", "owner": "reporter", "clock": "day"},
        {"name": "closed", "final": True},
    ],
    "transitions": [
        {
            "name": "dispatch",
            "from": ["reported"],
            "to": "handling",
            "roles": ["dispatcher"],
            "fields": {"unit": {"type": "code", "required": True}},
            "sets": {"lead_unit": "unit"},
        },
        {"name": "finish", "from": ["handling"], "to": "confirming", "roles": ["assignee"]},
        {
            "name": "confirm",
            "from": ["confirming"],
            "to": "closed",
            "roles": ["reporter", "verifier"],
            "role_rules": [{"not_party": True, "roles": ["verifier"]}],
        },
    ],
}
"""A short loop (dispatch, finish, confirm) on which the kit's examples reach every step
often: the permission bugs below are in the engine, whatever the workflow."""


def handling_unit_may_confirm(original: Authorise) -> Authorise:
    def authorise(self: CaseWriter, case: Case, transition: TransitionSpec, actor: Actor) -> str:
        if transition.name == "confirm" and case.lead_unit in actor.units:
            return "reporter"  # buggy: the unit that did the work confirms it was done
        return original(self, case, transition, actor)

    return authorise


def anyone_may_dispatch(original: Authorise) -> Authorise:
    def authorise(self: CaseWriter, case: Case, transition: TransitionSpec, actor: Actor) -> str:
        if transition.name == "dispatch":
            return "dispatcher"  # buggy: whoever sees the case may dispatch it
        return original(self, case, transition, actor)

    return authorise


@pytest.mark.parametrize(
    ("bug", "complaint"),
    [
        (handling_unit_may_confirm, r"firing 'confirm' changed the case, but the rules"),
        (anyone_may_dispatch, r"firing 'dispatch' changed the case, but the rules"),
    ],
    ids=["handling-unit-confirms", "stranger-dispatches"],
)
def test_a_planted_permission_bug_is_reported(
    bug: Callable[[Authorise], Authorise], complaint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CaseWriter, "authorise", bug(CaseWriter.authorise))
    machine = workflow_state_machine(Workflow.from_dict(SHORT_LOOP), store_factory=InMemoryStore)
    with pytest.raises(AssertionError, match=complaint):
        # Within the ci budget: the steered tour tries each command by an intruder too.
        kit_run(machine)
