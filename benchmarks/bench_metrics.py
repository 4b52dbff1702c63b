"""Metrics over a million audit events in the SQL store, beside a plain counting loop.

Prints one table, in events per second, for a SQLite file (and PostgreSQL when
``CLOSEDLOOP_TEST_POSTGRES_URL`` is set):

* **peer: count by trigger**: a plain Python loop over the same streamed ``SELECT``
  of the audit table, only counting events by trigger: the cost of reading the rows.
* **metrics, streamed SQL read**: ``metrics.compute(store, week, by="unit")``, which
  reads the SQL store through one streamed query and folds every case.
* **metrics, CaseStore port**: the same table read through ``case_ids()`` and
  ``get_events()`` in batches, the path every store supports.
* **signals, streamed SQL read**: ``metrics.signals(store, week)``, every supervision
  signal over the same events (a million events are about 133,000 cases).

Each run is a fresh process, so its peak RSS (also printed) is the metrics' own.

The events come from eight template cases run through the real Engine (on time, late
with its warnings and escalation, returned and re-dispatched, extended, reworked,
answered directly, suspended, rejected), copied under new case ids and units and
bulk-inserted, so the rows are what the engine writes.

Run it with ``python benchmarks/bench_metrics.py [--events N]`` (default 1,000,000).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from closedloop import Actor, Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.adapters.sqlalchemy import rows as sql_rows
from closedloop.adapters.sqlalchemy.engines import begin, connect
from closedloop.adapters.sqlalchemy.event_stream import EVENT_ROWS
from closedloop.adapters.sqlalchemy.schema import case_events, cases
from closedloop.metrics import Period, compute, read_events, signals
from closedloop.testing import ManualClock

CITIZEN = Actor("citizen-1")
DISPATCHER = Actor("disp-1", roles=frozenset({"dispatcher"}))
SUPERVISOR = Actor("sup-1", roles=frozenset({"supervisor"}))
WATER = Actor("water-1", units=frozenset({"water"}))
ROADS = Actor("roads-1", units=frozenset({"roads"}))
WEEK = Period.week(date(2026, 1, 5))
UNITS = 25
SPAWN = multiprocessing.get_context("spawn")

Template = tuple[dict[str, Any], list[dict[str, Any]]]


class Templates:
    """The template cases, run through the Engine on an in-memory store."""

    def __init__(self) -> None:
        self.clock = ManualClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
        self.store = InMemoryStore()
        self.engine = Engine(workflows.standard(), store=self.store, clock=self.clock)
        self.t = self.engine.trigger

    def accepted(self, unit: Actor) -> str:
        case = self.engine.report(CITIZEN, description="x", location={"area": "D1.S1.C1.G01"})
        self.t(case.id, "classify", by=DISPATCHER, category="01.01")
        self.t(case.id, "dispatch", by=DISPATCHER, unit=next(iter(unit.units)))
        self.t(case.id, "accept", by=unit)
        return case.id

    def submitted(self, case_id: str, unit: Actor) -> None:
        self.t(case_id, "submit_result", by=unit, result="done")
        self.t(case_id, "feedback", by=DISPATCHER)

    def close(self, case_id: str, unit: Actor, rating: str = "satisfied") -> None:
        self.submitted(case_id, unit)
        self.t(case_id, "confirm", by=CITIZEN, rating=rating)

    def returned(self) -> str:
        case_id = self.engine.report(CITIZEN, description="x", location={"area": "D1.S2"}).id
        self.t(case_id, "classify", by=DISPATCHER, category="03.01")
        self.t(case_id, "dispatch", by=DISPATCHER, unit="water")
        self.t(case_id, "return", by=WATER, reason_code="wrong_function", evidence="a road")
        self.t(case_id, "redispatch", by=DISPATCHER, unit="roads", reason="roads")
        self.t(case_id, "accept", by=ROADS)
        return case_id

    def rows(self) -> list[Template]:
        """Each case's row and its event rows, as the SQL store writes them."""
        with self.store.transaction() as tx:
            return [
                (
                    sql_rows.case_values(tx.get_case(case_id)),  # type: ignore[arg-type]
                    [sql_rows.event_values(e) for e in tx.get_events(case_id)],
                )
                for case_id in self.store.case_ids()
            ]


def run_templates() -> list[Template]:
    """Run the template cases through the Engine; return each case row and event rows."""
    run = Templates()
    t = run.t
    on_time, late, extended, reworked, suspended = (run.accepted(WATER) for _ in range(5))
    returned = run.returned()
    answered = run.engine.report(CITIZEN, description="when?", channel="app").id
    t(answered, "answer", by=DISPATCHER, answer="Tuesdays")
    rejected = run.engine.report(CITIZEN, description="spam").id
    t(rejected, "reject", by=DISPATCHER, reason="not for the platform")
    run.clock.advance(hours=2)
    t(extended, "request_extension", by=WATER, duration="2 working days", reason="parts")
    t(extended, "approve_extension", by=DISPATCHER)
    t(suspended, "request_suspension", by=WATER, reason="works")
    t(suspended, "approve_suspension", by=SUPERVISOR)
    run.close(on_time, WATER)
    run.submitted(reworked, WATER)
    t(reworked, "reject_result", by=CITIZEN, reason="no")
    run.close(returned, ROADS, "basically_satisfied")
    t(answered, "confirm", by=CITIZEN, rating="satisfied")
    run.clock.advance(days=6)
    run.engine.tick()  # the late case: warning, breach, escalation
    run.close(late, WATER, "dissatisfied")
    run.close(reworked, WATER)
    run.close(extended, WATER)
    return run.rows()


