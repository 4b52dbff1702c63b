"""Named guards and effects that workflow definitions may refer to.

A definition names a guard (``guards: [has_lead_unit]``) or an effect; the code
behind the name comes from a :class:`Registry` passed when loading. Names are never
resolved by import. Guards and effects are pure: they see the case, the actor, the
payload and the time, and they return data.

* A guard returns ``None`` to allow the transition, or a sentence saying why not.
* An effect returns updates: case fields (``lead_unit``, ``category``, ...) or
  attributes by name; ``None`` as a value removes an attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from closedloop.engine.model import Actor, Case
from closedloop.errors import UnknownName

if TYPE_CHECKING:
    from closedloop.engine.definition import TransitionSpec


@dataclass(frozen=True, slots=True)
class Services:
    """What the engine lends to guards and effects: routing and calendars.

    ``responsibilities`` is a ``ResponsibilityList`` (or ``None`` when the host routes
    by hand), ``directory`` a ``Directory``, ``calendar`` the engine's default
    ``WorkCalendar``.
    """

    responsibilities: Any = None
    directory: Any = None
    calendar: Any = None


@dataclass(frozen=True, slots=True)
class Context:
    """What a guard or an effect sees of the command being applied."""

    case: Case
    actor: Actor
    payload: Mapping[str, Any]
    now: datetime
    transition: TransitionSpec
    services: Services = Services()
    memo: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    """What the command's guards, effects and diversions worked out once and share (the
    list's routing), so that one command asks each question once."""


Guard = Callable[[Context], "str | None"]
Effect = Callable[[Context], Mapping[str, Any]]


class Registry:
    """An immutable set of named guards and effects.

    Args:
        guards: Guard functions by name.
        effects: Effect functions by name.
    """

    def __init__(
        self,
        *,
        guards: Mapping[str, Guard] | None = None,
        effects: Mapping[str, Effect] | None = None,
    ) -> None:
        self._guards: Mapping[str, Guard] = MappingProxyType(dict(guards or {}))
        self._effects: Mapping[str, Effect] = MappingProxyType(dict(effects or {}))

    @property
    def guards(self) -> Mapping[str, Guard]:
        """The guards by name."""
        return self._guards

    @property
    def effects(self) -> Mapping[str, Effect]:
        """The effects by name."""
        return self._effects

    def extended(
        self,
        *,
        guards: Mapping[str, Guard] | None = None,
        effects: Mapping[str, Effect] | None = None,
    ) -> Registry:
        """A new registry with these guards and effects added (or replaced)."""
        return Registry(
            guards={**self._guards, **(guards or {})},
            effects={**self._effects, **(effects or {})},
        )

    @classmethod
    def default(cls) -> Registry:
        """The built-in guards and effects (those the standard workflow uses)."""
        from closedloop.engine.builtins import DEFAULT_REGISTRY

        return DEFAULT_REGISTRY

    def guard(self, name: str) -> Guard:
        """The guard called ``name``.

        Raises:
            UnknownName: no guard of that name is registered.
        """
        try:
            return self._guards[name]
        except KeyError:
            raise UnknownName("guard", name, self._guards) from None

    def effect(self, name: str) -> Effect:
        """The effect called ``name``.

        Raises:
            UnknownName: no effect of that name is registered.
        """
        try:
            return self._effects[name]
        except KeyError:
            raise UnknownName("effect", name, self._effects) from None
