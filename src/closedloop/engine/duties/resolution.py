"""Resolution: which unit leads on a report, and why.

The order, applied to the entries in force on the report's local date whose category
covers the report's category and whose area covers the report's area:

1. If both registered-owner and territory entries match, precedence decides which of
   the two groups goes on: the explicit ``precedence`` of the most specific owner
   entries, else the category's (the most specific category on the path declaring
   one), else the list's default.
2. Within the group: the most specific area first, then the most specific category.
3. One entry left: it decides. Several equally specific entries left (possible only
   in a list loaded with ``allow_conflicts=True``): the case needs arbitration and the
   candidates are named; nothing is guessed.
4. No entry matches: the fallback owner of the most specific area that has one
   decides, and the routing is flagged as a gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from closedloop.engine.duties.catalog import Precedence
from closedloop.engine.duties.entries import CoUnit, Entry, Fallback
from closedloop.engine.hierarchy import lineage


class Routing(BaseModel):
    """Where a report goes under one version of the responsibility list, and why.

    Exactly one of two shapes: ``lead_unit`` is set and ``needs_arbitration`` is
    false, or ``lead_unit`` is ``None``, ``needs_arbitration`` is true and
    ``candidates`` names the units (``candidate_entries`` the entries) in dispute.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: str
    area: str
    at: datetime
    list_version: str
    lead_unit: str | None
    co_units: tuple[CoUnit, ...] = ()
    supervising_unit: str | None = None
    entry_id: str | None = None
    """The deciding entry, or the fallback's id when ``gap``; ``None`` in arbitration."""
    basis: Literal["owner", "territory", "fallback"] | None = None
    legal_basis: str | None = None
    gap: bool = False
    """Only the fallback owner covers this category in this area."""
    needs_arbitration: bool = False
    candidates: tuple[str, ...] = ()
    candidate_entries: tuple[str, ...] = ()
    explanation: str


class Request(NamedTuple):
    """A routing question, already checked: category, area, instant and local time."""

    category: str
    area: str
    at: datetime
    local: datetime
    version: str

    @property
    def day(self) -> date:
        """The local date, which decides which entries are in force."""
        return self.local.date()


class RoutingIndex:
    """Entries by category code, then area code, so a lookup walks only the report's
    ancestors (a handful of dictionary probes) instead of scanning the list."""

    def __init__(self, entries: Iterable[Entry], fallbacks: Iterable[Fallback]) -> None:
        self._entries: dict[str, dict[str, list[Entry]]] = {}
        for entry in entries:
            by_area = self._entries.setdefault(entry.category, {})
            by_area.setdefault(entry.area, []).append(entry)
        self._fallbacks = {fallback.area: fallback for fallback in fallbacks}

    def matches(self, category: str, area: str, day: date | None) -> list[Entry]:
        """Entries covering ``category`` in ``area``, in force on ``day`` (any day if None)."""
        found: list[Entry] = []
        scopes = lineage(area)
        for code in lineage(category):
            by_area = self._entries.get(code)
            if by_area is None:
                continue
            for scope in scopes:
                for entry in by_area.get(scope, ()):
                    if day is None or entry.in_force(day):
                        found.append(entry)
        return found

    def fallback(self, area: str) -> Fallback | None:
        """The fallback of the most specific area on ``area``'s path that has one."""
        for scope in lineage(area):
            fallback = self._fallbacks.get(scope)
            if fallback is not None:
                return fallback
        return None


@dataclass(frozen=True, slots=True)
class Ranking:
    """The outcome of ranking the matching entries: the winners and why."""

    winners: tuple[Entry, ...]
    contenders: int
    """How many entries were ranked by specificity (after precedence)."""
    precedence_note: str | None = None


def rank(matches: Sequence[Entry], default: tuple[Precedence, str]) -> Ranking:
    """Apply precedence, then specificity, to the matching entries.

    Args:
        matches: The entries in force that cover the report.
        default: The precedence for the report's category and who set it
            (``("owner_first", "category 01")``), used when owner entries set none.
    """
    owners = [entry for entry in matches if entry.basis == "owner"]
    territories = [entry for entry in matches if entry.basis == "territory"]
    if not owners or not territories:
        return Ranking(most_specific(matches), len(matches))
    top_owners = most_specific(owners)
    chosen = {entry.precedence or default[0] for entry in top_owners}
    if len(chosen) > 1:
        note = (
            f"Owner entries {_ids(top_owners)} disagree on precedence over the territory, "
            "so neither group can be put first."
        )
        return Ranking((*top_owners, *most_specific(territories)), len(matches), note)
    value = chosen.pop()
    setter = _precedence_setter(top_owners, default)
    kept, dropped = ("owner", "territory") if value == "owner_first" else ("territory", "owner")
    group = owners if value == "owner_first" else territories
    note = (
        f"Both a registered owner's entry and a territory entry match; precedence is "
        f"{value.replace('_', '-')} (set by {setter}): the {kept} entries are ranked, "
        f"the {dropped} entries set aside."
    )
    return Ranking(most_specific(group), len(group), note)


