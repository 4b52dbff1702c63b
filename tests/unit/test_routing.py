"""Routing reports through the responsibility list: which unit, at which instant, and why.

Most scenarios use the fictional Yunshan District in ``examples/district``; the load
errors use small lists written inline, so each shows exactly one kind of mistake.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest

from closedloop.engine.directory import InMemoryDirectory, ancestors, covers
from closedloop.engine.duties.catalog import CategoryCatalog
from closedloop.engine.duties.responsibility_list import ResponsibilityList
from closedloop.engine.model import Actor
from closedloop.errors import (
    InvalidDirectory,
    InvalidResponsibilityList,
    NaiveDatetime,
    UnknownName,
    ValidationError,
)

DISTRICT = Path(__file__).resolve().parents[2] / "examples" / "district"
SHANGHAI = ZoneInfo("Asia/Shanghai")
GRID = "D1.S1.C1.G01"
NOON = datetime(2026, 2, 10, 12, 0, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def directory() -> InMemoryDirectory:
    return InMemoryDirectory.from_yaml(DISTRICT / "directory.yaml")


@pytest.fixture(scope="module")
def categories() -> CategoryCatalog:
    return CategoryCatalog.from_yaml(DISTRICT / "categories.yaml")


@pytest.fixture(scope="module")
def duties(directory: InMemoryDirectory, categories: CategoryCatalog) -> ResponsibilityList:
    return ResponsibilityList.from_yaml(
        DISTRICT / "duties.yaml", directory=directory, categories=categories
    )


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


# -- scenario 1: owner and territory in the same grid -------------------------------------


def test_registered_owner_gets_its_component_and_the_street_gets_the_garbage(
    duties: ResponsibilityList,
) -> None:
    cover = duties.resolve("01.01", GRID, NOON)
    garbage = duties.resolve("02.01", GRID, NOON)

    assert (cover.lead_unit, cover.entry_id, cover.basis) == ("YS-WATER", "E-0101", "owner")
    assert (garbage.lead_unit, garbage.entry_id, garbage.basis) == (
        "MJ-STREET",
        "E-02-S1",
        "territory",
    )
    # The street's territory entry on all public facilities matched too; the owner won.
    assert "E-01-S1" in cover.explanation
    assert "owner-first (set by category 01)" in cover.explanation
    assert not cover.gap
    assert not cover.needs_arbitration
    assert cover.list_version == "2026.1"
    assert [(co.unit, co.duty) for co in garbage.co_units] == [
        ("YS-URBAN", "对查明的责任人执法 / enforcement against an identified polluter")
    ]
    assert garbage.supervising_unit == "YS-CMD"


def test_territory_first_category_puts_the_street_before_the_owner(
    duties: ResponsibilityList,
) -> None:
    in_linhu = duties.resolve("04.01", "D1.S2.C5.G10", NOON)
    in_mingjing = duties.resolve("04.01", "D1.S1.C1.G02", NOON)

    assert (in_linhu.lead_unit, in_linhu.entry_id) == ("LH-STREET", "E-04-S2")
    assert "territory-first (set by category 04)" in in_linhu.explanation
    assert (in_mingjing.lead_unit, in_mingjing.entry_id) == ("YS-GREEN", "E-0401")


def test_an_owner_entry_can_override_its_categorys_precedence(
    directory: InMemoryDirectory, categories: CategoryCatalog
) -> None:
    duties = ResponsibilityList.from_dict(
        small_list(
            entry("OWN", "04.01", "D1", "YS-GREEN", basis="owner", precedence="owner_first"),
            entry("TER", "04", "D1.S2", "LH-STREET"),
        ),
        directory=directory,
        categories=categories,
    )

    routing = duties.resolve("04.01", "D1.S2.C5.G10", NOON)

    assert routing.lead_unit == "YS-GREEN"
    assert "owner-first (set by entry OWN)" in routing.explanation


def test_most_specific_area_comes_before_most_specific_category(
    duties: ResponsibilityList,
) -> None:
    # E-0103 names the exact category district-wide; E-01-S1 names the street.
    routing = duties.resolve("01.03", "D1.S1.C2.G03", NOON)

    assert (routing.lead_unit, routing.entry_id) == ("MJ-STREET", "E-01-S1")
    assert "E-0103" in routing.explanation


def test_most_specific_category_decides_between_entries_for_the_same_area(
    duties: ResponsibilityList,
) -> None:
    routing = duties.resolve("05.03", "D1.S2.C6.G12", NOON)

    assert (routing.lead_unit, routing.entry_id) == ("LH-STREET", "E-0503-S2")
    assert duties.resolve("05.01", "D1.S2.C6.G12", NOON).entry_id == "E-05"


# -- scenario 2: no entry, the fallback owner, a gap -------------------------------------


def test_uncovered_combination_goes_to_the_fallback_owner_flagged_as_a_gap(
    duties: ResponsibilityList, directory: InMemoryDirectory, categories: CategoryCatalog
) -> None:
    routing = duties.resolve("01.04", "D1.S2.C4.G07", NOON)

    assert (routing.lead_unit, routing.entry_id, routing.basis) == (
        "LH-STREET",
        "FB-S2",
        "fallback",
    )
    assert routing.gap is True
    assert "FB-S2" in routing.explanation
    assert "gap" in routing.explanation

    gaps = duties.gaps(categories.leaves(), directory.areas(level="grid"))
    assert ("01.04", "D1.S2.C4.G07") in gaps
    assert ("01.04", "D1.S1.C1.G01") not in gaps  # the street's entry on 01 covers it
    assert ("01.01", "D1.S2.C4.G07") not in gaps


def test_a_report_for_the_whole_district_falls_back_to_the_district_level(
    duties: ResponsibilityList,
) -> None:
    routing = duties.resolve("02.01", "D1", NOON)

    assert (routing.lead_unit, routing.entry_id, routing.gap) == ("YS-CMD", "FB-D1", True)


def test_gaps_at_an_instant_count_only_entries_in_force(
    directory: InMemoryDirectory, categories: CategoryCatalog
) -> None:
    duties = ResponsibilityList.from_dict(
        small_list(entry("LATER", "03.01", "D1", "YS-LIGHT", effective_from="2026-03-01")),
        directory=directory,
        categories=categories,
    )

    assert duties.gaps(["03.01"], ["D1.S1"]) == []
    assert duties.gaps(["03.01"], ["D1.S1"], at=local("2026-02-01T00:00")) == [("03.01", "D1.S1")]


# -- scenario 3: an entry replaced from 2026-03-01 ---------------------------------------


@pytest.mark.parametrize(
    ("at", "unit", "entry_id"),
    [
        (local("2026-02-28T23:59"), "YS-ROADS", "E-0301-A"),
        (local("2026-03-01T00:00"), "YS-LIGHT", "E-0301-B"),
        # the same two instants in UTC: the list's own zone decides the date
        (datetime(2026, 2, 28, 15, 59, tzinfo=UTC), "YS-ROADS", "E-0301-A"),
        (datetime(2026, 2, 28, 16, 0, tzinfo=UTC), "YS-LIGHT", "E-0301-B"),
    ],
)
def test_replaced_entry_routes_by_the_local_date_of_the_report(
    duties: ResponsibilityList, at: datetime, unit: str, entry_id: str
) -> None:
    routing = duties.resolve("03.01", "D1.S2.C4.G08", at)

    assert (routing.lead_unit, routing.entry_id) == (unit, entry_id)
    assert routing.at == at
    assert entry_id in routing.explanation


def test_naive_instant_is_refused(duties: ResponsibilityList) -> None:
    with pytest.raises(NaiveDatetime, match="at is a naive datetime"):
        duties.resolve("03.01", GRID, datetime(2026, 3, 1, 0, 0))
    with pytest.raises(NaiveDatetime, match="at is a naive datetime"):
        duties.resolve("03.01", GRID, "2026-03-01T00:00:00+08:00")  # type: ignore[arg-type]


def test_unknown_category_and_area_are_named(duties: ResponsibilityList) -> None:
    with pytest.raises(ValidationError) as caught:
        duties.resolve("09.09", "D1.S9", NOON)

    assert caught.value.fields == ("category", "area")
    assert "09.09" in str(caught.value)
    assert "D1.S9" in str(caught.value)


def test_malformed_category_is_named(duties: ResponsibilityList) -> None:
    with pytest.raises(ValidationError) as caught:
        duties.resolve("01..01", GRID, NOON)

    assert caught.value.fields == ("category",)


def test_routing_is_frozen(duties: ResponsibilityList) -> None:
    routing = duties.resolve("01.01", GRID, NOON)

    with pytest.raises(pydantic.ValidationError):
        routing.lead_unit = "MJ-STREET"  # type: ignore[misc]


# -- scenario 9: conflicts ---------------------------------------------------------------


def test_equally_specific_overlapping_entries_are_a_conflict_naming_both(
    directory: InMemoryDirectory,
) -> None:
    data = small_list(
        entry("GARBAGE-A", "02.01", "D1.S1", "MJ-STREET", effective_from="2025-01-01"),
        entry("GARBAGE-B", "02.01", "D1.S1", "YS-URBAN", effective_from="2026-01-01"),
    )

    with pytest.raises(InvalidResponsibilityList) as caught:
        ResponsibilityList.from_dict(data, directory=directory)

    (problem,) = caught.value.problems
    assert "GARBAGE-A" in problem
    assert "GARBAGE-B" in problem
    assert "conflict" in problem


def test_entries_that_follow_each_other_or_differ_in_basis_do_not_conflict(
    directory: InMemoryDirectory,
) -> None:
    data = small_list(
        entry("OLD", "02.01", "D1.S1", "MJ-STREET", effective_to="2026-03-01"),
        entry("NEW", "02.01", "D1.S1", "YS-URBAN", effective_from="2026-03-01"),
        entry("OWNER", "02.01", "D1.S1", "YS-CMD", basis="owner"),
    )

    duties = ResponsibilityList.from_dict(data, directory=directory)

    assert duties.conflicts == ()


def test_allowed_conflict_demands_arbitration_and_guesses_nothing(
    directory: InMemoryDirectory,
) -> None:
    data = small_list(
        entry("GARBAGE-A", "02.01", "D1.S1", "MJ-STREET"),
        entry("GARBAGE-B", "02.01", "D1.S1", "YS-URBAN"),
    )
    duties = ResponsibilityList.from_dict(data, directory=directory, allow_conflicts=True)

    routing = duties.resolve("02.01", GRID, NOON)

    assert routing.needs_arbitration is True
    assert routing.lead_unit is None
    assert routing.entry_id is None
    assert routing.candidates == ("MJ-STREET", "YS-URBAN")
    assert routing.candidate_entries == ("GARBAGE-A", "GARBAGE-B")
    assert "arbitration" in routing.explanation
    assert [(c.first, c.second) for c in duties.conflicts] == [("GARBAGE-A", "GARBAGE-B")]


# -- scenario 10 and other load errors: every problem at once -----------------------------

CSV_HEADER = "id,category,area,basis,lead_unit,co_units,effective_from,effective_to\n"


def test_csv_with_bad_rows_fails_once_listing_every_row(
    tmp_path: Path, directory: InMemoryDirectory
) -> None:
    path = tmp_path / "duties.csv"
    path.write_text(
        CSV_HEADER
        + "OK-1,02,D1.S1,,MJ-STREET,YS-URBAN: enforcement,2025-01-01,\n"
        + "BAD-UNIT,02,D1.S2,,NO-SUCH-UNIT,,2025-01-01,\n"
        + "BAD-CODE,02..01,D1.S2,,LH-STREET,,2025-01-01,\n"
        + "BAD-DATES,05,D1,,YS-URBAN,,2026-03-01,2026-01-01\n"
        + "FB-D1,*,D1,,YS-CMD,,,\n",
        encoding="utf-8",
    )

    with pytest.raises(InvalidResponsibilityList) as caught:
        ResponsibilityList.from_csv(
            path, directory=directory, version="test", time_zone="Asia/Shanghai"
        )

    by_row = {problem.split(":")[0]: problem for problem in caught.value.problems}
    assert sorted(by_row) == ["row 3 (BAD-UNIT)", "row 4 (BAD-CODE)", "row 5 (BAD-DATES)"]
    assert "unknown lead unit 'NO-SUCH-UNIT'" in by_row["row 3 (BAD-UNIT)"]
    assert "malformed code '02..01'" in by_row["row 4 (BAD-CODE)"]
    assert "effective_to 2026-01-01 is not after" in by_row["row 5 (BAD-DATES)"]
    assert len(caught.value.problems) == 3
    assert caught.value.source == str(path)


def test_csv_header_and_cell_shape_problems(tmp_path: Path, directory: InMemoryDirectory) -> None:
    path = tmp_path / "duties.csv"
    path.write_text("id,category,area,owner\nX,01,D1,YS-WATER\n", encoding="utf-8")

    with pytest.raises(InvalidResponsibilityList) as caught:
        ResponsibilityList.from_csv(path, directory=directory, version="1", time_zone="UTC")

    assert caught.value.problems == (
        "header: missing column 'lead_unit'",
        "header: unknown column 'owner'; known: id, category, area, basis, precedence, "
        "lead_unit, co_units, supervising_unit, legal_basis, effective_from, effective_to",
    )


def test_yaml_list_reports_every_problem_at_once(
    tmp_path: Path, directory: InMemoryDirectory, categories: CategoryCatalog
) -> None:
    path = tmp_path / "duties.yaml"
    path.write_text(
        """
