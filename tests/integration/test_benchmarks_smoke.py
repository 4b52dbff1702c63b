"""The peer benchmarks run at their tiniest sizes and print the rows of their table.

Only the table's shape is checked (which rows, six columns, a verdict wherever a goal
is set); the figures are the benchmarks' business.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = bool(os.environ.get("CLOSEDLOOP_TEST_POSTGRES_URL"))
SPIFF = importlib.util.find_spec("SpiffWorkflow") is not None

MEMORY_ROWS = ["in-memory loop vs transitions", *(["in-memory loop vs SpiffWorkflow"] * SPIFF)]
STORE_ROWS = [
    "SQLite file, synchronous=FULL",
    "SQLite file, synchronous=NORMAL",
    *(
        ["PostgreSQL, 1 process", "PostgreSQL, 2 processes", "PostgreSQL, 2-process scaling"]
        * POSTGRES
    ),
]
TICK_ROWS = [
    "tick, 3 due among 50 open cases",
    "tick, 3 due among 100 open cases",
    "tick cost, 100 / 50 open cases",
    "5 due at once: timers applied/s vs commands/s",
]
ALL_TICK_ROWS = [
    "tick, 5 due among 200 open cases",
    "tick, 5 due among 400 open cases",
    "tick cost, 400 / 200 open cases",
    "10 due at once: timers applied/s vs commands/s",
]

QUERY_ROWS = [
    f"{measure}, {place}, 300 cases: {kind}"
    for place in ["SQLite file", *(["PostgreSQL"] * POSTGRES)]
    for measure in (
        "inbox, 50 most urgent",
        "text search",
        "text search, newest first",
        "facets by state",
    )
    for kind in ("hand-written / closedloop", "p95 ms")
]
HTTP_ROWS = [
    "Open311 POST requests vs bare FastAPI",
    "Open311 POST requests, p95 ms",
    "GET inbox vs bare FastAPI",
    "GET inbox, p95 ms",
]


def table(script: str, *args: str) -> list[list[str]]:
    """Run ``benchmarks/<script>`` and return the cells of its table's rows."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert cells[0] == ["measure", "peer", "closedloop", "ratio", "goal", "met"]
    return cells[1:]


def check(rows: list[list[str]], expected: list[str]) -> None:
    assert len(rows) == len(expected)
    for row, start in zip(rows, expected, strict=True):
        assert len(row) == 6
        assert row[0].startswith(start), (row[0], start)
        assert row[2]  # a closedloop figure on every row
        if row[4]:  # a goal: a ratio and a verdict beside it
            assert row[3]
            assert row[5] in {"yes", "NO"}


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("bench_memory.py", ["--cases", "2", "--repeats", "1"], MEMORY_ROWS),
        ("bench_store.py", ["--cases", "2", "--repeats", "1", "--processes", "1,2"], STORE_ROWS),
        (
            "bench_tick.py",
            ["--sizes", "50,100", "--due", "3", "--many", "5", "--repeats", "1"],
            TICK_ROWS,
        ),
        ("bench_all.py", ["--tiny"], MEMORY_ROWS + STORE_ROWS + ALL_TICK_ROWS),
        ("bench_queries.py", ["--cases", "300", "--calls", "2", "--repeats", "1"], QUERY_ROWS),
        ("bench_http.py", ["--requests", "4", "--repeats", "1", "--pool", "2"], HTTP_ROWS),
    ],
)
def test_benchmark_prints_its_table(script: str, args: list[str], expected: list[str]) -> None:
    check(table(script, *args), expected)
