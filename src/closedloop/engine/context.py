"""What a guard or an effect sees of the command being applied: :class:`Context`.

Guards and effects are pure functions of a :class:`Context`; the engine builds one per
command, lending them its :class:`Services` (the responsibility list, the directory,
the default working calendar).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from closedloop.engine.calendars.working import NaturalCalendar
from closedloop.engine.duties.responsibility_list import ResponsibilityList
from closedloop.engine.model import Actor, Case
from closedloop.engine.ports import Directory, WorkCalendar
from closedloop.engine.specs import RouteAt, TransitionSpec


@dataclass(frozen=True, slots=True)
class Services:
    """What the engine lends to guards and effects: routing and calendars.

    ``responsibilities`` is ``None`` when the host routes by hand; ``calendar`` is the
    engine's default calendar (natural time when a context is built by hand);
    ``route_at`` is the workflow's choice of the instant the list is asked at.
    """

    responsibilities: ResponsibilityList | None = None
    directory: Directory | None = None
    calendar: WorkCalendar = field(default_factory=NaturalCalendar)
    route_at: RouteAt = "report"


@dataclass(frozen=True, slots=True)
class Context:
    """What a guard or an effect sees of the command being applied."""

    case: Case
    actor: Actor
    payload: Mapping[str, Any]
    now: datetime
    transition: TransitionSpec
    services: Services = field(default_factory=Services)
    memo: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    """What the command's guards, effects and diversions worked out once and share (the
    list's routing), so that one command asks each question once."""


Guard = Callable[[Context], "str | None"]
"""A guard returns ``None`` to allow a transition, or a sentence saying why not."""
Effect = Callable[[Context], Mapping[str, Any]]
"""An effect returns updates: case fields or attributes by name (``None`` clears one)."""
