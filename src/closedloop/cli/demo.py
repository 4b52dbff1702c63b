"""``closedloop demo``: a simulated district on a SQLite file, then the board and the rates.

Runs :class:`~closedloop.simulation.Simulation` for ``--days`` days on a fresh SQLite
file, with a progress bar; then checks every case (closed, or waiting on someone with a
clock; its audit chain intact), prints the supervision board and the metric table by
unit, and writes CSV and JSON exports and PNG charts to ``--out``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from closedloop import metrics
from closedloop.cli.failures import fail, reported
from closedloop.cli.output import console
from closedloop.cli.report import board_table, metric_tables
from closedloop.engine.ports import CaseStore
from closedloop.errors import MissingDependency
from closedloop.metrics import charts
from closedloop.metrics.signals import SIGNALS

if TYPE_CHECKING:
    from closedloop.simulation import CaseCheck, Simulation, SimulationResult

DEFAULT_DB = Path("closedloop-demo.db")
DEFAULT_OUT = Path("closedloop-demo")
SYNCHRONOUS: Final = "NORMAL"
"""The demo's SQLite ``synchronous`` mode: a commit survives a crash of the process, not
a power loss (the store's default, ``FULL``, survives both and is slower)."""


DEMO_SIGNALS: Final = metrics.SignalConfig(
    min_base=5,
    ping_pong_cases=8,
    hollow_share=0.4,
    repeat_window=None,
    silent_working_days=4,
    silent_cases=3,
)
"""The demo's signal thresholds, fitted to a month of the simulated district (seeds 1
to 6, where each flags exactly the units with a habit). The units with a habit stand
well above them: YS-LIGHT submits 62-88 % of its results in the last tenth of the
time, YS-GREEN and YS-ROADS bounce 9-32 cases a month between them. The honest units
stay below: a unit returns at most 5 bounced cases a month (a street office that
returns misrouted cases), leaves at most a quarter of its closures hollow (callbacks
that say "not resolved", rework), and leaves at most 2 cases at a time untouched for
four working days (simulated units record nothing while they work). A share is judged
on five or more. No repeat reports are looked for, since the simulation draws every
report afresh and places it by grid only, so a later report of the grid is no repeat.
The dispatcher's misrouting flags fall on the categories the ping-pong pair leads:
the dispatcher passes a bounced case on to the other unit, and that decision is
overturned in turn."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the demo shows at the end."""

    result: SimulationResult
    check: CaseCheck
    board: metrics.SupervisionBoard
    table: metrics.MetricTable
    files: dict[str, Path]
    seconds: float
    district: str
    zone: str


@reported
def demo(
    days: Annotated[int, typer.Option(min=1, max=366, help="Days to simulate.")] = 30,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same results.")] = 1,
    db: Annotated[Path, typer.Option(help="The SQLite file to write.")] = DEFAULT_DB,
    out: Annotated[Path, typer.Option(help="Folder for the exports and charts.")] = DEFAULT_OUT,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing --db file (else refuse to run).")
    ] = True,
) -> None:
    """Simulate a district for some days on SQLite, then show the board and the rates."""
    _fresh(db, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    from closedloop.adapters.sqlalchemy import SQLStore  # slow to import: only when needed

    store = SQLStore(f"sqlite:///{db.resolve()}", synchronous=SYNCHRONOUS)
    try:
        outcome = _run(store, days, seed, out)
    finally:
        store.close()
    _show(console(), outcome, db)


def _fresh(db: Path, overwrite: bool) -> None:
    """Remove a previous demo database (with its WAL files), or refuse to touch it."""
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    if not db.exists():
        return
    if not overwrite:
        fail(f"{db} exists; pass --overwrite to replace it, or choose another --db")
    for file in files:
        file.unlink(missing_ok=True)


def _run(store: CaseStore, days: int, seed: int, out: Path) -> Outcome:
    # Only the demo needs the simulated district: `closedloop --help` and the other
    # commands never load it.
    from closedloop.simulation import Simulation, check_cases

    started = time.perf_counter()
    simulation = Simulation(store, days=days, seed=seed)
    result = _with_progress(simulation, console(stderr=True))
    seconds = time.perf_counter() - started
    zone = simulation.district.time_zone.key
    period = metrics.Period(start=result.start, end=result.end, timezone=zone)
    report = metrics.signals(store, period, config=DEMO_SIGNALS)
    board = metrics.supervision_board(store, as_of=result.end)
    board = board.model_copy(update={"flagged_units": report.flags})
    table = metrics.compute(store, period, by="unit")
    files = _export(out, table, board, metrics.daily(store, period), report)
    check = check_cases(simulation.engine, result.case_ids)
    name = simulation.district.name
    return Outcome(result, check, board, table, files, seconds, name, zone)


def _with_progress(simulation: Simulation, err: Console) -> SimulationResult:
    columns = (
        TextColumn("Simulating {task.fields[district]}"),
        BarColumn(),
        TextColumn("day {task.fields[day]}/{task.fields[days]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(
            "simulate", total=simulation.hours, district=simulation.district.name,
            day=1, days=simulation.days,
        )  # fmt: skip

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, day=min(done // 24 + 1, simulation.days))

        return simulation.run(advance)


def _export(
    out: Path,
    table: metrics.MetricTable,
    board: metrics.SupervisionBoard,
    series: metrics.DailySeries,
    report: metrics.SignalReport,
) -> dict[str, Path]:
    files = {
        "metrics by unit (CSV)": metrics.write_csv(table, out / "metrics-by-unit.csv"),
        "metrics by unit (JSON)": metrics.write_json(table, out / "metrics-by-unit.json"),
        "supervision board (CSV)": metrics.write_csv(board, out / "supervision-board.csv"),
        "flagged cases (CSV)": metrics.write_csv(board.flagged_table(), out / "flagged-cases.csv"),
        "intake per day (CSV)": metrics.write_csv(series, out / "intake-per-day.csv"),
        "supervision signals (CSV)": metrics.write_csv(report, out / "supervision-signals.csv"),
    }
    try:
        files["on-time closure chart (PNG)"] = charts.on_time_chart(
            table, out / "on-time-by-unit.png"
        )
        files["intake chart (PNG)"] = charts.intake_chart(series, out / "intake-per-day.png")
        (out / "signals").mkdir(exist_ok=True)
        for signal in SIGNALS:
            charts.signal_chart(report, signal, out / "signals" / f"{signal}.png")
        files["a chart per signal (PNG)"] = out / "signals"
    except MissingDependency as missing:  # the numbers stand without the pictures
        console(stderr=True).print(f"charts skipped: {missing}")
    return files


def _show(out: Console, outcome: Outcome, db: Path) -> None:
    result, check = outcome.result, outcome.check
    if not check.ok:  # a bug in the engine or the simulation, not the user's to fix
        fail(f"cases left unattended {check.unattended}, chains broken {check.broken}")
    days = list(outcome.table.period.local_days())
    out.print(
        f"Simulated {len(days)} days of {outcome.district} ({days[0]} to {days[-1]}, "
        f"seed {result.seed}) in {outcome.seconds:.1f} s: {len(result.case_ids)} cases, "
        f"{result.commands} commands, {result.timers} timers fired, "
        f"{sum(result.delivered.values())} notifications delivered.",
        soft_wrap=True,
    )
    out.print(
        f"{check.final} cases closed (or rejected, merged, withdrawn); {check.open} open, "
        f"each waiting on someone with a clock running; all {check.cases} audit chains verify.",
        soft_wrap=True,
    )
    out.print()
    out.print(board_table(outcome.board))
    if outcome.board.flagged_units:
        out.print("Flagged by the supervision signals (a reason to look, not a verdict):")
        for line in outcome.board.flag_lines():
            out.print(f"  {line}", soft_wrap=True, markup=False)
        out.print()
    for shown in metric_tables(outcome.table):
        out.print(shown)
    out.print(f"Database: {db} (SQLite, synchronous={SYNCHRONOUS})", soft_wrap=True)
    for what, path in outcome.files.items():
        out.print(f"{what}: {path}", soft_wrap=True)
    if result.case_ids:
        hint = f"closedloop case show {result.case_ids[-1]} --db {db} --timezone {outcome.zone}"
        out.print(f"\nLook at a case: {hint}", soft_wrap=True)
