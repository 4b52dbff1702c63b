"""Fuzz the pothole workflow: every invariant of the closed loop, after every step."""

from closedloop.adapters.memory import InMemoryStore
from closedloop.testing import workflow_state_machine

from potholes import load

PotholesMachine = workflow_state_machine(load(), store_factory=InMemoryStore)
TestPotholes = PotholesMachine.TestCase
