"""The built-in guards and effects, available to every workflow by name.

Guards return ``None`` to allow a transition or a sentence saying why not; effects
return updates (see :mod:`closedloop.engine.context`); a
:class:`~closedloop.engine.registry.Registry` holds them by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from closedloop.engine import dispatching
from closedloop.engine.context import Context, Effect, Guard
from closedloop.engine.durations import Duration
from closedloop.errors import ValidationError

# -- built-in guards ---------------------------------------------------------------------


def _attribute_is(name: str, value: Any, refusal: str) -> Guard:
    def guard(ctx: Context) -> str | None:
        return None if ctx.case.attributes.get(name) == value else refusal

    return guard


def _attribute_set(name: str, refusal: str) -> Guard:
    def guard(ctx: Context) -> str | None:
        return None if ctx.case.attributes.get(name) is not None else refusal

    return guard


def _paused_is(reason: str | None, refusal: str) -> Guard:
    def guard(ctx: Context) -> str | None:
        return None if ctx.case.paused == reason else refusal

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
        deadline.limit.plus(Duration.parse(ctx.payload["duration"]))
    except ValidationError as exc:
        return f"{exc.errors[0][1]} (the clock's limit is {deadline.limit.as_written()})"
    return None


BUILTIN_GUARDS: Mapping[str, Guard] = {
    **dispatching.GUARDS,
    "before_due": _before_due,
    "extension_fits": _extension_fits,
    "actor_is_reporter": _actor_is_reporter,
    "has_lead_unit": _has_lead_unit,
    "no_lead_unit": _no_lead_unit,
    "not_paused": _paused_is(None, "the case is paused"),
    "paused_for_info": _paused_is("info", "the case is not awaiting information"),
    "suspended": _paused_is("suspension", "the case is not suspended"),
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
    **dispatching.EFFECTS,
    "record_extension_request": _record_request("extension_request"),
    "record_suspension_request": _record_request("suspension_request"),
}