version: "1"
time_zone: Asia/Shanghai
entries:
  - {id: A, category: 01.01, area: D1, lead_unit: YS-WATER}
  - {id: B, category: "09", area: D1.S9, lead_unit: YS-WATER,
     co_units: [{unit: NOBODY, duty: help}], supervising_unit: GHOST}
  - {id: B, category: "02", area: D1.S1, lead_unit: MJ-STREET, colour: red}
fallbacks:
  - {id: FB-S1, area: D1.S1, lead_unit: MJ-STREET}
""",
        encoding="utf-8",
    )

    with pytest.raises(InvalidResponsibilityList) as caught:
        ResponsibilityList.from_yaml(path, directory=directory, categories=categories)

    text = "\n".join(caught.value.problems)
    assert "entries[0] (A): category: Input should be a valid string (quote codes" in text
    assert "entries[2] (B): colour: Extra inputs are not permitted" in text
    assert "entries[1] (B): unknown area 'D1.S9'" in text
    assert "entries[1] (B): unknown category '09'" in text
    assert "entries[1] (B): unknown co-unit 'NOBODY'" in text
    assert "entries[1] (B): unknown supervising unit 'GHOST'" in text
    assert "area 'D1' has no fallback owner" in text
    assert len(caught.value.problems) == 7


def test_yaml_syntax_and_duplicate_keys_are_reported(
    tmp_path: Path, directory: InMemoryDirectory
) -> None:
    path = tmp_path / "duties.yaml"
    path.write_text('version: "1"\nversion: "2"\ntime_zone: UTC\n', encoding="utf-8")

    with pytest.raises(InvalidResponsibilityList, match="duplicate key 'version'"):
        ResponsibilityList.from_yaml(path, directory=directory)


def test_list_header_problems(directory: InMemoryDirectory) -> None:
    data: dict[str, Any] = {"version": 2026.1, "time_zone": "Mars/Olympus", "fallbacks": []}

    with pytest.raises(InvalidResponsibilityList) as caught:
        ResponsibilityList.from_dict(data, directory=directory)

    text = "\n".join(caught.value.problems)
    assert "list: version: Input should be a valid string (quote codes" in text
    assert "unknown time zone 'Mars/Olympus'" in text


def test_precedence_belongs_on_owner_entries_only(directory: InMemoryDirectory) -> None:
    data = small_list(entry("T", "02", "D1.S1", "MJ-STREET", precedence="owner_first"))

    with pytest.raises(InvalidResponsibilityList, match="precedence may only be set on owner"):
        ResponsibilityList.from_dict(data, directory=directory)


# -- the two forms of the example list agree ---------------------------------------------


def test_yaml_and_csv_forms_of_the_example_route_identically(
    duties: ResponsibilityList, directory: InMemoryDirectory, categories: CategoryCatalog
) -> None:
    from_csv = ResponsibilityList.from_csv(
        DISTRICT / "duties.csv",
        directory=directory,
        version="2026.1",
        time_zone="Asia/Shanghai",
        categories=categories,
    )

    assert from_csv.entries == duties.entries
    assert from_csv.fallbacks == duties.fallbacks
    for at in (local("2026-02-28T23:59"), local("2026-03-01T00:00")):
        for category in categories.codes():
            for area in directory.areas():
                assert from_csv.resolve(category, area, at) == duties.resolve(category, area, at)


# -- the directory -----------------------------------------------------------------------


def test_example_directory_answers_the_directory_port(directory: InMemoryDirectory) -> None:
    assert len(directory.units()) == 8
    assert len(directory.areas(level="street")) == 2
    assert len(directory.areas(level="community")) == 6
    assert len(directory.areas(level="grid")) == 12
    assert directory.level("D1.S2.C4") == "community"
    assert directory.actor("zhou.min") == Actor(
        "zhou.min", roles=frozenset({"dispatcher"}), units=frozenset({"YS-CMD"})
    )
    assert directory.actor("nobody") is None
    assert directory.members("YS-WATER") == frozenset({"jiang.tao"})
    assert directory.members("NO-SUCH-UNIT") == frozenset()
    assert directory.has_area(GRID)
    assert not directory.has_area("D1.S3")
    assert [unit.id for unit in directory.units_serving(GRID)] == [
        "MJ-STREET",
        "YS-CMD",
        "YS-URBAN",
        "YS-ROADS",
        "YS-GREEN",
    ]
    with pytest.raises(UnknownName, match="unknown unit 'NOPE'"):
        directory.unit("NOPE")


def test_codes_are_matched_by_ancestry() -> None:
    assert ancestors("D1.S1.C2.G07") == ("D1", "D1.S1", "D1.S1.C2")
    assert covers("D1.S1", "D1.S1.C2.G07")
    assert not covers("D1.S1", "D1.S10.C1")
    assert covers("01", "01.02")
    assert not covers("01.02", "01")


def test_directory_reports_every_problem_at_once() -> None:
    data = {
        "areas": [
            {"code": "D1"},
            {"code": "D1.S1"},
            {"code": "D1.S1"},
            {"code": "D1.S2.C1"},
            {"code": "D1/S3"},
        ],
        "units": [
            {"id": "A", "name": "A", "parent": "MISSING"},
            {"id": "B", "name": "B", "areas": ["D1.S9"]},
            {"id": "B", "name": "B again"},
        ],
        "members": [{"id": "m1", "units": ["A", "GHOST"]}],
    }

    with pytest.raises(InvalidDirectory) as caught:
        InMemoryDirectory.from_dict(data)

    assert set(caught.value.problems) == {
        "areas[4]: code: malformed code 'D1/S3': use dot-separated segments of ASCII "
        "letters A-Z a-z, digits 0-9, '_', '-' or ':' (no other characters: no spaces, no "
        "Chinese or other non-ASCII letters), such as 'D1.S1.C2.G07' or '01.02'",
        "duplicate area 'D1.S1' (2 times)",
        "area 'D1.S2.C1': its parent area 'D1.S2' is not listed",
        "duplicate unit 'B' (2 times)",
        "unit 'A': unknown parent unit 'MISSING'",
        "unit 'B': serves unknown area 'D1.S9'",
        "member 'm1': in unknown unit 'GHOST'",
    }


def test_directory_rejects_a_cycle_of_parent_units() -> None:
    data = {
        "areas": [{"code": "D1"}],
        "units": [{"id": "A", "name": "A", "parent": "B"}, {"id": "B", "name": "B", "parent": "A"}],
    }

    with pytest.raises(InvalidDirectory, match="parent chain loops back"):
        InMemoryDirectory.from_dict(data)


def test_category_catalogue_must_be_a_closed_tree() -> None:
    with pytest.raises(InvalidResponsibilityList, match="parent category '07' is not listed"):
        CategoryCatalog.from_dict({"categories": [{"code": "07.01", "name": "orphan"}]})


# -- helpers -----------------------------------------------------------------------------


def entry(ident: str, category: str, area: str, lead: str, **fields: str) -> dict[str, str]:
    return {"id": ident, "category": category, "area": area, "lead_unit": lead, **fields}


def small_list(*entries: dict[str, str]) -> dict[str, Any]:
    """A list over the example directory with a district-wide fallback owner."""
    return {
        "version": "test",
        "time_zone": "Asia/Shanghai",
        "entries": list(entries),
        "fallbacks": [{"id": "FB-D1", "area": "D1", "lead_unit": "YS-CMD"}],
    }
