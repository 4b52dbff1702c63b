"""How long a tick takes when 100 timers are due, among 10,000 and among 1,000,000 open cases.

A tick reads the due points through an index on ``due_at``, so its cost should follow
the number due, not the number open: the figures for the two sizes should be within
2x of each other (the ratio line). Beside each figure, the peer: the same store's cost
of reading every open row (``full read ms``, what a sweep without the index would pay).

The work measured is the same at every size: the same ``DUE`` cases (same ids, same
content), reported two days before the tick, whose warning and breach timers are due,
among filler cases reported 30 days after it, whose timers are not. ``applied`` is the
number of timers the tick applied (2 x ``DUE``); a run fails unless every due timer was
applied, none was stale or deferred, and nothing is left due after the tick.

Set-up (``set-up s``, not part of the tick). The in-memory store is filled through its
transactions (``populate``). A SQL store is loaded in bulk (``load_sql``): through the
store's transactions a million cases take hours on SQLite. The rows are built with the
store's own row builders (``rows.case_values``, ``event_values``, ``due_values``) from
one real case of each shape (due, filler), computed as ``populate`` computes it
(Timekeeper, ``seal``, ``changes``); per case only what depends on the case id varies:
the id (in the row and the body), the event's ``case_id`` and ``changes`` and its hash,
and the due point ids (which embed the case id). The hash covers the case id, so each
case's event is sealed for its own content (about 0.1 ms a case, a third of the set-up).
The filler cases share one template, the due cases another. Rows go in with SQLAlchemy
Core ``insert`` in batches of ``BATCH`` cases, one transaction per ``PER_TRANSACTION``
cases, through the store's own engine, so the SQLite settings are the store's defaults
(``SQLStore(url)``: WAL, ``synchronous=FULL``, foreign keys on); the WAL is then
checkpointed so that the tick starts from a settled file. Before the first size, the
loader is checked against ``populate``: on a small store both must write the same rows.

A SQL tick applies each timer in a transaction of its own, and with ``synchronous=FULL``
each commit is synced to disk, so its figure varies from run to run. Each size is
therefore ticked up to ``REPEATS`` times (fewer once its ticks took ``PATIENCE``
seconds), each time on a fresh copy of the loaded file, synced to disk first (``flush``);
``tick ms`` is the median (the ratio uses it) and ``(min-max)`` the spread.

Run: python benchmarks/bench_tick.py [--sizes 10000,1000000] [--stores memory,sqlite]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, insert, select

from closedloop import Engine, NaturalCalendar, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.audit import GENESIS, changes, seal, verify_chain
from closedloop.engine.deadlines import Timekeeper
from closedloop.engine.model import AuditEvent, Case
from closedloop.engine.ports import CaseStore, DuePoint
from closedloop.testing import ManualClock

if TYPE_CHECKING:
    from closedloop.adapters.sqlalchemy import SQLStore

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
DUE = 100
WORKFLOW = workflows.standard()
KEEPER = Timekeeper(WORKFLOW, {"natural": NaturalCalendar()}, "natural")
TEMPLATE = Case(
    id="x", workflow="standard", state="reported", version=1, reported_at=START,
    updated_at=START, reporter_id="citizen", channel="hotline", description="bench",
    waiting_on="dispatcher",
)  # fmt: skip
BATCH = 20_000
"""Cases per ``insert`` batch of the bulk loader (their events and due points alike)."""
PER_TRANSACTION = 200_000
"""Cases per transaction of the bulk loader."""
REPEATS = 3
"""SQL ticks per size, each on a fresh copy of the loaded file."""
PATIENCE = 60.0
"""Seconds of SQL ticks after which a size is not ticked again."""


def case_id(number: int) -> str:
    return f"c{number:07d}"


def reported_at(number: int) -> datetime:
    """The due cases were reported two days before the tick, the filler 30 days after."""
    return START - timedelta(days=2) if number < DUE else START + timedelta(days=30)


def opened(number: int) -> tuple[Case, AuditEvent, list[DuePoint]]:
    """Case ``number`` as reported: the case, its first (sealed) event, its due points."""
    at = reported_at(number)
    case = TEMPLATE.model_copy(update={"id": case_id(number), "reported_at": at, "updated_at": at})
    case = case.model_copy(update={"deadline": KEEPER.start(case, at)})
    return case, reported(case.id, at, changes(None, case)), KEEPER.due_points(case)


def reported(cid: str, at: datetime, body: dict[str, Any]) -> AuditEvent:
    """The sealed first event of case ``cid``, whose body is ``body``."""
    return seal(
        case_id=cid, seq=1, at=at, actor="citizen", role="reporter", trigger="report",
        from_state=None, to_state="reported", payload={}, reason=None, changes=body,
        prev_hash=GENESIS,
    )  # fmt: skip


def populate(store: CaseStore, size: int) -> None:
    """``size`` open cases: ``DUE`` of them reported long ago (their warning and breach
    are due), written through the store's transactions (the only way into memory)."""
    batch = 2000
    for first in range(0, size, batch):
        with store.transaction() as tx:
            for number in range(first, min(first + batch, size)):
                case, event, points = opened(number)
                tx.add_case(case, None, event)
                tx.replace_due_points(case.id, points)
            tx.commit()


