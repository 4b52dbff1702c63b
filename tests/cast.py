"""The cast of the standard workflow's tests: one actor per role."""

from __future__ import annotations

from closedloop import Actor

CITIZEN = Actor("citizen-1")
OTHER_CITIZEN = Actor("citizen-2")
DISPATCHER = Actor("disp-1", roles={"dispatcher"})
SUPERVISOR = Actor("sup-1", roles={"supervisor"})
ARBITER = Actor("arb-1", roles={"arbiter"})
VERIFIER = Actor("ver-1", roles={"verifier"})
GRID_WORKER = Actor("grid-1", roles={"grid_worker"})
WATER = Actor("water-1", units={"water"})
STREET = Actor("street-1", units={"street_s1"})
SYSTEM_ACTOR = Actor("system", roles={"system"})
