"""Load-time checks of a responsibility list against itself and the directory.

Every check yields problem lines naming the entry (and its CSV row, when it came from
a spreadsheet), so a list with ten mistakes is fixed in one round, not ten.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from closedloop.engine.duties.catalog import CategoryCatalog
from closedloop.engine.duties.entries import Entry, Fallback
from closedloop.engine.hierarchy import lineage, parent
from closedloop.engine.ports import Directory

Located = tuple[str, Entry]
"""An entry and where it sits (``entries[3] (E-07)``, ``row 9 (E-07)``)."""
LocatedFallback = tuple[str, Fallback]


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two entries with equal specificity, the same basis and overlapping periods."""

    first: str
    second: str
    category: str
    area: str
    basis: str


@runtime_checkable
class _ListsAreas(Protocol):
    def areas(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What the checks found. Conflicts come apart from the other problems because a
    host may accept them (``allow_conflicts=True``) and leave those reports to
    arbitration."""

    problems: list[str]
    conflicts: list[Conflict]
    conflict_problems: list[str]


def check_list(
    entries: Sequence[Located],
    fallbacks: Sequence[LocatedFallback],
    *,
    directory: Directory,
    categories: CategoryCatalog | None,
) -> CheckResult:
    """Every problem of the list against itself and ``directory``, and its conflicts."""
    units = frozenset(unit.id for unit in directory.units())
    problems = list(_duplicate_ids(entries, fallbacks))
    for where, entry in entries:
        problems += _entry_references(where, entry, units, directory, categories)
    for where, fallback in fallbacks:
        problems += _fallback_references(where, fallback, units, directory)
    problems += _fallback_overlaps(fallbacks)
    if isinstance(directory, _ListsAreas):
        problems += _uncovered(directory.areas(), fallbacks)
    pairs = _conflicts(entries)
    return CheckResult(
        problems,
        [_conflict(a, b) for (_, a), (_, b) in pairs],
        [_describe(a, b) for a, b in pairs],
    )


def _conflict(a: Entry, b: Entry) -> Conflict:
    return Conflict(a.id, b.id, a.category, a.area, a.basis)


def _describe(first: Located, second: Located) -> str:
    (place_a, a), (place_b, b) = first, second
    return (
        f"{place_a} and {place_b} conflict: entries {a.id} and {b.id} are both "
        f"{a.basis} entries for category {a.category} in area {a.area} and their "
        f"effective periods overlap ({a.period()}; {b.period()}). End one before the "
        "other starts, or give one a more specific scope"
    )


def _duplicate_ids(
    entries: Sequence[Located], fallbacks: Sequence[LocatedFallback]
) -> Iterator[str]:
    places: defaultdict[str, list[str]] = defaultdict(list)
    for where, entry in entries:
        places[entry.id].append(where)
    for where, fallback in fallbacks:
        places[fallback.id].append(where)
    for ident, seen in places.items():
        if len(seen) > 1:
            yield f"duplicate id {ident!r}: {', '.join(seen)}"


def _entry_references(
    where: str,
    entry: Entry,
    units: frozenset[str],
    directory: Directory,
    categories: CategoryCatalog | None,
) -> Iterator[str]:
    if not directory.has_area(entry.area):
        yield f"{where}: unknown area {entry.area!r}"
    if categories is not None and entry.category not in categories:
        yield f"{where}: unknown category {entry.category!r}"
    yield from _unit_references(where, entry.lead_unit, entry.supervising_unit, units)
    co_units = [co.unit for co in entry.co_units]
    for unit in co_units:
        if unit not in units:
            yield f"{where}: unknown co-unit {unit!r}"
    for unit, count in Counter(co_units).items():
        if count > 1:
            yield f"{where}: co-unit {unit!r} is listed {count} times"
    if entry.lead_unit in co_units:
        yield f"{where}: lead unit {entry.lead_unit!r} is also listed as a co-unit"


def _unit_references(
    where: str, lead: str, supervisor: str | None, units: frozenset[str]
) -> Iterator[str]:
    if lead not in units:
        yield f"{where}: unknown lead unit {lead!r}"
    if supervisor is not None and supervisor not in units:
        yield f"{where}: unknown supervising unit {supervisor!r}"


def _fallback_references(
    where: str, fallback: Fallback, units: frozenset[str], directory: Directory
) -> Iterator[str]:
    if not directory.has_area(fallback.area):
        yield f"{where}: unknown area {fallback.area!r}"
    yield from _unit_references(where, fallback.lead_unit, fallback.supervising_unit, units)


def _fallback_overlaps(fallbacks: Sequence[LocatedFallback]) -> Iterator[str]:
    places: defaultdict[str, list[str]] = defaultdict(list)
    for where, fallback in fallbacks:
        places[fallback.area].append(where)
    for area, seen in places.items():
        if len(seen) > 1:
            yield f"{' and '.join(seen)}: more than one fallback owner for area {area!r}"


def _uncovered(areas: Sequence[str], fallbacks: Sequence[LocatedFallback]) -> Iterator[str]:
    scopes = {fallback.area for _, fallback in fallbacks}
    uncovered = {area for area in areas if not scopes.intersection(lineage(area))}
    for area in areas:
        if area in uncovered and parent(area) not in uncovered:
            yield (
                f"area {area!r} has no fallback owner: add a fallback for it or one of its "
                "ancestors, so that every report has an owner"
            )


def _conflicts(entries: Sequence[Located]) -> list[tuple[Located, Located]]:
    groups: defaultdict[tuple[str, str, str], list[Located]] = defaultdict(list)
    for located in entries:
        entry = located[1]
        groups[(entry.category, entry.area, entry.basis)].append(located)
    found = []
    for group in groups.values():
        for i, first in enumerate(group):
            for second in group[i + 1 :]:
                if _overlap(first[1], second[1]):
                    found.append((first, second))
    return found


def _overlap(a: Entry, b: Entry) -> bool:
    starts = [day for day in (a.effective_from, b.effective_from) if day is not None]
    ends = [day for day in (a.effective_to, b.effective_to) if day is not None]
    return not starts or not ends or max(starts) < min(ends)
