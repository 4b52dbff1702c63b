"""Time ``closedloop demo --days 30`` end to end, as a user runs it, and print cases/s.

Runs the real command (``python -m closedloop.cli demo``) in a temporary folder: the
simulation on a fresh SQLite file, the checks of every case and audit chain, the
metrics, the exports and the charts. Prints the wall time, the CPU time the command
used, the cases it created and cases per second, against the acceptance bar of one
minute on two cores.

Run it with ``python benchmarks/bench_demo.py [--days 30] [--seed 1] [--runs 1]``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BAR_SECONDS = 60.0


def one_run(days: int, seed: int) -> tuple[float, float, int, float | None]:
    """Wall seconds, CPU seconds, cases made, and the simulation's own seconds."""
    with tempfile.TemporaryDirectory() as folder:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "closedloop.cli", "demo", "--days", str(days),
             "--seed", str(seed)],
            cwd=folder, capture_output=True, text=True, encoding="utf-8", check=False,
            env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"demo failed ({done.returncode}):\n{done.stderr}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        with sqlite3.connect(Path(folder) / "closedloop-demo.db") as db:
            cases = int(db.execute("SELECT count(*) FROM closedloop_cases").fetchone()[0])
        simulated = re.search(r"\) in ([0-9.]+) s:", done.stdout)
        return wall, cpu, cases, float(simulated[1]) if simulated else None


def main() -> int:
    """Run the benchmark; returns the exit status (1 when over the bar)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    print(f"closedloop demo --days {args.days} --seed {args.seed}; {os.cpu_count()} cores")
    worst = 0.0
    for number in range(1, args.runs + 1):
        wall, cpu, cases, simulated = one_run(args.days, args.seed)
        worst = max(worst, wall)
        inner = f", simulation alone {simulated:.1f} s" if simulated is not None else ""
        print(
            f"run {number}: {cases} cases in {wall:.1f} s wall ({cpu:.1f} s CPU){inner}: "
            f"{cases / wall:.1f} cases/s"
        )
    verdict = "within" if worst < BAR_SECONDS else "OVER"
    print(f"slowest run {worst:.1f} s: {verdict} the {BAR_SECONDS:.0f} s bar")
    return 0 if worst < BAR_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
