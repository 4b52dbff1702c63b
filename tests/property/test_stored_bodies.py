"""Every body the audit computes for a case (from the body of the case it changed,
its unchanged fields and a clock that only warned taken as they were stored) is the
case's stored form, as encoding the whole case writes it, key for key and in its
order."""

from __future__ import annotations

import json

from hypothesis import settings

from closedloop import workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine import audit
from closedloop.engine.model import BODY_EXCLUDE, to_stored
from closedloop.testing import workflow_state_machine
from closedloop.testing.profiles import CI_EXAMPLES


def _bodies_are_stored_forms(view: object) -> None:
    for case, data in list(audit._BODIES.values()):
        assert json.dumps(data) == json.dumps(to_stored(case, exclude=BODY_EXCLUDE))


def test_the_bodies_of_the_standard_workflow_are_its_cases_stored_forms() -> None:
    machine = workflow_state_machine(
        workflows.standard(),
        store_factory=InMemoryStore,
        extra_invariants=[_bodies_are_stored_forms],
    )
    machine.TestCase.settings = settings(settings.get_profile("ci"), max_examples=CI_EXAMPLES // 4)
    machine.TestCase().runTest()