class Shape:
    """The rows of one real case, and how to make those of another case of its shape.

    Only what depends on the case id varies: the id (in the row and in the body), the
    event's ``case_id`` and ``changes`` and its hash, which is sealed for each case (the
    hash covers the case id), and the due point ids, which begin with the case id.
    """

    def __init__(self, number: int) -> None:
        from closedloop.adapters.sqlalchemy import rows

        case, event, points = opened(number)
        self.at = case.reported_at
        self.case = rows.case_values(case)
        self.event = rows.event_values(event)
        self.points = [rows.due_values(p) for p in points]
        self.prefix = f"{case.id}/"
        assert all(p["id"].startswith(self.prefix) for p in self.points)

    def rows(self, number: int) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        cid = case_id(number)
        body = {**self.case["body"], "id": cid}  # the case body is its event's changes
        case = {**self.case, "id": cid, "body": body}
        event = {**self.event, "case_id": cid, "changes": body}
        event["hash"] = reported(cid, self.at, body).hash
        points = [
            {**p, "id": cid + "/" + p["id"].removeprefix(self.prefix), "case_id": cid}
            for p in self.points
        ]
        return case, event, points


def load_sql(store: SQLStore, size: int) -> None:
    """``size`` open cases as ``populate`` writes them, inserted in bulk (see the module)."""
    from closedloop.adapters.sqlalchemy.schema import case_events, cases, due_points

    shapes = {True: Shape(0), False: Shape(DUE)}
    for first in range(0, size, PER_TRANSACTION):
        with store.engine.begin() as connection:  # BEGIN IMMEDIATE, as the store's writes
            last = min(first + PER_TRANSACTION, size)
            for start in range(first, last, BATCH):
                made = [shapes[n < DUE].rows(n) for n in range(start, min(start + BATCH, last))]
                connection.execute(insert(cases), [c for c, _, _ in made])
                connection.execute(insert(case_events), [e for _, e, _ in made])
                connection.execute(insert(due_points), [p for _, _, ps in made for p in ps])
    raw = store.engine.raw_connection()  # outside a transaction, which a checkpoint needs
    try:
        busy, _, _ = raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert not busy, "the WAL could not be checkpointed"
    finally:
        raw.close()


def check_loader(folder: Path) -> None:
    """The bulk loader must write exactly what ``populate`` writes through the store."""
    from closedloop.adapters.sqlalchemy import SQLStore
    from closedloop.adapters.sqlalchemy.schema import (
        case_events,
        cases,
        due_points,
        reporter_contacts,
    )

    size = DUE + 50
    files = folder / "populated.db", folder / "loaded.db"
    written, loaded = (SQLStore(f"sqlite:///{file}") for file in files)
    populate(written, size)
    load_sql(loaded, size)
    for table in (cases, case_events, due_points, reporter_contacts):
        a, b = list(_table_rows(written, table)), list(_table_rows(loaded, table))
        assert a == b, f"the bulk loader writes other {table.name} rows than populate"
    ids = written.case_ids()
    assert len(ids) == size
    assert ids == loaded.case_ids()
    written.close()
    loaded.close()
    for leftover in (f for file in files for f in folder.glob(f"{file.name}*")):
        leftover.unlink()


