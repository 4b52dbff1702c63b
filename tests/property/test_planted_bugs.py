"""The generated state machine catches planted bugs: the test passes only if the kit FAILS.

Each planted bug is a small, test-only change to a working part: a store that loses an
audit event, one that forgets to bump the version, one that fires timers early, one
that never cancels timers, and a guard that raises a plain exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from closedloop import Registry, Workflow, workflows
from closedloop.adapters.memory import InMemoryStore, InMemoryTransaction
from closedloop.engine.context import Context
from closedloop.engine.model import AuditEvent, Case
from closedloop.engine.ports import CaseStore, DuePoint
from closedloop.testing import workflow_state_machine

# -- planted store bugs ------------------------------------------------------------------


class DroppingTransaction(InMemoryTransaction):
    """Loses the audit event of every case's third change."""

    def update_case(self, case: Case, expected_version: int, event: AuditEvent) -> None:
        super().update_case(case, expected_version, event)
        if event.seq == 3:
            self.staged.events[case.id].pop()


class StuckVersionTransaction(InMemoryTransaction):
    """Stores every change under the version it replaces."""

    def update_case(self, case: Case, expected_version: int, event: AuditEvent) -> None:
        stuck = case.model_copy(update={"version": expected_version})
        super().update_case(stuck, expected_version, event)


class NeverCancelsTransaction(InMemoryTransaction):
    """Keeps a case's timers when told it has none left (as when it closes)."""

    def replace_due_points(self, case_id: str, points: Sequence[DuePoint]) -> None:
        if points:
            super().replace_due_points(case_id, points)


def store_with(transaction: type[InMemoryTransaction]) -> type[InMemoryStore]:
    class PlantedStore(InMemoryStore):
        def transaction(self, *, read_only: bool = False) -> InMemoryTransaction:
            return transaction(self._records)

    return PlantedStore


class EarlyTimersStore(InMemoryStore):
    """Hands out timers a month before they are due."""

    def claim_due(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int
    ) -> list[DuePoint]:
        return super().claim_due(now + timedelta(days=30), owner=owner, lease=lease, limit=limit)


def kit_run(machine: type[RuleBasedStateMachine], examples: int = 60) -> None:
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
        (store_with(NeverCancelsTransaction), "still has live timers"),
        (EarlyTimersStore, "before it was due"),
    ],
    ids=["drops-an-audit-event", "forgets-the-version", "never-cancels-timers", "early-timers"],
)
def test_a_planted_store_bug_is_reported(store: type[CaseStore], complaint: str) -> None:
    machine = workflow_state_machine(workflows.standard(), store_factory=store)
    with pytest.raises(AssertionError, match=complaint):
        kit_run(machine)


def test_the_same_machine_passes_on_the_real_store() -> None:
    """The planted-bug tests are not failing for some other reason."""
    kit_run(workflow_state_machine(workflows.standard(), store_factory=InMemoryStore), 10)


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
