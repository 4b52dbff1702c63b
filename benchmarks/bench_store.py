"""The durable loop beside the ceiling of the same database, in the same run.

What is timed is six triggers per case (classify, dispatch, accept, submit_result,
feedback, confirm): the cases are reported beforehand, untimed, and the report is not
counted as a transition. A transition per second is one of those triggers committed.

* **closedloop**: ``Engine.trigger`` on a ``SQLStore`` (one command, one transaction:
  the case read and written, its hash-chained audit event, its timers and
  notifications).
* **ceiling**: plain SQLAlchemy Core on one connection held open, doing for each
  transition what any durable state machine must at least do: one ``UPDATE`` of the
  case row (state and version, checked against the version read) and one ``INSERT``
  of an event row (no JSON), then one commit. The cases are inserted beforehand,
  untimed.

On a SQLite file both sides use WAL and the same ``synchronous`` setting: ``FULL`` (the
store's default; a commit survives power loss) and ``NORMAL`` (a commit survives a crash
of the process). On PostgreSQL (when ``CLOSEDLOOP_TEST_POSTGRES_URL`` is set) each side
runs in 1, 2 and 4 processes sharing one schema, each process on its own cases,
started together; the rate is all their transitions over the wall time from the
first start to the last finish.

Each repeat runs closedloop and its ceiling in turn (the order alternates); a ratio is
the median of the per-repeat ratios. Goals: SQLite at least 0.5 of the ceiling at FULL
and 0.25 at NORMAL; PostgreSQL at least 0.6 with one process, and closedloop's
2-process scaling (its 2-process rate over its 1-process rate) at least 0.8 of the
ceiling's.

Run it with ``python benchmarks/bench_store.py [--cases N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import loop
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    text,
    update,
)
from table import Row, median_ratio, paired, print_table, rate

from closedloop import Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.testing import ManualClock

TRIGGERS = len(loop.TRIGGERS)
SPAWN = multiprocessing.get_context("spawn")


# -- closedloop --------------------------------------------------------------------------


class Loop:
    """A warm engine on a store: reports cases untimed, then times their six triggers."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store
        self.engine = Engine(workflows.standard(), store=store, clock=ManualClock())
        self.counter = 0
        self.advance(self.reported(3))  # compile the statements, fill the pool

    def reported(self, cases: int) -> list[str]:
        ids = [loop.report(self.engine, self.counter + n) for n in range(cases)]
        self.counter += cases
        return ids

    def advance(self, ids: list[str]) -> None:
        for case_id in ids:
            loop.advance(self.engine, case_id)

    def timed(self, cases: int) -> float:
        ids = self.reported(cases)
        start = time.perf_counter()
        self.advance(ids)
        return time.perf_counter() - start


# -- the ceiling -------------------------------------------------------------------------


def ceiling_tables(schema: str | None = None) -> tuple[MetaData, Table, Table]:
    meta = MetaData(schema=schema)
    cases = Table(
        "ceiling_cases",
        meta,
        Column("id", String, primary_key=True),
        Column("state", String, nullable=False),
        Column("version", Integer, nullable=False),
    )
    events = Table(
        "ceiling_events",
        meta,
        Column("case_id", String, primary_key=True),
        Column("seq", Integer, primary_key=True),
        Column("trigger", String, nullable=False),
        Column("to_state", String, nullable=False),
    )
    return meta, cases, events


STATES = ("classified", "assigned", "in_progress", "handled", "awaiting_confirmation", "closed")


class Ceiling:
    """UPDATE + INSERT + commit per transition on one connection held open."""

    def __init__(self, connection: Connection, schema: str | None = None) -> None:
        self.connection = connection
        meta, self.cases, self.events = ceiling_tables(schema)
        meta.create_all(connection)
        connection.commit()
        self.prefix = uuid.uuid4().hex[:8]
        self.counter = 0
        self.advance(self.reported(3))

    def reported(self, cases: int) -> list[str]:
        ids = [f"{self.prefix}-{self.counter + n}" for n in range(cases)]
        self.counter += cases
        rows = [{"id": case_id, "state": "reported", "version": 1} for case_id in ids]
        self.connection.execute(insert(self.cases), rows)
        self.connection.commit()
        return ids

    def advance(self, ids: list[str]) -> None:
        connection, cases, events = self.connection, self.cases, self.events
        for case_id in ids:
            for version, (trigger, state) in enumerate(zip(loop.TRIGGERS, STATES, strict=True)):
                done = connection.execute(
                    update(cases)
                    .where(cases.c.id == case_id, cases.c.version == version + 1)
                    .values(state=state, version=version + 2)
                )
                assert done.rowcount == 1
                connection.execute(
                    insert(events),
                    {"case_id": case_id, "seq": version + 2, "trigger": trigger, "to_state": state},
                )
                connection.commit()

    def timed(self, cases: int) -> float:
        ids = self.reported(cases)
        start = time.perf_counter()
        self.advance(ids)
        return time.perf_counter() - start


