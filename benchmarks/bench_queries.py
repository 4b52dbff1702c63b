"""The read side at 100,000 cases: an inbox, a text search and facets, beside the same
query written by hand in SQLAlchemy Core, in the same run.

Each database (a SQLite file; PostgreSQL too when ``CLOSEDLOOP_TEST_POSTGRES_URL`` is
set) is filled once by the bulk loader (``bulk.py``), then spread out with plain SQL:
50 lead units, three open states, one case in ten red and two in ten yellow, and one
description in a hundred about a missing manhole cover (井盖缺失). Then, per repeat,
each measure runs ``--calls`` times on both sides, in turn:

* **inbox**: ``engine.inbox(member of unit-07)``, the 50 most urgent cases waiting on
  the unit, beside one hand-written ``SELECT`` of the same 50 bodies and their contacts
  (what a host writing its own screen would send);
* **text search**: ``engine.find(dispatcher, text="井盖缺失")``, 50 cases, beside a
  ``SELECT`` through the FTS5 table (SQLite) or an ``ILIKE`` (PostgreSQL);
* **text search, newest first**: the same search in the ``newest`` order, beside the
  same ``SELECT`` in descending report time;
* **facets**: ``engine.facets(dispatcher, by="state")`` beside a ``GROUP BY``.

The ratio is hand-written time over closedloop's (goal: at least 0.67, within 1.5x);
the p95 row is closedloop's 95th-percentile call (goal: at most 20 ms).

Run it with ``python benchmarks/bench_queries.py [--cases N] [--million] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bulk
from sqlalchemy import Engine as SQLEngine
from sqlalchemy import create_engine, make_url, text
from table import Row, median_ratio, paired, print_table

from closedloop import Actor, Engine, NaturalCalendar, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.testing import ManualClock

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
MEMBER = Actor("unit-07-clerk", units={"unit-07"})
DISPATCHER = Actor("disp-1", roles={"dispatcher"})
NEEDLE = "井盖缺失"

SPREAD_SQLITE = """
UPDATE closedloop_cases SET
  lead_unit = printf('unit-%02d', row_id % 50),
  state = CASE row_id % 3 WHEN 0 THEN 'assigned' WHEN 1 THEN 'in_progress' ELSE 'reported' END,
  warning_level = CASE row_id % 10 WHEN 0 THEN 'red' WHEN 1 THEN 'yellow' WHEN 2 THEN 'yellow'
                  ELSE 'none' END,
  body = json_set(body,
    '$.lead_unit', printf('unit-%02d', row_id % 50),
    '$.state', CASE row_id % 3 WHEN 0 THEN 'assigned' WHEN 1 THEN 'in_progress'
               ELSE 'reported' END,
    '$.description', CASE row_id % 100 WHEN 0 THEN '井盖缺失 行人危险' ELSE '路灯不亮' END),
  search_text = CASE row_id % 100 WHEN 0 THEN '井盖缺失 行人危险' ELSE '路灯不亮' END
    || char(10) || coalesce(json_extract(body, '$.location.address'), '')
"""
SPREAD_POSTGRES = """
UPDATE closedloop_cases SET
  lead_unit = 'unit-' || lpad((row_id % 50)::text, 2, '0'),
  state = CASE row_id % 3 WHEN 0 THEN 'assigned' WHEN 1 THEN 'in_progress' ELSE 'reported' END,
  warning_level = CASE row_id % 10 WHEN 0 THEN 'red' WHEN 1 THEN 'yellow' WHEN 2 THEN 'yellow'
                  ELSE 'none' END,
  body = (body::jsonb
    || jsonb_build_object('lead_unit', 'unit-' || lpad((row_id % 50)::text, 2, '0'))
    || jsonb_build_object('state', CASE row_id % 3 WHEN 0 THEN 'assigned'
                                   WHEN 1 THEN 'in_progress' ELSE 'reported' END)
    || jsonb_build_object('description', CASE row_id % 100 WHEN 0 THEN '井盖缺失 行人危险'
                                         ELSE '路灯不亮' END))::json,
  search_text = CASE row_id % 100 WHEN 0 THEN '井盖缺失 行人危险' ELSE '路灯不亮' END
    || chr(10) || coalesce(body -> 'location' ->> 'address', '')
