"""What a tick costs on a warm engine, among many open cases, and how fast due timers apply.

One SQLite file per size (10,000 and 100,000 open cases; 1,000,000 with
``--million``), each filled once by the bulk loader (``bulk.py``) with filler cases
whose timers are spread over 90 days starting 30 days after the first tick: none of
them is ever due. Each file has one store and one engine, opened once and warmed up by
a first, untimed round; the engine's clock only moves forward.

A round on a file: ``--due`` cases (100 by default) are reported at the clock's time,
untimed; the clock moves 90 minutes on, where exactly their warning timers are due
(the classify clock warns after 84 minutes and breaches after 120); ``Engine.tick`` is
timed and must report exactly ``--due`` applied, none stale or deferred, and a second
tick at the same instant nothing; then those cases are rejected, untimed, so that no
timer of theirs comes due in a later round. Each repeat runs one round on every file
in turn.

* **tick cost**: the median tick per size, and the ratio of the largest size's tick
  to the smallest's, paired per repeat (goal: the 1,000,000-case tick at most 1.5
  times the 10,000-case tick: the cost should follow what is due, not what is open).
* **due timers applied per second, many due at once**: a round with ``--many`` cases
  due together on the smallest file, beside the rate of plain commands on the same
  file (rejecting those cases, one ``Engine.trigger`` each); goal: at least 3 times
  the per-command rate.

The store runs with its defaults (WAL, ``synchronous=FULL``), so each commit is synced.

Run it with ``python benchmarks/bench_tick.py [--million] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bulk
import loop
from table import Row, median_ratio, print_table, rate

from closedloop import Engine, NaturalCalendar, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.testing import ManualClock

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
FILLER_FROM = START + timedelta(days=30)
FILLER_SPREAD = timedelta(days=90)
WAIT = timedelta(minutes=90)
"""From a report to the tick: its classify warning is due (84 min), its breach not (120)."""


class Ticked:
    """One filled file with its warm store, engine and clock."""

    def __init__(self, path: Path, size: int) -> None:
        url = f"sqlite:///{path}"
        SQLStore(url).close()  # the tables
        self.size = size
        self.load_seconds = bulk.fill(url, size, start=FILLER_FROM, spread=FILLER_SPREAD)
        self.store = SQLStore(url)
        self.clock = ManualClock(START)
        self.engine = Engine(
            workflows.standard(), store=self.store, clock=self.clock, calendar=NaturalCalendar()
        )
        self.counter = 0
        self.round(10)  # warm up

    def round(self, due: int) -> tuple[float, float]:
        """Seconds of the tick applying ``due`` timers, and of ``due`` commands after it."""
        ids = [loop.report(self.engine, self.counter + n) for n in range(due)]
        self.counter += due
        self.clock.advance(WAIT)
        start = time.perf_counter()
        done = self.engine.tick()
        ticked = time.perf_counter() - start
        assert (done.applied, done.stale, done.deferred) == (due, 0, 0), done
        assert self.engine.tick().applied == 0  # nothing else was due
        start = time.perf_counter()
        for case_id in ids:
            self.engine.trigger(case_id, "reject", by=loop.DISPATCHER, reason="Benchmark")
        commands = time.perf_counter() - start
        return ticked, commands

    def close(self) -> None:
        self.store.close()


def rows(sizes: list[int], due: int, many: int, repeats: int) -> tuple[list[Row], list[str]]:
    """The table's rows for this benchmark, and its notes."""
    notes = [
        f"SQLite file, synchronous=FULL; {due} timers due per tick; {repeats} repeats; "
        "filler timers spread over 90 days, none due"
    ]
    with tempfile.TemporaryDirectory(prefix="closedloop-bench-") as tmp:
        files = [Ticked(Path(tmp) / f"tick-{size}.db", size) for size in sizes]
        try:
            for ticked in files:
                notes.append(
                    f"bulk loader: {ticked.size:,} open cases in {ticked.load_seconds:.1f} s"
                )
            ticks: dict[int, list[float]] = {size: [] for size in sizes}
            for _ in range(repeats):
                for ticked in files:
                    ticks[ticked.size].append(ticked.round(due)[0])
            applied: list[float] = []
            commands: list[float] = []
            for _ in range(repeats):
                tick_seconds, command_seconds = files[0].round(many)
                applied.append(tick_seconds)
                commands.append(command_seconds)
        finally:
            for ticked in files:
                ticked.close()
    result = [
        Row(
            f"tick, {due} due among {size:,} open cases, ms",
            "",
            f"{statistics.median(ticks[size]) * 1e3:,.1f}",
            None,
        )
        for size in sizes
    ]
    smallest, largest = sizes[0], sizes[-1]
    if largest != smallest:
        result.append(
            Row(
                f"tick cost, {largest:,} / {smallest:,} open cases",
                f"{statistics.median(ticks[smallest]) * 1e3:,.1f} ms",
                f"{statistics.median(ticks[largest]) * 1e3:,.1f} ms",
                median_ratio(ticks[largest], ticks[smallest]),
                1.5,
                most=True,
            )
        )
    result.append(
        Row(
            f"{many} due at once: timers applied/s vs commands/s",
            rate(many, statistics.median(commands)),
            rate(many, statistics.median(applied)),
            median_ratio(commands, applied),
            3.0,
        )
    )
    if largest < 1_000_000:
        notes.append("the 1,000,000-case size runs with --million (goal row: largest size)")
    return result, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="open cases per file")
    parser.add_argument("--million", action="store_true", help="add a 1,000,000-case file")
    parser.add_argument("--due", type=int, default=100, help="timers due per tick")
    parser.add_argument("--many", type=int, default=500, help="timers due at once")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = sorted(
        {int(s) for s in args.sizes.split(",")} | ({1_000_000} if args.million else set())
    )
    table, notes = rows(sizes, args.due, args.many, args.repeats)
    print_table("Tick", table, notes)


if __name__ == "__main__":
    main()
