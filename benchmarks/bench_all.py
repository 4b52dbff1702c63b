"""Every peer benchmark in one run, printed as one table.

Runs ``bench_memory``, ``bench_store`` and ``bench_tick`` one after the other in this
process and prints their rows together (``docs/performance.md`` shows one such table).
``--quick`` shrinks every size for a first look; ``--tiny`` is the smoke test's size.

Run it with ``python benchmarks/bench_all.py [--quick | --tiny] [--million]``.
"""

from __future__ import annotations

import argparse
import os

import bench_memory
import bench_store
import bench_tick
from table import print_table

SIZES = {
    # name: (loop cases, store cases, repeats, tick sizes, due, many)
    "full": (300, 100, 5, [10_000, 100_000], 100, 500),
    "quick": (100, 40, 3, [10_000, 100_000], 100, 200),
    "tiny": (3, 3, 1, [200, 400], 5, 10),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    size.add_argument("--tiny", action="store_true", help="a few cases: checks it runs")
    parser.add_argument("--million", action="store_true", help="tick among 1,000,000 too")
    args = parser.parse_args()
    name = "tiny" if args.tiny else "quick" if args.quick else "full"
    loop_cases, store_cases, repeats, sizes, due, many = SIZES[name]
    if args.million:
        sizes = [*sizes, 1_000_000]
    url = os.environ.get("CLOSEDLOOP_TEST_POSTGRES_URL")
    processes = [1, 2] if args.tiny else [1, 2, 4]
    parts = [
        bench_memory.rows(loop_cases, repeats),
        bench_store.rows(store_cases, repeats, processes, url),
        bench_tick.rows(sizes, due, many, repeats),
    ]
    rows = [row for part, _ in parts for row in part]
    notes = [note for _, part in parts for note in part]
    print_table(f"closedloop beside its peers ({name} sizes)", rows, notes)


if __name__ == "__main__":
    main()