"""
URGENCY = (
    "(CASE warning_level WHEN 'red' THEN 0 WHEN 'yellow' THEN 1 WHEN 'none' THEN 2 ELSE 3 END)"
)
HAND_INBOX = f"""
SELECT c.body, c.version, r.name, r.phone, r.email FROM closedloop_cases AS c
LEFT JOIN closedloop_reporter_contacts AS r ON r.case_id = c.id
WHERE c.lead_unit = 'unit-07' AND c.state IN ('assigned', 'in_progress')
ORDER BY {URGENCY}, c.due_at, c.row_id LIMIT 50
"""
HAND_TEXT = {
    "sqlite": "SELECT body, version FROM closedloop_cases WHERE row_id IN (SELECT rowid FROM "
    "closedloop_case_text WHERE closedloop_case_text MATCH '\"井盖缺失\"') "
    "ORDER BY reported_at, row_id LIMIT 50",
    "postgresql": "SELECT body, version FROM closedloop_cases WHERE search_text "
    "ILIKE '%井盖缺失%' ORDER BY reported_at, row_id LIMIT 50",
}
HAND_TEXT_NEWEST = {
    dialect: sql.replace("ORDER BY reported_at, row_id", "ORDER BY reported_at DESC, row_id DESC")
    for dialect, sql in HAND_TEXT.items()
}
HAND_FACETS = "SELECT state, count(*) FROM closedloop_cases GROUP BY state"


class Filled:
    """One filled database with its store and engine, and a plain engine beside them."""

    def __init__(self, url: str, size: int, label: str, *, filled: bool = False) -> None:
        self.label, self.size = label, size
        self.load_seconds: float | None = None
        self.plain: SQLEngine = create_engine(url)
        if not filled:
            self._fill(url)
        self.store = SQLStore(url)
        clock = ManualClock(START + timedelta(days=1))
        self.engine = Engine(
            workflows.standard(), store=self.store, clock=clock, calendar=NaturalCalendar()
        )
        assert self.engine.inbox(MEMBER).cases
        assert self.engine.find(DISPATCHER, text=NEEDLE).cases

    def _fill(self, url: str) -> None:
        SQLStore(url).close()  # the tables
        self.load_seconds = bulk.fill(url, self.size, start=START, spread=timedelta(days=90))
        spread = SPREAD_POSTGRES if self.plain.dialect.name == "postgresql" else SPREAD_SQLITE
        with self.plain.begin() as connection:
            connection.execute(text(spread))
        # The spread rewrote every row once. PostgreSQL's autovacuum would clear the old
        # row versions and the visibility map in its own time; done here, so that both
        # sides read a table in its steady state (an index-only count needs the map).
        vacuum = "VACUUM ANALYZE" if self.plain.dialect.name == "postgresql" else "ANALYZE"
        with self.plain.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"{vacuum} closedloop_cases"))

    def hand(self, sql: str) -> Callable[[], object]:
        def run() -> object:
            with self.plain.connect() as connection:
                return connection.execute(text(sql)).all()

        return run

    def close(self) -> None:
        self.store.close()
        self.plain.dispose()


def measure(
    calls: int, repeats: int, ours: Callable[[], object], peer: Callable[[], object]
) -> tuple[list[float], list[float], list[float]]:
    """Per-repeat mean seconds of each side, and every single call of ours."""
    singles: list[float] = []

    def mine() -> float:
        total = 0.0
        for _ in range(calls):
            began = time.perf_counter()
            ours()
            spent = time.perf_counter() - began
            singles.append(spent)
            total += spent
        return total / calls

    def theirs() -> float:
        began = time.perf_counter()
        for _ in range(calls):
            peer()
        return (time.perf_counter() - began) / calls

    mine(), theirs()  # warm both sides up
    singles.clear()
    ours_s, peers_s = paired(repeats, mine, theirs)
    return ours_s, peers_s, singles


def rows(filled: Filled, calls: int, repeats: int) -> list[Row]:
    dialect = filled.plain.dialect.name
    measures = (
        ("inbox, 50 most urgent", lambda: filled.engine.inbox(MEMBER), HAND_INBOX),
        ("text search", lambda: filled.engine.find(DISPATCHER, text=NEEDLE), HAND_TEXT[dialect]),
        (
            "text search, newest first",
            lambda: filled.engine.find(DISPATCHER, text=NEEDLE, order="newest"),
            HAND_TEXT_NEWEST[dialect],
        ),
        ("facets by state", lambda: filled.engine.facets(DISPATCHER, by="state"), HAND_FACETS),
    )
    result: list[Row] = []
    for name, ours, sql in measures:
        mine, theirs, singles = measure(calls, repeats, ours, filled.hand(sql))
        where = f"{filled.label}, {filled.size:,} cases"
        result.append(
            Row(
                f"{name}, {where}: hand-written / closedloop",
                f"{statistics.median(theirs) * 1e3:,.2f} ms",
                f"{statistics.median(mine) * 1e3:,.2f} ms",
                median_ratio(theirs, mine),
                0.67,
            )
        )
        p95 = statistics.quantiles(singles, n=20)[-1] if len(singles) > 1 else singles[0]
        result.append(Row(f"{name}, {where}: p95 ms", "", f"{p95 * 1e3:,.2f}", p95 * 1e3, 20.0,
                          most=True))  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="1,000,000 cases instead")
    parser.add_argument("--calls", type=int, default=20, help="calls per measure and repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="FILE",
        help="the SQLite file to measure: filled when it does not exist, and kept, so a "
        "later run with the same FILE (and --cases) skips the loader",
    )
    args = parser.parse_args()
    size = 1_000_000 if args.million else args.cases
    table: list[Row] = []
    notes: list[str] = []
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        file = args.keep or folder / "cases.db"
        kept = args.keep is not None and args.keep.exists()
        places = [("SQLite file", f"sqlite:///{file}", kept)]
        url = os.environ.get("CLOSEDLOOP_TEST_POSTGRES_URL")
        if url:
            places.append(("PostgreSQL", stack.enter_context(fresh_schema(url)), False))
        for label, where, done in places:
            filled = Filled(where, size, label, filled=done)
            try:
                if filled.load_seconds is None:
                    notes.append(f"{label}: {size:,} cases filled by an earlier run")
                else:
                    loaded = f"{filled.load_seconds:.1f} s"
                    notes.append(f"{label}: bulk loader, {size:,} cases in {loaded}")
                table += rows(filled, args.calls, args.repeats)
            finally:
                filled.close()
    print_table("Queries", table, notes)


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """``url`` pointed at a new schema of its own (dropped again at the end)."""
    schema = f"bench_q_{uuid.uuid4().hex[:10]}"
    plain = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with plain.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        # The store's tables made in the new schema by name: made through the search
        # path, a store would find tables of the database's ``public`` schema (which
        # the path includes, for pg_trgm) and use those instead.
        SQLStore(url, schema=schema).close()
        yield str(make_url(url).update_query_dict({"options": f"-csearch_path={schema},public"}))
    finally:
        with plain.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        plain.dispose()


if __name__ == "__main__":
    main()
