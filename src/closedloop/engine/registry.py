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
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from closedloop.engine.durations import Duration
from closedloop.engine.model import Actor, Case
from closedloop.errors import UnknownName, ValidationError

if TYPE_CHECKING:
    from closedloop.engine.definition import TransitionSpec


@dataclass(frozen=True, slots=True)
class Context:
    """What a guard or an effect sees of the command being applied."""

    case: Case
    actor: Actor
    payload: Mapping[str, Any]
    now: datetime
    transition: TransitionSpec


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


# -- built-in guards ---------------------------------------------------------------------


def _attribute_is(name: str, value: Any, refusal: str) -> Guard:
    def guard(ctx: Context) -> str | None:
        return None if ctx.case.attributes.get(name) == value else refusal

    return guard


def _attribute_set(name: str, refusal: str) -> Guard:
    def guard(ctx: Context) -> str | None:
        return None if ctx.case.attributes.get(name) is not None else refusal

    return guard


def _actor_is_reporter(ctx: Context) -> str | None:
    return None if ctx.actor.id == ctx.case.reporter_id else "only the reporter may do this"


def _has_lead_unit(ctx: Context) -> str | None:
    return None if ctx.case.lead_unit else "the case has no lead unit"


def _no_lead_unit(ctx: Context) -> str | None:
    return None if not ctx.case.lead_unit else "the case has a lead unit; use rework"


def _before_due(ctx: Context) -> str | None:
    deadline = ctx.case.deadline
    if deadline is None or ctx.now < deadline.due_at:
        return None
    return f"the deadline ({deadline.due_at.isoformat()}) has passed; ask before it"


def _extension_fits(ctx: Context) -> str | None:
    deadline = ctx.case.deadline
    if deadline is None:
        return "the case has no running clock to extend"
    if "duration" not in ctx.payload:  # asked by allowed(): the field itself is required
        return None
    try:
        Duration.parse(deadline.limit).plus(Duration.parse(ctx.payload["duration"]))
    except ValidationError as exc:
        return f"{exc.errors[0][1]} (the clock's limit is {deadline.limit})"
    return None


BUILTIN_GUARDS: Mapping[str, Guard] = {
    "before_due": _before_due,
    "extension_fits": _extension_fits,
    "actor_is_reporter": _actor_is_reporter,
    "has_lead_unit": _has_lead_unit,
    "no_lead_unit": _no_lead_unit,
    "not_paused": _attribute_is("paused", None, "the case is paused"),
    "paused_for_info": _attribute_is("paused", "info", "the case is not awaiting information"),
    "suspended": _attribute_is("paused", "suspension", "the case is not suspended"),
    "returnable": _attribute_is(
        "final_assignment", None, "the unit was decided by arbitration and cannot return it"
    ),
    "extension_pending": _attribute_set("extension_request", "no extension has been requested"),
    "no_extension_pending": _attribute_is(
        "extension_request", None, "an extension request is already pending"
    ),
    "suspension_pending": _attribute_set("suspension_request", "no suspension has been requested"),
    "no_suspension_pending": _attribute_is(
        "suspension_request", None, "a suspension request is already pending"
    ),
}


# -- built-in effects --------------------------------------------------------------------


def _record_request(name: str) -> Effect:
    def effect(ctx: Context) -> Mapping[str, Any]:
        return {
            name: {
                **dict(ctx.payload),
                "by": ctx.actor.id,
                "at": ctx.now.isoformat(),
            }
        }

    return effect


BUILTIN_EFFECTS: Mapping[str, Effect] = {
    "record_extension_request": _record_request("extension_request"),
    "record_suspension_request": _record_request("suspension_request"),
}

DEFAULT_REGISTRY = Registry(guards=BUILTIN_GUARDS, effects=BUILTIN_EFFECTS)
"""The guards and effects every workflow may use, including the standard one."""
