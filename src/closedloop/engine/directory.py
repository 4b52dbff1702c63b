"""An in-memory :class:`~closedloop.engine.ports.Directory`: units, members and areas.

Loaded from YAML (:meth:`InMemoryDirectory.from_yaml`) or a mapping
(:meth:`InMemoryDirectory.from_dict`)::

    levels: [district, street, community, grid]   # optional; these are the default
    areas:                                         # the area tree, parents first
      - {code: D1, name: Yunshan District}
      - {code: D1.S1, name: Mingjing Street}
    units:
      - {id: S1-OFFICE, name: Mingjing Street Office, level: street,
         parent: D-CMD, areas: [D1.S1]}
    members:
      - {id: li.na, name: Li Na, roles: [dispatcher], units: [D-CMD]}

Area codes follow :mod:`closedloop.engine.hierarchy`: dotted segments whose prefixes
are the ancestors, so an area's parent is implied by its code and must be listed too.
An area's level is the level at its depth (``D1.S1`` is a ``street``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from closedloop.engine.hierarchy import (
    Code,
    ancestors,
    code_problem,
    covers,
    depth,
    is_code,
    lineage,
    parent,
)
from closedloop.engine.loading import (
    labelled,
    mapping_problems,
    read_yaml,
    section,
    validate_items,
)
from closedloop.engine.model import Actor, Ident, Unit
from closedloop.errors import InvalidDirectory, UnknownName

__all__ = ["DEFAULT_LEVELS", "Area", "InMemoryDirectory", "Member", "ancestors", "covers"]

ItemT = TypeVar("ItemT", bound=BaseModel)

DEFAULT_LEVELS: tuple[str, ...] = ("district", "street", "community", "grid")
"""The area levels by depth when a directory names none."""


class Area(BaseModel):
    """A node of the area tree: a district, street, community or grid."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: Code
    name: str = ""


class Member(BaseModel):
    """A person (or system) known to the directory, with global roles and units."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Ident
    name: str = ""
    roles: tuple[str, ...] = ()
    units: tuple[Ident, ...] = ()


class InMemoryDirectory:
    """Units, their members and the areas they serve, held in memory.

    Construction checks everything at once and raises :class:`InvalidDirectory`
    listing every problem: duplicate ids or codes, malformed codes, areas whose parent
    is missing, units with an unknown parent (or a cycle of parents) or unknown areas,
    members in unknown units.

    Args:
        areas: The area tree; every ancestor of an area must be listed.
        units: The units that can own cases.
        members: The actors with their global roles and unit memberships.
        levels: Level names by depth, the most general first.
        source: Where the data came from, named in errors.
    """

    def __init__(
        self,
        *,
        areas: Iterable[Area],
        units: Iterable[Unit],
        members: Iterable[Member] = (),
        levels: Sequence[str] = DEFAULT_LEVELS,
        source: str | None = None,
    ) -> None:
        self._levels = tuple(levels)
        area_list, unit_list, member_list = list(areas), list(units), list(members)
        problems = list(_check(area_list, unit_list, member_list, self._levels))
        if problems:
            raise InvalidDirectory(problems, source=source)
        self._areas = {area.code: area for area in area_list}
        self._units = {unit.id: unit for unit in unit_list}
        self._actors = {
            m.id: Actor(m.id, roles=frozenset(m.roles), units=frozenset(m.units))
            for m in member_list
        }
        self._members = {
            unit_id: frozenset(m.id for m in member_list if unit_id in m.units)
            for unit_id in self._units
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> InMemoryDirectory:
        """Build a directory from a mapping shaped like the YAML form (module docstring).

        Raises:
            InvalidDirectory: every problem of the data, structural or not, at once.
        """
        problems = mapping_problems(
            data, required=("areas", "units"), optional=("levels", "members", "description")
        )
        if not isinstance(data, Mapping):
            raise InvalidDirectory(problems, source=source)
        levels = _levels(data.get("levels", DEFAULT_LEVELS), problems)
        areas = _items(Area, data, "areas", problems)
        units = _items(Unit, data, "units", problems)
        members = _items(Member, data, "members", problems)
        if problems:
            raise InvalidDirectory(
                [*problems, *_check(areas, units, members, levels)], source=source
            )
        return cls(areas=areas, units=units, members=members, levels=levels, source=source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> InMemoryDirectory:
        """Load a directory from a YAML file (see the module docstring for the format).

        Raises:
            InvalidDirectory: the file cannot be read, is not valid YAML, or its data has
                problems.
        """
        data, problems = read_yaml(path)
        if problems:
            raise InvalidDirectory(problems, source=str(path))
        return cls.from_dict(data, source=str(path))

    # -- the Directory port ------------------------------------------------------------

    def unit(self, unit_id: str) -> Unit:
        """The unit with that id.

        Raises:
            UnknownName: no such unit.
        """
        try:
            return self._units[unit_id]
        except KeyError:
            raise UnknownName("unit", unit_id, self._units) from None

    def units(self) -> Sequence[Unit]:
        """Every unit, in the order they were given."""
        return tuple(self._units.values())

    def has_area(self, code: str) -> bool:
        """Whether the area or grid code is known."""
        return code in self._areas

    def members(self, unit_id: str) -> frozenset[str]:
        """The actor ids of the unit's members (empty for an unknown unit)."""
        return self._members.get(unit_id, frozenset())

    def actor(self, actor_id: str) -> Actor | None:
        """The actor with its roles and units, or ``None`` if unknown."""
        return self._actors.get(actor_id)

    # -- areas -------------------------------------------------------------------------

    @property
    def levels(self) -> tuple[str, ...]:
        """The level names by depth, the most general first."""
        return self._levels

    def areas(self, level: str | None = None) -> tuple[str, ...]:
        """Every area code (of one level, if given), in the order they were given.

        Raises:
            UnknownName: ``level`` is not one of :attr:`levels`.
        """
        if level is None:
            return tuple(self._areas)
        if level not in self._levels:
            raise UnknownName("area level", level, self._levels)
        wanted = self._levels.index(level) + 1
        return tuple(code for code in self._areas if depth(code) == wanted)

    def area(self, code: str) -> Area:
        """The area with that code.

        Raises:
            UnknownName: no such area.
        """
        try:
            return self._areas[code]
        except KeyError:
            raise UnknownName("area", code, self._areas) from None

    def level(self, code: str) -> str:
        """The level name of a known area (``street`` for ``D1.S1``).

        Raises:
            UnknownName: no such area.
        """
        return self._levels[depth(self.area(code).code) - 1]

    def units_serving(self, code: str) -> tuple[Unit, ...]:
        """The units whose served areas cover ``code``, the most local first."""
        rank = {scope: i for i, scope in enumerate(lineage(code))} if is_code(code) else {}
        serving = [
            (min(rank[a] for a in unit.areas if a in rank), unit)
            for unit in self._units.values()
            if any(covers(a, code) for a in unit.areas)
        ]
        return tuple(unit for _, unit in sorted(serving, key=lambda pair: pair[0]))