def check_chains(store: CaseStore, size: int) -> None:
    """The audit trails of a due case and of the first and last filler cases verify."""
    with store.transaction(read_only=True) as tx:
        for cid in map(case_id, (0, DUE, size - 1)):
            report = verify_chain(cid, tx.get_events(cid), tx.get_case(cid))
            assert report.ok, report


def _table_rows(store: SQLStore, table: Table) -> Iterator[dict[str, Any]]:
    columns = [c for c in table.c if c.name != "row_id"]  # row_id is the insertion order
    keys = [c for c in table.primary_key.columns if c.name != "row_id"] or [table.c.id]
    with store.engine.connect() as connection:
        for row in connection.execute(select(*columns).order_by(*keys)).mappings():
            yield dict(row)


def expected_applied() -> int:
    """Timers due at the tick: those of the due cases with ``due_at <= START``."""
    return sum(p.due_at <= START for n in range(DUE) for p in opened(n)[2])


def tick(store: CaseStore, size: int) -> tuple[float, float, int]:
    """One tick at ``START`` and one full read; checks the tick did all the due work."""
    engine = Engine(WORKFLOW, store=store, clock=ManualClock(START))
    began = time.perf_counter()
    report = engine.tick()
    elapsed = time.perf_counter() - began
    assert (report.applied, report.stale, report.deferred) == (expected_applied(), 0, 0), report
    following = store.next_due_at()  # every timer due at the tick was applied
    assert following is not None
    assert following > START, following
    began = time.perf_counter()
    count = len(store.case_ids())  # the peer: touching every open row once
    scan = time.perf_counter() - began
    assert count == size
    return elapsed, scan, report.applied


def measure_memory(size: int) -> tuple[float, list[float], float, int]:
    store = InMemoryStore()
    began = time.perf_counter()
    populate(store, size)
    setup = time.perf_counter() - began
    elapsed, scan, applied = tick(store, size)
    return setup, [elapsed], scan, applied


def flush(path: Path) -> None:
    """Write a freshly copied file out to disk before it is ticked. Otherwise the tick's
    first WAL checkpoint syncs the database file and pays for writing out the whole copy
    (seconds for the gigabytes of a million cases, nothing for ten thousand), which
    would be measured as the tick's cost."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def measure_sql(size: int, folder: Path) -> tuple[float, list[float], float, int]:
    from closedloop.adapters.sqlalchemy import SQLStore

    loaded = folder / f"tick-{size}.db"
    store = SQLStore(f"sqlite:///{loaded}")
    began = time.perf_counter()
    load_sql(store, size)
    setup = time.perf_counter() - began
    check_chains(store, size)
    store.close()
    ticks: list[float] = []
    scans: list[float] = []
    applied = 0
    for repeat in range(REPEATS):
        if sum(ticks) > PATIENCE:
            break  # a tick this slow is not a matter of noise
        copy = folder / f"tick-{size}-{repeat}.db"
        shutil.copyfile(loaded, copy)
        flush(copy)
        store = SQLStore(f"sqlite:///{copy}")
        try:
            elapsed, scan, applied = tick(store, size)
        finally:
            store.close()
        ticks.append(elapsed)
        scans.append(scan)
        for leftover in copy.parent.glob(f"{copy.name}*"):
            leftover.unlink()
    loaded.unlink()
    return setup, ticks, statistics.median(scans), applied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--stores", default="memory,sqlite")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"{'store':<8} {'open cases':>11} {'set-up s':>9} {'applied':>8} {'tick ms':>9} "
        f"{'(min-max)':>15} {'full read ms':>13}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for kind in args.stores.split(","):
            if kind != "memory":
                check_loader(folder)
            figures = []
            for size in sizes:
                setup, ticks, scan, applied = (
                    measure_memory(size) if kind == "memory" else measure_sql(size, folder)
                )
                figure = statistics.median(ticks)
                figures.append(figure)
                spread = f"({min(ticks) * 1e3:.0f}-{max(ticks) * 1e3:.0f})"
                print(
                    f"{kind:<8} {size:>11,} {setup:>9.1f} {applied:>8} {figure * 1e3:>9.1f} "
                    f"{spread:>15} {scan * 1e3:>13.1f}",
                    flush=True,
                )
            ratio = figures[-1] / figures[0]
            print(f"{kind:<8} ratio largest/smallest tick: {ratio:.2f}x (target < 2x)")


if __name__ == "__main__":
    main()
