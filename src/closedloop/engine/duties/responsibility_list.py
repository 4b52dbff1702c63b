"""The responsibility list (权责清单): who leads on which category of report, where.

A list has a version, a time zone (its effective dates are local dates there),
entries (see :class:`~closedloop.engine.duties.entries.Entry`) and fallback owners (see
:class:`~closedloop.engine.duties.entries.Fallback`). It is loaded from YAML, CSV or a
mapping, checked against a :class:`~closedloop.engine.ports.Directory` with every
problem reported at once, and answers :meth:`ResponsibilityList.resolve` with a
:class:`~closedloop.engine.duties.resolution.Routing`. The formats and the resolution order are
described in ``docs/routing.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from closedloop.engine.clock import aware
from closedloop.engine.duties.catalog import CategoryCatalog, Precedence
from closedloop.engine.duties.consistency import Conflict, Located, LocatedFallback, check_list
from closedloop.engine.duties.entries import Entry, Fallback, ListHeader
from closedloop.engine.duties.resolution import (
    Request,
    Routing,
    RoutingIndex,
    arbitration,
    fell_back,
    rank,
    routed,
)
from closedloop.engine.duties.spreadsheet import read_rows
from closedloop.engine.hierarchy import closest, code_problem, is_code
from closedloop.engine.loading import (
    labelled,
    mapping_problems,
    read_yaml,
    section,
    validate_items,
    validate_one,
)
from closedloop.engine.ports import Directory
from closedloop.errors import (
    InvalidResponsibilityList,
    UnknownName,
    ValidationError,
)

_HEADER_KEYS = ("version", "time_zone", "precedence", "description")


class ResponsibilityList:
    """A checked, versioned responsibility list that routes reports to units.

    Args:
        version: The list's version, recorded on every routing.
        time_zone: IANA name of the zone its effective dates are in.
        entries: The entries.
        fallbacks: The fallback owners; together they must cover every area.
        directory: Units and areas the list refers to.
        precedence: Owner-first or territory-first where no category or entry says.
        categories: The category catalogue; without one any well-formed code is taken.
        allow_conflicts: Accept equally specific overlapping entries; reports that
            hit them then need arbitration instead of failing the load.
        source: Where the list came from, named in errors.

    Raises:
        InvalidResponsibilityList: every problem of the list at once.
    """

    def __init__(
        self,
        *,
        version: str,
        time_zone: str,
        entries: Iterable[Entry],
        fallbacks: Iterable[Fallback],
        directory: Directory,
        precedence: Precedence = "owner_first",
        categories: CategoryCatalog | None = None,
        allow_conflicts: bool = False,
        source: str | None = None,
    ) -> None:
        header = {"version": version, "time_zone": time_zone, "precedence": precedence}
        self._load(
            header,
            [(f"entry {entry.id}", entry) for entry in entries],
            [(f"fallback {fallback.id}", fallback) for fallback in fallbacks],
            [],
            directory=directory,
            categories=categories,
            allow_conflicts=allow_conflicts,
            source=source,
        )

    # -- loading -----------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        directory: Directory,
        categories: CategoryCatalog | None = None,
        allow_conflicts: bool = False,
        source: str | None = None,
    ) -> ResponsibilityList:
        """Build a list from a mapping shaped like the YAML form (``docs/routing.md``).

        Raises:
            InvalidResponsibilityList: every problem at once, each naming its entry.
        """
        problems = mapping_problems(
            data,
            required=("version", "time_zone"),
            optional=(*_HEADER_KEYS, "entries", "fallbacks"),
        )
        if not isinstance(data, Mapping):
            raise InvalidResponsibilityList(problems, source=source)
        raw_entries = labelled(section(data, "entries", problems), "entries")
        raw_fallbacks = labelled(section(data, "fallbacks", problems), "fallbacks")
        self = cls.__new__(cls)
        self._load(
            {key: data[key] for key in _HEADER_KEYS if key in data},
            validate_items(Entry, raw_entries, problems),
            validate_items(Fallback, raw_fallbacks, problems),
            problems,
            directory=directory,
            categories=categories,
            allow_conflicts=allow_conflicts,
            source=source,
        )
        return self

    @classmethod
    def from_yaml(
        cls,
        path: str | Path,
        *,
        directory: Directory,
        categories: CategoryCatalog | None = None,
        allow_conflicts: bool = False,
    ) -> ResponsibilityList:
        """Load a list from a YAML file.

        Raises:
            InvalidResponsibilityList: the file cannot be read, is not valid YAML, or
                has problems.
        """
        data, problems = read_yaml(path)
        if problems:
            raise InvalidResponsibilityList(problems, source=str(path))
        return cls.from_dict(
            data,
            directory=directory,
            categories=categories,
            allow_conflicts=allow_conflicts,
            source=str(path),
        )

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        *,
        directory: Directory,
        version: str,
        time_zone: str,
        precedence: Precedence = "owner_first",
        categories: CategoryCatalog | None = None,
        allow_conflicts: bool = False,
        encoding: str = "utf-8-sig",
    ) -> ResponsibilityList:
        """Load a list from a CSV file, one entry (or fallback) per row.

        The columns are described in :mod:`closedloop.engine.duties.spreadsheet`; the list's
        own fields, which a spreadsheet of entries does not hold, are passed here.

        Raises:
            InvalidResponsibilityList: every problem at once, each naming its row
                number (the header is row 1) and entry id.
            OSError: the file cannot be read.
        """
        rows = read_rows(path, encoding=encoding)
        problems = list(rows.problems)
        self = cls.__new__(cls)
        self._load(
            {"version": version, "time_zone": time_zone, "precedence": precedence},
            validate_items(Entry, rows.entries, problems),
            validate_items(Fallback, rows.fallbacks, problems),
            problems,
            directory=directory,
            categories=categories,
            allow_conflicts=allow_conflicts,
            source=str(path),
        )
        return self

    def _load(
        self,
        header: Mapping[str, object],
        entries: Sequence[Located],
        fallbacks: Sequence[LocatedFallback],
        problems: list[str],
        *,
        directory: Directory,
        categories: CategoryCatalog | None,
        allow_conflicts: bool,
        source: str | None,
    ) -> None:
        problems = list(problems)
        meta = validate_one(ListHeader, header, "list", problems)
        found = check_list(entries, fallbacks, directory=directory, categories=categories)
        problems += found.problems
        if not allow_conflicts:
            problems += found.conflict_problems
        if problems or meta is None:
            raise InvalidResponsibilityList(problems, source=source)
        self._meta = meta
        self._zone = ZoneInfo(meta.time_zone)
        self._directory = directory
        self._categories = categories
        self._entries = tuple(entry for _, entry in entries)
        self._fallbacks = tuple(fallback for _, fallback in fallbacks)
        self._conflicts = tuple(found.conflicts)
        self._index = RoutingIndex(self._entries, self._fallbacks)

    # -- what the list holds -----------------------------------------------------------

    @property
    def version(self) -> str:
        """The list's version, recorded on every routing."""
        return self._meta.version

    @property
    def time_zone(self) -> ZoneInfo:
        """The zone the effective dates are local to."""
        return self._zone

    @property
    def precedence(self) -> Precedence:
        """The default precedence, where no category or owner entry sets one."""
        return self._meta.precedence

    @property
    def entries(self) -> tuple[Entry, ...]:
        """The entries, in the order given."""
        return self._entries

    @property
    def fallbacks(self) -> tuple[Fallback, ...]:
        """The fallback owners, in the order given."""
        return self._fallbacks

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        """Accepted conflicts (only with ``allow_conflicts=True``; otherwise empty)."""
        return self._conflicts

    @property
    def categories(self) -> CategoryCatalog | None:
        """The category catalogue the list was checked against, if any."""
        return self._categories

    @property
    def directory(self) -> Directory:
        """The directory the list was checked against."""
        return self._directory

    def entry(self, entry_id: str) -> Entry:
        """The entry with that id.

        Raises:
            UnknownName: no such entry.
        """
        for entry in self._entries:
            if entry.id == entry_id:
                return entry
        raise UnknownName("entry", entry_id, (entry.id for entry in self._entries))

    # -- routing -----------------------------------------------------------------------

    def resolve(self, category: str, area: str, at: datetime) -> Routing:
        """Route a report of ``category`` in ``area`` made at instant ``at``.

        Returns:
            Exactly one lead unit with the deciding entry and an explanation, or a
            routing that needs arbitration naming the candidates; a report only the
            fallback covers is routed to the fallback owner with ``gap=True``.

        Raises:
            NaiveDatetime: ``at`` has no time zone.
            ValidationError: the category or area is malformed or unknown (``fields``
                names which).
            UnknownName: no fallback covers the area (only possible when the
                directory could not list its areas at load time).
        """
        request = Request(category, area, at, self._local(at, "at"), self._meta.version)
        if not (
            isinstance(category, str)
            and isinstance(area, str)
            and self._known_category(category)
            and self._directory.has_area(area)
        ):
            self._check_request([("category", category)], [("area", area)])
        matches = self._index.matches(category, area, request.day)
        if not matches:
            fallback = self._index.fallback(area)
            if fallback is None:
                scopes = (fallback.area for fallback in self._fallbacks)
                raise UnknownName("fallback owner for area", area, scopes)
            return fell_back(request, fallback)
        ranking = rank(matches, self._category_precedence(category))
        if len(ranking.winners) == 1:
            return routed(request, matches, ranking)
        return arbitration(request, matches, ranking)

    def gaps(
        self, categories: Iterable[str], areas: Iterable[str], *, at: datetime | None = None
    ) -> list[tuple[str, str]]:
        """The (category, area) combinations that only a fallback owner covers.

        Args:
            categories: Category codes to check (for example the catalogue's leaves).
            areas: Area codes to check (for example every grid).
            at: Check the entries in force at this instant; by default a combination
                counts as covered if any entry covers it at any time.

        Raises:
            NaiveDatetime: ``at`` has no time zone.
            ValidationError: a category or area is malformed or unknown.
        """
        day = None if at is None else self._local(at, "at").date()
        wanted = list(dict.fromkeys(categories))
        scopes = list(dict.fromkeys(areas))
        self._check_request(
            [(f"categories[{i}]", code) for i, code in enumerate(wanted)],
            [(f"areas[{i}]", code) for i, code in enumerate(scopes)],
        )
        return [
            (category, area)
            for category in wanted
            for area in scopes
            if not self._index.matches(category, area, day)
        ]

    def _local(self, at: datetime, what: str) -> datetime:
        return aware(at, what).astimezone(self._zone)

    def _check_request(
        self, categories: Sequence[tuple[str, str]], areas: Sequence[tuple[str, str]]
    ) -> None:
        errors = []
        for field, code in categories:
            if not (isinstance(code, str) and self._known_category(code)):
                known = self._categories.codes() if self._categories is not None else ()
                errors.append((field, code_problem(code) or _unknown("category", code, known)))
        for field, code in areas:
            # a known area is well-formed: the directory checked it when it was loaded
            if not (isinstance(code, str) and self._directory.has_area(code)):
                errors.append(
                    (field, code_problem(code) or _unknown("area", code, self._directory.areas()))
                )
        if errors:
            raise ValidationError(errors, subject="routing request")

    def _known_category(self, code: str) -> bool:
        if self._categories is not None:
            return code in self._categories
        return is_code(code)

    def _category_precedence(self, category: str) -> tuple[Precedence, str]:
        declared = self._categories.precedence(category) if self._categories else None
        if declared is not None:
            return declared[0], f"category {declared[1]}"
        return self._meta.precedence, "the list's default"

    def __repr__(self) -> str:
        return (
            f"ResponsibilityList(version={self.version!r}, entries={len(self._entries)}, "
            f"fallbacks={len(self._fallbacks)}, time_zone={self._meta.time_zone!r})"
        )


def _unknown(kind: str, code: str, known: Iterable[str]) -> str:
    """The problem of a well-formed ``code`` that is not listed, with the closest that are."""
    nearest = closest(code, known)
    return f"unknown {kind} {code!r}" + (f"; closest: {', '.join(nearest)}" if nearest else "")
