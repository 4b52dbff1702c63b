"""A simulated district: citizens and grid workers report, units handle, reporters confirm.

The simulation drives a real :class:`~closedloop.Engine` on a real store with a manual
clock, so thirty days of a district's cases run in seconds and leave a real database:
audit trails that verify, deadlines, warnings, escalations, deliveries. It is what
``closedloop demo`` runs, and a load generator for tests and benchmarks.

>>> from closedloop.adapters.memory import InMemoryStore
>>> from closedloop.simulation import simulate
>>> result = simulate(InMemoryStore(), days=1, seed=7)
>>> result.case_ids[0]
'case-00001'

Deterministic for a seed: the clock starts at :data:`START`, case ids count up, every
draw comes from one ``random.Random(seed)`` and the agenda breaks ties in the order
actions were scheduled.
"""

from __future__ import annotations

from closedloop.simulation.case_check import CaseCheck, check_cases
from closedloop.simulation.district import Cast, District
from closedloop.simulation.habits import Habits
from closedloop.simulation.runner import START, Simulation, SimulationResult, simulate

__all__ = [
    "START",
    "CaseCheck",
    "Cast",
    "District",
    "Habits",
    "Simulation",
    "SimulationResult",
    "check_cases",
    "simulate",
]
