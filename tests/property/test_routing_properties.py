"""Properties of routing over random responsibility lists.

The lists are drawn over a small fixed directory and category tree, with conflicts
allowed so that the arbitration outcome is exercised too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import assume, given
from hypothesis import strategies as st

from closedloop.engine.directory import InMemoryDirectory
from closedloop.engine.duties.catalog import CategoryCatalog
from closedloop.engine.duties.entries import Entry
from closedloop.engine.duties.resolution import Routing
from closedloop.engine.duties.responsibility_list import ResponsibilityList
from closedloop.engine.hierarchy import covers, depth

AREAS = (
    "D1",
    "D1.S1",
    "D1.S1.C1",
    "D1.S1.C1.G1",
    "D1.S1.C1.G2",
    "D1.S1.C2",
    "D1.S1.C2.G3",
    "D1.S2",
    "D1.S2.C3",
    "D1.S2.C3.G4",
)
CATEGORIES = ("01", "01.01", "01.02", "02", "02.01", "02.01.01")
UNITS = ("U1", "U2", "U3", "U4")
DAYS = (None, date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1))
ZONES = (UTC, ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York"))

DIRECTORY = InMemoryDirectory.from_dict(
    {
        "areas": [{"code": code} for code in AREAS],
        "units": [{"id": unit, "name": unit} for unit in UNITS],
    }
)


@st.composite
def entries(draw: st.DrawFn, ident: str) -> dict[str, Any]:
    basis = draw(st.sampled_from(["owner", "territory"]))
    start = draw(st.sampled_from(DAYS))
    end = draw(
        st.sampled_from([day for day in DAYS if day is None or start is None or day > start])
    )
    entry: dict[str, Any] = {
        "id": ident,
        "category": draw(st.sampled_from(CATEGORIES)),
        "area": draw(st.sampled_from(AREAS)),
        "basis": basis,
        "lead_unit": draw(st.sampled_from(UNITS)),
        "effective_from": start,
        "effective_to": end,
    }
    if basis == "owner":
        entry["precedence"] = draw(st.sampled_from([None, "owner_first", "territory_first"]))
    return entry


@st.composite
def lists(draw: st.DrawFn) -> ResponsibilityList:
    count = draw(st.integers(min_value=0, max_value=12))
    drawn = [draw(entries(f"E{i}")) for i in range(count)]
    precedences = st.sampled_from([None, "owner_first", "territory_first"])
    catalogue = CategoryCatalog.from_dict(
        {
            "categories": [
                {"code": c, "name": c, "precedence": draw(precedences)} for c in CATEGORIES
            ]
        }
    )
    fallbacks = [{"id": "FB-D1", "area": "D1", "lead_unit": "U1"}]
    if draw(st.booleans()):
        fallbacks.append({"id": "FB-S2", "area": "D1.S2", "lead_unit": "U2"})
    return ResponsibilityList.from_dict(
        {
            "version": "p",
            "time_zone": "Asia/Shanghai",
            "precedence": draw(st.sampled_from(["owner_first", "territory_first"])),
            "entries": drawn,
            "fallbacks": fallbacks,
        },
        directory=DIRECTORY,
        categories=catalogue,
        allow_conflicts=True,
    )


@st.composite
def covered_reports(draw: st.DrawFn) -> tuple[ResponsibilityList, str, str, datetime]:
    """A list and a report that at least one of its entries covers when it is made."""
    duties = draw(lists().filter(lambda duties: bool(duties.entries)))
    entry = draw(st.sampled_from(duties.entries))
    category = draw(st.sampled_from([c for c in CATEGORIES if covers(entry.category, c)]))
    area = draw(st.sampled_from([a for a in AREAS if covers(entry.area, a)]))
    first = entry.effective_from or date(2025, 12, 15)
    last = (entry.effective_to or date(2026, 4, 15)) - timedelta(days=1)
    day = draw(st.dates(min_value=first, max_value=last))
    minute = draw(st.integers(min_value=0, max_value=24 * 60 - 1))
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo("Asia/Shanghai"))
    at = (local + timedelta(minutes=minute)).astimezone(draw(st.sampled_from(ZONES)))
    return duties, category, area, at


instants = st.builds(
    lambda minutes, zone: (
        datetime(2025, 12, 15, tzinfo=UTC) + timedelta(minutes=minutes)
    ).astimezone(zone),
    st.integers(min_value=0, max_value=120 * 24 * 60),
    st.sampled_from(ZONES),
)


def in_force(entry: Entry, category: str, area: str, at: datetime) -> bool:
    """The naive reading of 'matches': a linear check of one entry."""
    day = at.astimezone(ZoneInfo("Asia/Shanghai")).date()
    return covers(entry.category, category) and covers(entry.area, area) and entry.in_force(day)


def with_entry(duties: ResponsibilityList, newcomer: dict[str, Any]) -> ResponsibilityList:
    """``duties`` with one more entry, everything else the same."""
    data = {
        "version": "p2",
        "time_zone": "Asia/Shanghai",
        "entries": [e.model_dump(exclude_none=True) for e in duties.entries] + [newcomer],
        "fallbacks": [f.model_dump(exclude_none=True) for f in duties.fallbacks],
        "precedence": duties.precedence,
    }
    return ResponsibilityList.from_dict(
        data, directory=DIRECTORY, categories=duties.categories, allow_conflicts=True
    )


def decider(duties: ResponsibilityList, routing: Routing) -> Entry:
    assert routing.entry_id is not None
    return duties.entry(routing.entry_id)


@given(lists(), st.sampled_from(CATEGORIES), st.sampled_from(AREAS), instants)
def test_exactly_one_lead_unit_or_arbitration_and_the_decider_is_named(
    duties: ResponsibilityList, category: str, area: str, at: datetime
) -> None:
    routing = duties.resolve(category, area, at)
    matches = [e for e in duties.entries if in_force(e, category, area, at)]

    if routing.needs_arbitration:
        assert routing.lead_unit is None
        assert routing.entry_id is None
        assert len(routing.candidate_entries) >= 2
        assert set(routing.candidates) <= set(UNITS)
        assert all(ident in routing.explanation for ident in routing.candidate_entries)
        assert duties.conflicts
    else:
        assert routing.lead_unit in UNITS
        assert f"{routing.entry_id} decides" in routing.explanation
    if routing.gap:
        assert not matches
        fallback = {f.id: f for f in duties.fallbacks}[routing.entry_id or ""]
        assert covers(fallback.area, area)
        assert routing.lead_unit == fallback.lead_unit
    elif not routing.needs_arbitration:
        entry = decider(duties, routing)
        assert entry in matches
        assert routing.lead_unit == entry.lead_unit


@given(covered_reports())
def test_a_more_specific_matching_entry_of_the_same_basis_always_wins(
    report: tuple[ResponsibilityList, str, str, datetime],
) -> None:
    duties, category, area, at = report
    routing = duties.resolve(category, area, at)
    assert not routing.gap
    assume(not routing.needs_arbitration)
    chosen = decider(duties, routing)

    rivals = [
        e
        for e in duties.entries
        if e.basis == chosen.basis and e.id != chosen.id and in_force(e, category, area, at)
    ]
    assert all(rival.specificity <= chosen.specificity for rival in rivals)


@given(covered_reports())
def test_adding_a_more_specific_entry_takes_the_report_over(
    report: tuple[ResponsibilityList, str, str, datetime],
) -> None:
    duties, category, area, at = report
    routing = duties.resolve(category, area, at)
    assume(not routing.needs_arbitration)
    chosen = decider(duties, routing)
    exact = (depth(area), depth(category))
    assume(exact > chosen.specificity)
    newcomer = {
        "id": "NEW",
        "category": category,
        "area": area,
        "basis": chosen.basis,
        # the same stance towards the territory, so precedence does not flip
        "precedence": chosen.precedence,
        "lead_unit": "U4" if chosen.lead_unit != "U4" else "U3",
    }
    extended = with_entry(duties, newcomer)

    after = extended.resolve(category, area, at)

    assert (after.entry_id, after.lead_unit) == ("NEW", newcomer["lead_unit"])