# -- load-time checks --------------------------------------------------------------------


def _items(
    model: type[ItemT], data: Mapping[str, Any], key: str, problems: list[str]
) -> list[ItemT]:
    raw = labelled(section(data, key, problems), key)
    return [item for _, item in validate_items(model, raw, problems)]


def _levels(value: object, problems: list[str]) -> tuple[str, ...]:
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and value
        and all(isinstance(level, str) and level for level in value)
        and len(set(value)) == len(value)
    ):
        return tuple(value)
    problems.append("levels: must be a list of distinct non-empty names, the most general first")
    return DEFAULT_LEVELS


def _check(
    areas: list[Area], units: list[Unit], members: list[Member], levels: tuple[str, ...]
) -> list[str]:
    codes = {area.code for area in areas}
    unit_ids = {unit.id for unit in units}
    return [
        *_duplicates("area", [area.code for area in areas]),
        *_area_problems(areas, codes, levels),
        *_duplicates("unit", [unit.id for unit in units]),
        *_unit_problems(units, unit_ids, codes),
        *_duplicates("member", [member.id for member in members]),
        *_member_problems(members, unit_ids),
    ]


def _duplicates(kind: str, ids: list[str]) -> Iterator[str]:
    for ident, count in Counter(ids).items():
        if count > 1:
            yield f"duplicate {kind} {ident!r} ({count} times)"


def _area_problems(areas: list[Area], codes: set[str], levels: tuple[str, ...]) -> Iterator[str]:
    for area in areas:
        up = parent(area.code)
        if up is not None and up not in codes:
            yield f"area {area.code!r}: its parent area {up!r} is not listed"
        if depth(area.code) > len(levels):
            yield (
                f"area {area.code!r}: {depth(area.code)} levels deep, but only "
                f"{len(levels)} levels are named ({', '.join(levels)})"
            )


def _unit_problems(units: list[Unit], unit_ids: set[str], codes: set[str]) -> Iterator[str]:
    parents = {unit.id: unit.parent for unit in units}
    for unit in units:
        if unit.parent is not None and unit.parent not in unit_ids:
            yield f"unit {unit.id!r}: unknown parent unit {unit.parent!r}"
        elif _in_cycle(unit.id, parents):
            yield f"unit {unit.id!r}: its parent chain loops back to itself"
        for code in unit.areas:
            problem = code_problem(code)
            if problem:
                yield f"unit {unit.id!r}: areas: {problem}"
            elif code not in codes:
                yield f"unit {unit.id!r}: serves unknown area {code!r}"


def _in_cycle(unit_id: str, parents: Mapping[str, str | None]) -> bool:
    seen = {unit_id}
    current = parents.get(unit_id)
    while current is not None:
        if current in seen:
            return current == unit_id
        seen.add(current)
        current = parents.get(current)
    return False


def _member_problems(members: list[Member], unit_ids: set[str]) -> Iterator[str]:
    for member in members:
        for unit_id in member.units:
            if unit_id not in unit_ids:
                yield f"member {member.id!r}: in unknown unit {unit_id!r}"