def fill(store: SQLStore, templates: list[Template], events: int) -> tuple[int, int]:
    """Insert copies of the templates until ``events`` events are stored; (cases, events)."""
    made = stored = 0
    with connect(store.engine, read_only=False) as connection, begin(connection, write=True):
        while stored < events:
            case_rows, event_rows = [], []
            for _ in range(2000):
                case_row, template_events = templates[made % len(templates)]
                case_id, units = uuid.uuid4().hex, _units(made)
                lead = units.get(case_row["lead_unit"], case_row["lead_unit"])
                case_rows.append({**case_row, "id": case_id, "lead_unit": lead})
                event_rows += [_copy(e, case_id, units) for e in template_events]
                made += 1
                stored += len(template_events)
                if stored >= events:
                    break
            connection.execute(insert(cases), case_rows)
            connection.execute(insert(case_events), event_rows)
    return made, stored


def _units(n: int) -> dict[str, str]:
    k = n % UNITS
    return {"water": f"water-{k:02d}", "roads": f"roads-{k:02d}"}


def _copy(event: dict[str, Any], case_id: str, units: dict[str, str]) -> dict[str, Any]:
    changes = event["changes"]
    if changes.get("lead_unit") in units:
        changes = {**changes, "lead_unit": units[changes["lead_unit"]]}
    return {**event, "case_id": case_id, "changes": changes}


def peer(url: str, schema: str | None) -> tuple[float, int, float]:
    """Seconds to count events by trigger over the streamed rows; events; peak RSS MiB."""
    store = SQLStore(url, schema=schema)
    start = time.perf_counter()
    counts: Counter[str] = Counter()
    with connect(store.engine, read_only=True) as connection, begin(connection, write=False):
        for row in connection.execution_options(yield_per=2000).execute(EVENT_ROWS):
            counts[row.trigger] += 1
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed, sum(counts.values()), peak_rss_mib()


def metrics(url: str, schema: str | None, bulk: bool) -> tuple[float, int, float]:
    """Seconds for the metric table by unit over every event; events; peak RSS MiB."""
    store = SQLStore(url, schema=schema)
    start = time.perf_counter()
    table = compute(read_events(store, bulk=bulk), WEEK, by="unit")
    elapsed = time.perf_counter() - start
    store.close()
    assert table.total.reported > 0
    return elapsed, table.total.reported, peak_rss_mib()


def signal_run(url: str, schema: str | None, bulk: bool) -> tuple[float, int, float]:
    """Seconds for every supervision signal over every event; rows; peak RSS MiB."""
    store = SQLStore(url, schema=schema)
    start = time.perf_counter()
    report = signals(read_events(store, bulk=bulk), WEEK)
    elapsed = time.perf_counter() - start
    store.close()
    assert report.rows
    return elapsed, len(report.rows), peak_rss_mib()


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function`` in a fresh process: a clean heap for the memory figure."""
    with SPAWN.Pool(1) as pool:
        return pool.apply(function, args)


def measure(label: str, url: str, schema: str | None, events: int) -> list[tuple[str, ...]]:
    """The three runs on one database; rows of the printed table."""
    rows: list[tuple[str, ...]] = []
    base, counted, rss = in_child(peer, url, schema)
    assert counted == events, (counted, events)
    rows.append((f"{label}: peer, count by trigger", f"{events / base:,.0f}", "1.00", f"{rss:.0f}"))
    runs = (
        ("metrics, streamed SQL read", metrics, True),
        ("metrics, CaseStore port", metrics, False),
        ("signals, streamed SQL read", signal_run, True),
    )
    for name, function, bulk in runs:
        elapsed, _, rss = in_child(function, url, schema, bulk)
        speed = f"{events / elapsed:,.0f}"
        rows.append((f"{label}: {name}", speed, f"{base / elapsed:.2f}", f"{rss:.0f}"))
    return rows


def print_table(rows: list[tuple[str, ...]]) -> None:
    header = ("run", "events/s", "vs peer", "peak RSS MiB")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        cells = zip(row, widths, strict=True)
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=float, default=1e6, help="events to store (1e6)")
    events = int(parser.parse_args().events)
    templates = run_templates()
    targets: list[tuple[str, str, str | None]] = []
    with tempfile.TemporaryDirectory(prefix="closedloop-bench-") as tmp:
        targets.append(("SQLite", f"sqlite:///{Path(tmp) / 'metrics.db'}", None))
        url = os.environ.get("CLOSEDLOOP_TEST_POSTGRES_URL")
        if url:
            targets.append(("PostgreSQL", url, f"bench_{uuid.uuid4().hex[:10]}"))
        rows: list[tuple[str, ...]] = []
        for label, target, schema in targets:
            store = SQLStore(target, schema=schema, synchronous="NORMAL")
            start = time.perf_counter()
            made, stored = fill(store, templates, events)
            store.close()
            print(f"{label}: stored {made:,} cases, {stored:,} events in "
                  f"{time.perf_counter() - start:.1f} s")  # fmt: skip
            rows += measure(label, target, schema, stored)
    if not os.environ.get("CLOSEDLOOP_TEST_POSTGRES_URL"):
        rows.append(("PostgreSQL (set CLOSEDLOOP_TEST_POSTGRES_URL)", "-", "-", "-"))
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
