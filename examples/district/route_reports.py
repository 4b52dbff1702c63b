"""Route a day's batch of reports in the fictional Yunshan District and say why.

Loads the directory, the category catalogue and the responsibility list next to this
file, routes about twenty reports (category, grid, local time) and prints, for each,
the unit that leads and the list's explanation. Ends with the gaps: the
(category, grid) combinations that only a fallback owner covers.

Run it with ``python examples/district/route_reports.py``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from closedloop.engine.directory import InMemoryDirectory
from closedloop.engine.duties.catalog import CategoryCatalog
from closedloop.engine.duties.responsibility_list import ResponsibilityList

HERE = Path(__file__).resolve().parent
LOCAL = ZoneInfo("Asia/Shanghai")

REPORTS = [
    # (category, grid, local time, what the citizen said)
    ("01.01", "D1.S1.C1.G01", "2026-02-10 08:15", "water-supply manhole cover cracked"),
    ("02.01", "D1.S1.C1.G01", "2026-02-10 08:20", "garbage bags piled by the bus stop"),
    ("01.02", "D1.S2.C5.G09", "2026-02-11 19:40", "sewage cover missing"),
    ("01.03", "D1.S1.C2.G03", "2026-02-12 07:05", "storm-drain grate blocked by leaves"),
    ("01.04", "D1.S1.C3.G05", "2026-02-12 10:30", "fire hydrant leaking"),
    ("01.04", "D1.S2.C4.G07", "2026-02-12 10:45", "fire hydrant knocked over"),
    ("02.02", "D1.S2.C6.G12", "2026-02-13 16:00", "construction spoil dumped on the verge"),
    ("02.03", "D1.S1.C2.G04", "2026-02-14 06:50", "mud across the road after works"),
    ("03.01", "D1.S2.C4.G08", "2026-02-28 23:59", "street lamp out near the harbour"),
    ("03.01", "D1.S2.C4.G08", "2026-03-01 00:00", "same lamp, reported again after midnight"),
    ("03.01", "D1.S1.C1.G02", "2026-03-05 21:10", "three lamps flickering"),
    ("03.02", "D1.S1.C3.G06", "2026-03-06 09:00", "broken paving slabs"),
    ("04.01", "D1.S1.C1.G02", "2026-03-07 14:20", "dead branch hanging over the pavement"),
    ("04.01", "D1.S2.C5.G10", "2026-03-07 14:25", "street tree leaning after the storm"),
    ("04.02", "D1.S1.C2.G03", "2026-03-08 11:00", "litter all over the small park"),
    ("04.02", "D1.S2.C6.G11", "2026-03-08 11:30", "weeds and rubbish on the lakeside lawn"),
    ("05.01", "D1.S2.C4.G07", "2026-03-09 18:45", "unlicensed barbecue stall"),
    ("05.02", "D1.S1.C1.G01", "2026-03-09 19:00", "shop display blocking the pavement"),
    ("05.03", "D1.S1.C3.G05", "2026-03-10 08:00", "flyers pasted on every lamp post"),
    ("05.03", "D1.S2.C6.G12", "2026-03-10 08:10", "phone numbers sprayed on the wall"),
    ("02.01", "D1", "2026-03-11 12:00", "rubbish along the district boundary road"),
]


def load() -> tuple[InMemoryDirectory, CategoryCatalog, ResponsibilityList]:
    """The example's directory, categories and responsibility list."""
    directory = InMemoryDirectory.from_yaml(HERE / "directory.yaml")
    categories = CategoryCatalog.from_yaml(HERE / "categories.yaml")
    duties = ResponsibilityList.from_yaml(
        HERE / "duties.yaml", directory=directory, categories=categories
    )
    return directory, categories, duties


def main() -> int:
    """Route the batch and print each routing; returns the exit status."""
    directory, categories, duties = load()
    print(
        f"Responsibility list {duties.version} ({duties.time_zone.key}), "
        f"{len(duties.entries)} entries, {len(duties.fallbacks)} fallback owners\n"
    )
    for number, (category, area, local, said) in enumerate(REPORTS, start=1):
        at = datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=LOCAL)
        routing = duties.resolve(category, area, at)
        lead = routing.lead_unit or "arbitration"
        name = directory.unit(routing.lead_unit).name if routing.lead_unit else ""
        flag = "  [GAP]" if routing.gap else ""
        print(f"#{number:02d} {category} {categories.get(category).name_en} at {area}: {said}")
        print(f"    -> {lead} {name} (by {routing.entry_id}){flag}")
        print(f"    {routing.explanation}\n")
    grids = directory.areas(level="grid")
    gaps = duties.gaps(categories.leaves(), grids)
    print(f"Gaps: {len(gaps)} (category, grid) combinations only a fallback owner covers:")
    for category, grid in gaps:
        print(f"    {category} {categories.get(category).name} in {grid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
