"""How long the testing kit takes to find each planted bug, under the ``ci`` profile.

The planted bugs are those of ``tests/property/test_planted_bugs.py``: stores that drop
an audit event, forget the version, never cancel timers, read events back out of order;
a sweep that fires timers a month or a minute early (over a store that hands out its
claims as early); a guard that raises a plain exception; an engine
that lets the handling unit confirm its own case, or anyone who sees a case dispatch
it (on the tests' short loop, and on the standard workflow). Each is run through
``workflow_state_machine`` as the tests run it (derandomized, the ``ci`` profile's
budget of examples, no shrinking), and the table says whether it was found, after how
many examples and how many seconds. Nothing is asserted: the tests
assert that each bug is found; this prints how quickly.

Run it with ``python benchmarks/bench_testing.py [--examples N]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import settings
from tests.property import test_planted_bugs as planted

from closedloop import Registry, Workflow, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.ports import CaseStore
from closedloop.engine.ticking import TimerSweep
from closedloop.engine.writer import CaseWriter
from closedloop.testing import register_profiles, workflow_state_machine
from closedloop.testing.profiles import CI_EXAMPLES


@dataclass(frozen=True, slots=True)
class Bug:
    name: str
    workflow: Callable[[], Workflow]
    store: type[CaseStore] = InMemoryStore
    authorise: Callable[[planted.Authorise], planted.Authorise] | None = None
    early: timedelta | None = None


def inspection() -> Workflow:
    registry = Registry.default().extended(guards={"inspected": planted.inspected})
    return Workflow.from_dict(planted.INSPECTION, registry=registry)


def short() -> Workflow:
    return Workflow.from_dict(planted.SHORT_LOOP)


MONTH, MINUTE = timedelta(days=30), timedelta(minutes=1)
store_with = planted.store_with
standard = workflows.standard
BUGS = [
    Bug("drops an audit event", standard, store_with(planted.DroppingTransaction)),
    Bug("forgets the version", standard, store_with(planted.StuckVersionTransaction)),
    Bug("never cancels timers", standard, store_with(planted.NeverCancelsTransaction)),
    Bug("timers a month early", standard, planted.claims_early_by(MONTH), early=MONTH),
    Bug("timers a minute early", standard, planted.claims_early_by(MINUTE), early=MINUTE),
    Bug("reorders events", standard, store_with(planted.ReorderingTransaction)),
    Bug("guard raises a plain exception", inspection),
    Bug("handling unit confirms", short, authorise=planted.handling_unit_may_confirm),
    Bug("stranger dispatches", short, authorise=planted.anyone_may_dispatch),
    Bug("handling unit confirms, standard", standard, authorise=planted.handling_unit_may_confirm),
    Bug("stranger dispatches, standard", standard, authorise=planted.anyone_may_dispatch),
]


def hunt(bug: Bug, examples: int) -> tuple[bool, int, float]:
    """(found, examples run, seconds) for one planted bug."""
    made = 0

    def fresh() -> CaseStore:
        nonlocal made
        made += 1
        return bug.store()

    original = CaseWriter.authorise
    if bug.authorise is not None:
        CaseWriter.authorise = bug.authorise(original)  # type: ignore[method-assign]
    due_now = TimerSweep._due_now
    if bug.early is not None:
        TimerSweep._due_now = planted.due_early_by(bug.early)  # type: ignore[method-assign]
    started = time.perf_counter()
    try:
        planted.kit_run(workflow_state_machine(bug.workflow(), store_factory=fresh), examples)
        found = False
    except (AssertionError, KeyError):
        found = True
    finally:
        CaseWriter.authorise = original  # type: ignore[method-assign]
        TimerSweep._due_now = due_now  # type: ignore[method-assign]
    return found, made, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=CI_EXAMPLES)
    args = parser.parse_args()
    register_profiles()
    settings.load_profile("ci")
    rows = [("planted bug", "found", "examples", "seconds")]
    for bug in BUGS:
        found, made, seconds = hunt(bug, args.examples)
        rows.append((bug.name, "yes" if found else "NO", str(made), f"{seconds:.2f}"))
        print(f"... {bug.name}", file=sys.stderr, flush=True)
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
