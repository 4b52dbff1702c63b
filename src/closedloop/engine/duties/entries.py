"""The lines of a responsibility list: its header, entries and fallback owners.

An :class:`Entry` says who leads on a category of report in an area, on which basis,
from when to when. A :class:`Fallback` (兜底) says who takes what no entry covers in an
area. Both come from outside (YAML, CSV), so they are frozen pydantic models that
refuse unknown fields; checks that need the whole list or the directory live in
:mod:`closedloop.engine.duties.consistency`.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from closedloop.engine.durations import Duration
from closedloop.engine.duties.catalog import Precedence
from closedloop.engine.hierarchy import Code, depth

Basis = Literal["owner", "territory"]
"""Why a unit is responsible: it is the registered owner of the component (权属), or
the area is its territory or jurisdiction (属地)."""


class _Line(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CoUnit(_Line):
    """A co-handling unit (协办单位) and what it must do.

    On dispatch each co-unit gets a subtask. It starts when the lead unit accepts the
    case, or, with ``after``, when that other co-unit's subtask is done; ``within`` is
    its own limit from then (without it, the lead unit's handling deadline applies).
    The lead unit cannot submit its result while a ``mandatory`` subtask is open.
    """

    unit: str = Field(min_length=1)
    duty: str = Field(min_length=1)
    mandatory: bool = True
    after: str | None = None
    within: str | None = None


class Entry(_Line):
    """One line of the list: who leads on ``category`` within ``area``.

    ``category`` covers its sub-categories and ``area`` its descendants. The entry is
    in force on local dates ``effective_from <= day < effective_to`` (either end may
    be open). ``precedence`` may only be set on owner entries; it overrides the
    category's precedence when this entry competes with a territory entry.
    """

    id: str = Field(min_length=1)
    category: Code
    area: Code
    basis: Basis = "territory"
    precedence: Precedence | None = None
    lead_unit: str = Field(min_length=1)
    co_units: tuple[CoUnit, ...] = ()
    supervising_unit: str | None = None
    legal_basis: str | None = None
    effective_from: date | None = None
    effective_to: date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        start, end = self.effective_from, self.effective_to
        if start is not None and end is not None and end <= start:
            raise ValueError(
                f"effective_to {end} is not after effective_from {start} "
                "(effective_to is exclusive: the first day the entry no longer applies)"
            )
        if self.precedence is not None and self.basis != "owner":
            raise ValueError("precedence may only be set on owner entries (basis: owner)")
        co_units = {co.unit for co in self.co_units}
        for co in self.co_units:
            if co.after is not None and (co.after not in co_units or co.after == co.unit):
                raise ValueError(f"co-unit {co.unit!r} waits for {co.after!r}, not another co-unit")
            if co.within is not None:
                Duration.parse(co.within)
        return self

    def in_force(self, day: date) -> bool:
        """Whether the entry applies on the local date ``day``."""
        return (self.effective_from is None or self.effective_from <= day) and (
            self.effective_to is None or day < self.effective_to
        )

    @property
    def specificity(self) -> tuple[int, int]:
        """(area depth, category depth): the more specific entry ranks higher."""
        return depth(self.area), depth(self.category)

    def period(self) -> str:
        """The effective period in words, for messages."""
        start = f"from {self.effective_from}" if self.effective_from else "from the start"
        end = f"until {self.effective_to} (exclusive)" if self.effective_to else "open-ended"
        return f"{start}, {end}"


class Fallback(_Line):
    """The fallback owner (兜底) for everything no entry covers within ``area``."""

    id: str = Field(min_length=1)
    area: Code
    lead_unit: str = Field(min_length=1)
    supervising_unit: str | None = None
    legal_basis: str | None = None


class ListHeader(_Line):
    """The list's own fields: its version, time zone and default precedence."""

    version: str = Field(min_length=1)
    time_zone: str
    precedence: Precedence = "owner_first"
    description: str | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name") from None
        return value
