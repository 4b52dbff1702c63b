"""Fuzz the noise-complaint workflow: every invariant of the closed loop after every
step, who may act on every command, and a coverage table at the end (``pytest -s``)."""

from closedloop.adapters.memory import InMemoryStore
from closedloop.testing import workflow_state_machine

from noise import load

NoiseMachine = workflow_state_machine(load(), store_factory=InMemoryStore, report_coverage=True)
TestNoise = NoiseMachine.TestCase
