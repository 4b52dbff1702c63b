"""How long a tick takes when 100 timers are due, among 10,000 and among 1,000,000 open cases.

A tick reads the due points through an index on ``due_at``, so its cost should follow
the number due, not the number open: the figures for the two sizes should be within
2x of each other. Beside each figure, the peer: the same store's cost of reading every
open row (what a sweep without the index would pay).

Run: python benchmarks/bench_tick.py [--sizes 10000,1000000] [--stores memory,sqlite]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from closedloop import Engine, NaturalCalendar, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.audit import GENESIS, changes, seal
from closedloop.engine.deadlines import Timekeeper
from closedloop.engine.model import Case
from closedloop.engine.ports import CaseStore
from closedloop.testing import ManualClock

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
DUE = 100
WORKFLOW = workflows.standard()


def make_store(kind: str, folder: Path, size: int) -> CaseStore:
    if kind == "memory":
        return InMemoryStore()
    from closedloop.adapters.sqlalchemy import SQLStore

    return SQLStore(f"sqlite:///{folder / f'tick-{size}.db'}")


def populate(store: CaseStore, size: int) -> None:
    """``size`` open cases: ``DUE`` of them reported long ago (their warning and breach
    are due), written straight into the store to keep the set-up short."""
    keeper = Timekeeper(WORKFLOW, {"natural": NaturalCalendar()}, "natural")
    template = Case(
        id="x", workflow="standard", state="reported", version=1, reported_at=START,
        updated_at=START, reporter_id="citizen", channel="hotline", description="bench",
        waiting_on="dispatcher",
    )  # fmt: skip
    batch = 2000
    for first in range(0, size, batch):
        with store.transaction() as tx:
            for number in range(first, min(first + batch, size)):
                at = START - timedelta(days=2) if number < DUE else START + timedelta(days=30)
                case = template.model_copy(
                    update={"id": f"c{number:07d}", "reported_at": at, "updated_at": at}
                )
                case = case.model_copy(update={"deadline": keeper.start(case, at)})
                event = seal(
                    case_id=case.id, seq=1, at=at, actor="citizen", role="reporter",
                    trigger="report", from_state=None, to_state="reported", payload={},
                    reason=None, changes=changes(None, case), prev_hash=GENESIS,
                )  # fmt: skip
                tx.add_case(case, None, event)
                tx.replace_due_points(case.id, keeper.due_points(case))
            tx.commit()


def measure(kind: str, size: int, folder: Path) -> tuple[float, float, int]:
    store = make_store(kind, folder, size)
    populate(store, size)
    engine = Engine(WORKFLOW, store=store, clock=ManualClock(START))
    began = time.perf_counter()
    report = engine.tick()
    tick = time.perf_counter() - began
    began = time.perf_counter()
    count = len(store.case_ids())  # the peer: touching every open row once
    scan = time.perf_counter() - began
    assert count == size
    return tick, scan, report.applied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--stores", default="memory,sqlite")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'store':<8} {'open cases':>11} {'applied':>8} {'tick ms':>9} {'full read ms':>13}")
    with tempfile.TemporaryDirectory() as folder:
        for kind in args.stores.split(","):
            figures = []
            for size in sizes:
                tick, scan, applied = measure(kind, size, Path(folder))
                figures.append(tick)
                print(f"{kind:<8} {size:>11,} {applied:>8} {tick * 1e3:>9.1f} {scan * 1e3:>13.1f}")
            ratio = figures[-1] / figures[0]
            print(f"{kind:<8} ratio largest/smallest tick: {ratio:.2f}x (target < 2x)")


if __name__ == "__main__":
    main()