def most_specific(entries: Sequence[Entry]) -> tuple[Entry, ...]:
    """The entries of the highest (area depth, category depth), in list order."""
    if len(entries) < 2:
        return tuple(entries)
    best = max(entry.specificity for entry in entries)
    return tuple(entry for entry in entries if entry.specificity == best)


def _precedence_setter(top_owners: Sequence[Entry], default: tuple[Precedence, str]) -> str:
    explicit = [entry.id for entry in top_owners if entry.precedence is not None]
    return f"entry {', '.join(explicit)}" if explicit else default[1]


def _ids(entries: Iterable[Entry]) -> str:
    return ", ".join(entry.id for entry in entries)


# -- building the routing ----------------------------------------------------------------


def routed(request: Request, matches: Sequence[Entry], ranking: Ranking) -> Routing:
    """The routing when exactly one entry won."""
    (entry,) = ranking.winners
    text = [_header(request), _matched(matches)]
    if ranking.precedence_note:
        text.append(ranking.precedence_note)
    if ranking.contenders > 1:
        text.append(
            f"Most specific area first, then most specific category: entry {entry.id} "
            f"(area {entry.area}, category {entry.category}) ranks first."
        )
    text.append(f"Entry {entry.id} decides: {_assignment(entry)}.")
    return Routing(
        category=request.category,
        area=request.area,
        at=request.at,
        list_version=request.version,
        lead_unit=entry.lead_unit,
        co_units=entry.co_units,
        supervising_unit=entry.supervising_unit,
        entry_id=entry.id,
        basis=entry.basis,
        legal_basis=entry.legal_basis,
        explanation=" ".join(text),
    )


def arbitration(request: Request, matches: Sequence[Entry], ranking: Ranking) -> Routing:
    """The routing when several entries remain equally ranked: nobody is guessed."""
    winners = ranking.winners
    units = tuple(dict.fromkeys(entry.lead_unit for entry in winners))
    text = [_header(request), _matched(matches)]
    if ranking.precedence_note:
        text.append(ranking.precedence_note)
    text.append(
        f"Entries {_ids(winners)} rank equally and are all in force; nothing is guessed: "
        f"the case needs arbitration between {', '.join(units)}."
    )
    return Routing(
        category=request.category,
        area=request.area,
        at=request.at,
        list_version=request.version,
        lead_unit=None,
        needs_arbitration=True,
        candidates=units,
        candidate_entries=tuple(entry.id for entry in winners),
        explanation=" ".join(text),
    )


def fell_back(request: Request, fallback: Fallback) -> Routing:
    """The routing when no entry matches: the fallback owner, flagged as a gap."""
    supervised = (
        f"; supervising unit {fallback.supervising_unit}" if fallback.supervising_unit else ""
    )
    text = (
        f"{_header(request)} No entry in force covers this category in this area. "
        f"Fallback {fallback.id} decides, as the fallback owner for area {fallback.area}: "
        f"lead unit {fallback.lead_unit}{supervised}. Flagged as a gap: the list needs an entry "
        f"for category {request.category} in area {request.area}."
    )
    return Routing(
        category=request.category,
        area=request.area,
        at=request.at,
        list_version=request.version,
        lead_unit=fallback.lead_unit,
        supervising_unit=fallback.supervising_unit,
        entry_id=fallback.id,
        basis="fallback",
        legal_basis=fallback.legal_basis,
        gap=True,
        explanation=text,
    )


def _header(request: Request) -> str:
    local = request.local
    zone = getattr(local.tzinfo, "key", None) or local.tzname() or ""
    # isoformat is several times faster than strftime, and routing is a hot path
    shown = local.isoformat(sep=" ", timespec="minutes")[:16]
    return (
        f"Category {request.category} in area {request.area} at {shown} {zone} "
        f"(list {request.version})."
    )


def _matched(matches: Sequence[Entry]) -> str:
    shown = ", ".join(
        f"{entry.id} ({entry.basis}; area {entry.area}, category {entry.category})"
        for entry in matches
    )
    return f"Matching entries in force: {shown}."


def _assignment(entry: Entry) -> str:
    parts = [f"lead unit {entry.lead_unit}"]
    if entry.co_units:
        duties = ", ".join(f"{co.unit} ({co.duty})" for co in entry.co_units)
        parts.append(f"co-units {duties}")
    if entry.supervising_unit:
        parts.append(f"supervising unit {entry.supervising_unit}")
    if entry.legal_basis:
        parts.append(f"legal basis {entry.legal_basis}")
    return "; ".join(parts)
