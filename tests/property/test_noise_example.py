"""The noise-complaint example (``examples/noise/``) runs as shipped: its workflow loads
with 7 states and 11 transitions, and its generated machine passes under the ``ci``
profile, firing every one of its (state, trigger) pairs."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from closedloop.testing.profiles import CI_EXAMPLES

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "noise"


def test_the_noise_example_passes_and_fires_every_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FOLDER))
    try:
        example = importlib.import_module("test_noise")
    finally:  # the example's modules are the host's, not this suite's
        for name in ("noise", "test_noise"):
            sys.modules.pop(name, None)
    workflow = example.load()
    assert (len(workflow.states), len(workflow.transitions)) == (7, 11)
    machine = example.NoiseMachine
    machine.TestCase.settings = settings(settings.get_profile("ci"), max_examples=CI_EXAMPLES)
    machine.TestCase().runTest()
    assert len(machine.coverage.declared) == 15
    assert machine.coverage.missed() == [], machine.coverage.table()
