"""The district a simulation runs in: its directory, categories, list and cast.

A district is a folder holding ``directory.yaml``, ``categories.yaml`` and
``duties.yaml`` in the forms ``docs/routing.md`` describes. The built-in one is the
fictional Yunshan District of ``examples/district`` (a copy ships inside the package so
that ``closedloop demo`` runs from an installed wheel too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from closedloop.engine.directory import InMemoryDirectory
from closedloop.engine.duties.catalog import CategoryCatalog
from closedloop.engine.duties.responsibility_list import ResponsibilityList
from closedloop.engine.hierarchy import covers
from closedloop.engine.model import Actor

YUNSHAN = Path(__file__).resolve().with_name("yunshan")
"""The folder of the built-in district (Yunshan, 12 grids, 8 units)."""

FILES = ("directory.yaml", "categories.yaml", "duties.yaml")
"""The files a district folder holds."""


@dataclass(frozen=True, slots=True)
class Cast:
    """Who acts in the simulation, taken from the directory where it names them.

    Attributes:
        dispatcher: Classifies, dispatches, decides returns, feeds results back.
        arbiter: Decides disputed assignments.
        supervisor: Grants second extensions.
        verifier: Calls reporters back and checks on-the-spot fixes.
        grid_workers: Each grid worker with the grids they patrol.
        handlers: One member per unit, who acts for that unit.
    """

    dispatcher: Actor
    arbiter: Actor
    supervisor: Actor
    verifier: Actor
    grid_workers: Mapping[Actor, tuple[str, ...]]
    handlers: Mapping[str, Actor]

    def handler(self, unit: str) -> Actor:
        """The member who acts for ``unit`` (a stand-in when the directory lists none)."""
        return self.handlers.get(unit) or Actor(f"{unit}.duty-officer", units=frozenset({unit}))

    def neutral(self, actor: Actor, unit: str | None) -> Actor:
        """``actor``, or, when they belong to ``unit`` (party to its case: the workflow
        bars them from deciding it), a stand-in with their roles from outside it."""
        if unit is None or unit not in actor.units:
            return actor
        return Actor(f"{actor.id}.stand-in", roles=actor.roles)


@dataclass(frozen=True, slots=True)
class District:
    """A district ready to simulate: who is who, what can be reported, who owns what.

    Attributes:
        name: The name of the district's top area.
        directory: Units, members and areas.
        categories: The category catalogue.
        duties: The responsibility list that routes reports.
        grids: The grid codes where reports happen.
        cast: The actors of the simulation.
    """

    name: str
    directory: InMemoryDirectory
    categories: CategoryCatalog
    duties: ResponsibilityList
    grids: tuple[str, ...]
    cast: Cast

    @classmethod
    def load(cls, folder: str | Path | None = None) -> District:
        """Load the district in ``folder`` (the built-in Yunshan District by default).

        Raises:
            InvalidDirectory: ``directory.yaml`` has problems.
            InvalidResponsibilityList: ``categories.yaml`` or ``duties.yaml`` has problems.
            OSError: a file cannot be read.
        """
        where = Path(folder) if folder is not None else YUNSHAN
        directory = InMemoryDirectory.from_yaml(where / "directory.yaml")
        categories = CategoryCatalog.from_yaml(where / "categories.yaml")
        duties = ResponsibilityList.from_yaml(
            where / "duties.yaml", directory=directory, categories=categories
        )
        grids = directory.areas(level=directory.levels[-1])
        top = directory.areas()[0]
        return cls(
            name=directory.area(top).name or top,
            directory=directory,
            categories=categories,
            duties=duties,
            grids=grids,
            cast=_cast(directory, grids),
        )

    @property
    def time_zone(self) -> ZoneInfo:
        """The zone of the responsibility list: where the district's clocks hang."""
        return self.duties.time_zone

    def grid_name(self, grid: str) -> str:
        """The grid's name, or its code when it has none."""
        return self.directory.area(grid).name or grid


def _cast(directory: InMemoryDirectory, grids: tuple[str, ...]) -> Cast:
    def holder(role: str) -> Actor:
        for unit in directory.units():
            for member in sorted(directory.members(unit.id)):
                actor = directory.actor(member)
                if actor is not None and role in actor.roles:
                    return actor
        return Actor(f"simulated-{role}", roles=frozenset({role}))

    workers: dict[Actor, tuple[str, ...]] = {}
    handlers: dict[str, Actor] = {}
    for unit in directory.units():
        for member in sorted(directory.members(unit.id)):
            actor = directory.actor(member)
            if actor is None:
                continue
            if "grid_worker" in actor.roles:
                patch = tuple(g for g in grids if any(covers(a, g) for a in unit.areas))
                workers.setdefault(actor, patch)
            elif not actor.roles:
                handlers.setdefault(unit.id, actor)
    return Cast(
        dispatcher=holder("dispatcher"),
        arbiter=holder("arbiter"),
        supervisor=holder("supervisor"),
        verifier=holder("verifier"),
        grid_workers={w: g for w, g in workers.items() if g},
        handlers=handlers,
    )
