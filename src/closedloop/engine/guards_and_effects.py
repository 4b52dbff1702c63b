"""The built-in guards and effects, available to every workflow by name.

Guards return ``None`` to allow a transition or a sentence saying why not; effects
return updates (see :mod:`closedloop.engine.context`); a
:class:`~closedloop.engine.registry.Registry` holds them by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from closedloop.engine import dispatching
from closedloop.engine.context import Context, Effect, Guard
from closedloop.engine.durations import Duration
from closedloop.engine.model import Case, Request
from closedloop.errors import ValidationError

# -- built-in guards ---------------------------------------------------------------------


def _returnable(ctx: Context) -> str | None:
    if ctx.case.final_assignment:
        return "the unit was decided by arbitration and cannot return it"
    return None


def _pending(request: Callable[[Case], Request | None], noun: str, *, wanted: bool) -> Guard:
    """A guard that wants a request of the case pending (or not)."""

    def guard(ctx: Context) -> str | None:
        pending = request(ctx.case) is not None
        if pending == wanted:
            return None
        return (
            f"no {noun} has been requested"
            if wanted
            else f"{_article(noun)} {noun} request is already pending"
        )

    return guard


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def _extension(case: Case) -> Request | None:
    return case.extension_request


def _suspension(case: Case) -> Request | None:
    return case.suspension_request


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
        asked = Duration.parse(ctx.payload["duration"])
        deadline.limit.plus(asked)
    except ValidationError as exc:
        return f"{exc.errors[0][1]} (the clock's limit is {deadline.limit.as_written()})"
    if asked.amount <= 0:
        return (
            f"an extension of {asked.as_written()!r} adds no time; ask for more than zero "
            f"(the clock's limit is {deadline.limit.as_written()})"
        )
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
    "returnable": _returnable,
    "extension_pending": _pending(_extension, "extension", wanted=True),
    "no_extension_pending": _pending(_extension, "extension", wanted=False),
    "suspension_pending": _pending(_suspension, "suspension", wanted=True),
    "no_suspension_pending": _pending(_suspension, "suspension", wanted=False),
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


FAILED_CHECKS = "failed_checks"
"""The counter of a case's failed checks: results sent back by the reviewer or at the
callback."""
SUPERVISED_AT = 3
"""The failed check that puts a case under supervision (督办)."""


def _supervise_repeated_failure(ctx: Context) -> Mapping[str, Any]:
    """Set the supervision flag when this command is the case's third failed check
    (the transition counts ``failed_checks``; counters move after the effects)."""
    if ctx.case.supervised or ctx.case.counter(FAILED_CHECKS) + 1 < SUPERVISED_AT:
        return {}
    return {"supervised": True}


BUILTIN_EFFECTS: Mapping[str, Effect] = {
    **dispatching.EFFECTS,
    "supervise_repeated_failure": _supervise_repeated_failure,
    "record_extension_request": _record_request("extension_request"),
    "record_suspension_request": _record_request("suspension_request"),
}
