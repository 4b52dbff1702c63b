"""The standard workflow, fuzzed by the generated state machine on every store."""

from __future__ import annotations

from hypothesis import settings

from closedloop import workflows
from closedloop.testing import workflow_state_machine
from tests.conftest import Backend


def test_standard_workflow_holds_its_invariants(backend: Backend) -> None:
    machine = workflow_state_machine(
        workflows.standard(), store_factory=backend.fresh, reopen=backend.reopen
    )
    # The in-memory store is fast: spend the budget there on more and longer examples.
    examples = settings.default.max_examples * (2 if backend.name == "memory" else 1)
    machine.TestCase.settings = settings(
        settings.default, max_examples=examples, stateful_step_count=50
    )
    machine.TestCase().runTest()