@contextmanager
def sqlite_ceiling(path: Path, synchronous: str) -> Iterator[Ceiling]:
    """The ceiling on a SQLite file in WAL mode with the given ``synchronous``."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def pragmas(dbapi: Any, _: Any) -> None:
        dbapi.execute("PRAGMA journal_mode = WAL")
        dbapi.execute(f"PRAGMA synchronous = {synchronous}")

    try:
        with engine.connect() as connection:
            yield Ceiling(connection)
    finally:
        engine.dispose()


# -- SQLite ------------------------------------------------------------------------------


def sqlite_rows(cases: int, repeats: int, folder: Path) -> list[Row]:
    result = []
    goals: tuple[tuple[Literal["FULL", "NORMAL"], float], ...] = (("FULL", 0.5), ("NORMAL", 0.25))
    for synchronous, goal in goals:
        url = f"sqlite:///{folder / f'loop-{synchronous}.db'}"
        store = SQLStore(url, synchronous=synchronous)
        try:
            with sqlite_ceiling(folder / f"ceiling-{synchronous}.db", synchronous) as ceiling:
                ours = Loop(store)
                mine, theirs = paired(
                    repeats, lambda o=ours: o.timed(cases), lambda c=ceiling: c.timed(cases)
                )
        finally:
            store.close()
        transitions = cases * TRIGGERS
        result.append(
            Row(
                f"SQLite file, synchronous={synchronous}",
                rate(transitions, statistics.median(theirs)),
                rate(transitions, statistics.median(mine)),
                median_ratio(theirs, mine),
                goal,
            )
        )
    return result


# -- PostgreSQL --------------------------------------------------------------------------


def pg_worker(side: str, url: str, schema: str, cases: int, barrier: Any, out: Any) -> None:
    """One process of a PostgreSQL run: set up untimed, wait for the others, run."""
    if side == "closedloop":
        store = SQLStore(url, schema=schema)
        ours = Loop(store)
        ids = ours.reported(cases)
        barrier.wait()
        start = time.monotonic()
        ours.advance(ids)
        out.put((start, time.monotonic()))
        store.close()
        return
    engine = create_engine(url)
    with engine.connect() as connection:
        ceiling = Ceiling(connection, schema)
        ids = ceiling.reported(cases)
        barrier.wait()
        start = time.monotonic()
        ceiling.advance(ids)
        out.put((start, time.monotonic()))
    engine.dispose()


def pg_run(side: str, url: str, schema: str, cases: int, processes: int) -> float:
    """Wall seconds ``processes`` processes take for ``cases`` cases each."""
    barrier = SPAWN.Barrier(processes)
    out = SPAWN.Queue()
    workers = [
        SPAWN.Process(target=pg_worker, args=(side, url, schema, cases, barrier, out))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    spans = [out.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0, f"a {side} worker failed"
    return max(end for _, end in spans) - min(start for start, _ in spans)


def postgres_rows(url: str, cases: int, repeats: int, counts: list[int]) -> list[Row]:
    ours, theirs = f"bench_{uuid.uuid4().hex[:8]}", f"bench_{uuid.uuid4().hex[:8]}"
    SQLStore(url, schema=ours).close()  # the tables exist before the workers start
    engine = create_engine(url)
    with engine.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {theirs}"))
        ceiling_tables(theirs)[0].create_all(connection)
        connection.commit()
    seconds: dict[int, tuple[list[float], list[float]]] = {}
    try:
        for processes in counts:
            seconds[processes] = paired(
                repeats,
                lambda p=processes: pg_run("closedloop", url, ours, cases, p),
                lambda p=processes: pg_run("ceiling", url, theirs, cases, p),
            )
    finally:
        with engine.connect() as connection:
            for schema in (ours, theirs):
                connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            connection.commit()
        engine.dispose()
    result = []
    for processes, (mine, peer) in seconds.items():
        transitions = cases * TRIGGERS * processes
        result.append(
            Row(
                f"PostgreSQL, {processes} process{'es' if processes > 1 else ''}",
                rate(transitions, statistics.median(peer)),
                rate(transitions, statistics.median(mine)),
                median_ratio(peer, mine),
                0.6 if processes == 1 else None,
            )
        )
    if 1 in seconds and 2 in seconds:
        # scaling = rate(2) / rate(1) = 2 * seconds(1) / seconds(2), per repeat
        mine = [2 * a / b for a, b in zip(seconds[1][0], seconds[2][0], strict=True)]
        peer = [2 * a / b for a, b in zip(seconds[1][1], seconds[2][1], strict=True)]
        result.append(
            Row(
                "PostgreSQL, 2-process scaling (rate 2 / rate 1)",
                f"{statistics.median(peer):.2f}x",
                f"{statistics.median(mine):.2f}x",
                median_ratio(mine, peer),
                0.8,
            )
        )
    return result


def rows(
    cases: int, repeats: int, counts: list[int], url: str | None
) -> tuple[list[Row], list[str]]:
    """The table's rows for this benchmark, and its notes."""
    notes = [
        f"{cases:,} cases x {TRIGGERS} triggers per repeat, reported beforehand (untimed), "
        f"{repeats} repeats; peer = SQLAlchemy Core ceiling (UPDATE + INSERT + commit)"
    ]
    with tempfile.TemporaryDirectory(prefix="closedloop-bench-") as tmp:
        result = sqlite_rows(cases, repeats, Path(tmp))
    if url:
        result += postgres_rows(url, cases, repeats, counts)
        notes.append(f"PostgreSQL: {cases:,} cases per process, processes started together")
    else:
        notes.append("PostgreSQL: not run (set CLOSEDLOOP_TEST_POSTGRES_URL)")
    return result, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100, help="cases per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--processes", default="1,2,4", help="PostgreSQL process counts")
    args = parser.parse_args()
    counts = [int(p) for p in args.processes.split(",")]
    url = os.environ.get("CLOSEDLOOP_TEST_POSTGRES_URL")
    table, notes = rows(args.cases, args.repeats, counts, url)
    print_table("Durable loop", table, notes)


if __name__ == "__main__":
    main()
