"""The standard closed loop as the benchmarks run it, through the public Engine API.

A case is reported, then moved by six triggers: classify, dispatch, accept,
submit_result, feedback, confirm (the README's quick start).
"""

from __future__ import annotations

from closedloop import Actor, Engine

CITIZEN = Actor("citizen-1")
DISPATCHER = Actor("disp-1", roles=frozenset({"dispatcher"}))
WATER = Actor("water-1", units=frozenset({"water"}))
TRIGGERS = ("classify", "dispatch", "accept", "submit_result", "feedback", "confirm")
"""The six triggers that take a reported case to ``closed``."""


def report(engine: Engine, n: int) -> str:
    """Report case number ``n``; its id."""
    case = engine.report(CITIZEN, description=f"Leak {n}", location={"area": "310101"})
    return case.id


def advance(engine: Engine, case_id: str) -> None:
    """Move a reported case through the six triggers to ``closed``."""
    engine.trigger(case_id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    engine.trigger(case_id, "dispatch", by=DISPATCHER, unit="water")
    engine.trigger(case_id, "accept", by=WATER)
    engine.trigger(case_id, "submit_result", by=WATER, result="Valve replaced")
    engine.trigger(case_id, "feedback", by=DISPATCHER, message="Fixed")
    engine.trigger(case_id, "confirm", by=CITIZEN, rating="satisfied")
