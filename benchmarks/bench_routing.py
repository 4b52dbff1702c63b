"""Routing throughput: 10,000 reports against a generated 2,000-entry list.

Beside closedloop's indexed lookup runs the peer a first implementation would write: a
linear scan over every entry for each report, ranked by the same rules. Both must
agree on every report they route. The peer scans the first ``--peer-reports``
reports (all of them by default; pass fewer for a quick run).

Run it with ``python benchmarks/bench_routing.py [--reports N] [--entries N]``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from closedloop.engine.directory import InMemoryDirectory
from closedloop.engine.duties.entries import Entry
from closedloop.engine.duties.resolution import (
    Request,
    Routing,
    arbitration,
    fell_back,
    rank,
    routed,
)
from closedloop.engine.duties.responsibility_list import ResponsibilityList
from closedloop.engine.hierarchy import covers

Report = tuple[str, str, datetime]
SWITCH = date(2026, 7, 1)


def directory(streets: int = 10, communities: int = 10, grids: int = 10) -> InMemoryDirectory:
    """A district of ``streets`` x ``communities`` x ``grids`` areas and a unit per street."""
    areas: list[dict[str, Any]] = [{"code": "D1"}]
    for s in range(1, streets + 1):
        areas.append({"code": f"D1.S{s}"})
        for c in range(1, communities + 1):
            areas.append({"code": f"D1.S{s}.C{c}"})
            areas += [{"code": f"D1.S{s}.C{c}.G{g}"} for g in range(1, grids + 1)]
    units: list[dict[str, Any]] = [
        {"id": f"U{i}", "name": f"unit {i}", "level": "district"} for i in range(20)
    ]
    units += [{"id": f"ST{s}", "name": f"street {s}", "areas": [f"D1.S{s}"]} for s in range(1, 11)]
    return InMemoryDirectory.from_dict({"areas": areas, "units": units})


def categories(top: int = 20, sub: int = 10) -> list[str]:
    """``top`` classes with ``sub`` sub-classes each: ``01``, ``01.01`` ... ``20.10``."""
    codes = []
    for t in range(1, top + 1):
        codes.append(f"{t:02d}")
        codes += [f"{t:02d}.{s:02d}" for s in range(1, sub + 1)]
    return codes


def entries(count: int, codes: Sequence[str], areas: Sequence[str], seed: int) -> list[Any]:
    """``count`` entries without conflicts, shaped like a real list.

    Every street office leads on every top-level class in its street; a registered
    owner holds every fifth sub-class district-wide; the rest are specific entries for
    communities and grids, one in ten of them replaced half-way through 2026.
    """
    rng = random.Random(seed)
    units = [f"U{i}" for i in range(20)]
    streets = [code for code in areas if code.count(".") == 1]
    tops = [code for code in codes if "." not in code]
    made: list[dict[str, Any]] = [
        {"category": top, "area": street, "lead_unit": f"ST{street.split('.S')[1]}"}
        for street in streets
        for top in tops
    ]
    made += [
        {"category": code, "area": "D1", "basis": "owner", "lead_unit": rng.choice(units)}
        for code in codes[1::5]
    ]
    seen = {(line["category"], line["area"]) for line in made}
    local = [code for code in areas if code.count(".") >= 2]
    while len(made) < count:
        key = (rng.choice(codes), rng.choice(local))
        if key in seen:
            continue
        seen.add(key)
        line: dict[str, Any] = {"category": key[0], "area": key[1], "lead_unit": rng.choice(units)}
        if len(made) % 10 == 0 and len(made) + 1 < count:
            made.append({**line, "effective_to": SWITCH})
            line = {**line, "lead_unit": rng.choice(units), "effective_from": SWITCH}
        made.append(line)
    return [{**line, "id": f"E{i}"} for i, line in enumerate(made)]


def reports(count: int, codes: Sequence[str], grids: Sequence[str], seed: int) -> list[Report]:
    """``count`` reports at random grids and instants of 2026."""
    rng = random.Random(seed)
    leaves = [code for code in codes if "." in code]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        (rng.choice(leaves), rng.choice(grids), start + timedelta(minutes=rng.randrange(525_600)))
        for _ in range(count)
    ]


def naive(duties: ResponsibilityList) -> Callable[[str, str, datetime], Routing]:
    """The peer: scan every entry for every report, then rank by the same rules."""
    every = list(duties.entries)

    def resolve(category: str, area: str, at: datetime) -> Routing:
        local = at.astimezone(duties.time_zone)
        request = Request(category, area, at, local, duties.version)
        day = local.date()
        matches: list[Entry] = [
            e
            for e in every
            if covers(e.category, category) and covers(e.area, area) and e.in_force(day)
        ]
        if not matches:
            fallback = next(f for f in duties.fallbacks if covers(f.area, area))
            return fell_back(request, fallback)
        ranking = rank(matches, (duties.precedence, "the list's default"))
        if len(ranking.winners) == 1:
            return routed(request, matches, ranking)
        return arbitration(request, matches, ranking)

    return resolve


def timed(
    resolve: Callable[[str, str, datetime], Routing], batch: Sequence[Report]
) -> tuple[float, list[Routing]]:
    started = time.perf_counter()
    results = [resolve(category, area, at) for category, area, at in batch]
    return time.perf_counter() - started, results


def decision(routing: Routing) -> tuple[object, ...]:
    """What a routing decides, leaving aside the order entries are listed in the text."""
    return (routing.lead_unit, routing.entry_id, routing.gap, set(routing.candidate_entries))


def table(rows: Sequence[tuple[str, float, int]]) -> None:
    """Print (name, seconds, reports) rows with throughput and cost per report."""
    print(f"{'':28}{'reports':>9}{'total s':>10}{'reports/s':>12}{'µs/report':>11}")
    for name, seconds, count in rows:
        print(
            f"{name:28}{count:>9,}{seconds:>10.3f}{count / seconds:>12,.0f}"
            f"{seconds / count * 1e6:>11.1f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=2_000)
    parser.add_argument("--peer-reports", type=int, default=None)
    parser.add_argument("--seed", type=int, default=20260301)
    args = parser.parse_args()

    places = directory()
    codes = categories()
    data = {
        "version": "bench",
        "time_zone": "Asia/Shanghai",
        "entries": entries(args.entries, codes, places.areas(), args.seed),
        "fallbacks": [{"id": "FB-D1", "area": "D1", "lead_unit": "U0"}],
    }
    started = time.perf_counter()
    duties = ResponsibilityList.from_dict(data, directory=places)
    load = time.perf_counter() - started
    batch = reports(args.reports, codes, places.areas(level="grid"), args.seed + 1)
    peer_batch = batch[: args.peer_reports or len(batch)]

    ours, routings = timed(duties.resolve, batch)
    theirs, peer_routings = timed(naive(duties), peer_batch)
    for mine, peer in zip(routings, peer_routings, strict=False):
        assert decision(mine) == decision(peer), f"the peer disagrees: {mine} != {peer}"

    gaps = sum(routing.gap for routing in routings)
    print(
        f"{len(duties.entries):,} entries, {len(places.areas()):,} areas, {len(codes)} "
        f"categories; list loaded and checked in {load * 1000:.0f} ms; "
        f"{gaps:,} of {len(batch):,} reports fell back (gaps)\n"
    )
    table(
        [
            ("closedloop (indexed)", ours, len(batch)),
            ("naive linear scan (peer)", theirs, len(peer_batch)),
        ]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
