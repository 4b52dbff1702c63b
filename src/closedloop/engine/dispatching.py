"""Dispatch by the responsibility list, returns, and co-handling subtasks.

Guards and effects the standard workflow's assignment steps use:

* ``dispatch`` routes the case through the engine's responsibility list for its
  category and area as of the instant the workflow's ``route_at`` names: the report
  (the default: the entries in force when the citizen reported decide, however late
  the dispatch) or the dispatch. The routing (entry, list version, explanation, gap
  flag) is kept on the case, so a later list does not move it. A dispatcher may name
  another unit only with a reason, recorded as an override.
* When the list finds two equally specific entries, the dispatch diverts to
  arbitration (guard ``routing_disputed``); nothing is guessed.
* ``redispatch`` (a return approved) must name another unit; the misdirect is
  recorded against the dispatcher who sent it, not against the unit that returned it.
* Co-units get subtasks when the case is assigned; they start when the lead unit
  accepts (a subtask that depends on another starts when that one is done), and the
  lead unit cannot submit its result while a mandatory subtask is open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from closedloop.engine.context import Context, Effect, Guard
from closedloop.engine.durations import Duration
from closedloop.engine.duties.resolution import Routing
from closedloop.engine.model import Misdirect, RoutingRecord, Subtask
from closedloop.errors import ClosedLoopError, UnknownName


def resolve(ctx: Context) -> Routing | None:
    """The list's routing for the case, or ``None`` when it cannot be asked.

    The list is asked as of the case's report, or as of now when the workflow routes
    at dispatch (``route_at``).

    Asked once per command: the guards, the diversion and the effect of one dispatch
    share the answer through ``ctx.memo``.

    Raises:
        ClosedLoopError: the list refuses the category or area.
    """
    if "routing" in ctx.memo:
        known = ctx.memo["routing"]
        return known if isinstance(known, Routing) else None
    duties = ctx.services.responsibilities
    case = ctx.case
    routing = None
    if duties is not None and case.category is not None and case.location.area is not None:
        at = case.reported_at if ctx.services.route_at == "report" else ctx.now
        routing = duties.resolve(case.category, case.location.area, at)
    ctx.memo["routing"] = routing
    return routing


def _unknown_unit(ctx: Context, unit: str) -> str | None:
    directory = ctx.services.directory
    if directory is None:
        return None
    try:
        directory.unit(unit)
    except ClosedLoopError as exc:
        return str(exc)
    return None


def _unknown_co_units(ctx: Context) -> str | None:
    """Why the payload's ``co_units`` cannot be assigned: the units the directory does
    not know, all of them named (``None`` when all are known or there is no directory)."""
    directory = ctx.services.directory
    if directory is None:
        return None
    unknown: list[str] = []
    known: tuple[str, ...] = ()
    for unit in ctx.payload.get("co_units") or ():
        try:
            directory.unit(unit)
        except UnknownName as exc:
            unknown.append(unit)
            known = exc.known
        except ClosedLoopError as exc:
            return f"co_units: {exc}"
    if not unknown:
        return None
    named = ", ".join(repr(unit) for unit in unknown)
    noun = "co-unit" if len(unknown) == 1 else "co-units"
    return f"unknown {noun} {named}; known: {', '.join(known) or 'none'}"


def _unknown_units(ctx: Context, unit: str | None) -> str | None:
    """Why ``unit`` (when given) or a co-unit the payload names cannot be assigned."""
    refusal = _unknown_unit(ctx, unit) if unit is not None else None
    return refusal or _unknown_co_units(ctx)


# -- guards ------------------------------------------------------------------------------


def _routable(ctx: Context) -> str | None:
    unit = ctx.payload.get("unit")
    unknown = _unknown_co_units(ctx)
    if unknown is not None:
        return unknown
    try:
        routing = resolve(ctx)
    except ClosedLoopError as exc:
        return f"the responsibility list cannot route this case: {exc}"
    if unit is None:
        if ctx.payload.get("co_units"):
            # Without a unit the list decides the co-units too: named ones would be
            # dropped without a word.
            return (
                "co_units are named together with the unit (with a reason when it "
                "differs from the list's); without a unit the list decides the co-units"
            )
        if routing is not None:
            return None
        if ctx.services.responsibilities is None:
            return "no responsibility list is configured: name the unit"
        return "the case needs a category and an area to be routed: name the unit"
    if routing is not None and routing.lead_unit != unit and not ctx.payload.get("reason"):
        listed = routing.lead_unit or "arbitration"
        return f"the list gives {listed!r}; overriding it with {unit!r} needs a reason"
    return _unknown_unit(ctx, unit)


def _routing_disputed(ctx: Context) -> str | None:
    if "unit" in ctx.payload:
        return "the dispatcher named the unit"
    routing = resolve(ctx)
    return None if routing is not None and routing.needs_arbitration else "the list decides"


def _another_unit(ctx: Context) -> str | None:
    unit = ctx.payload.get("unit")
    if unit is not None and unit == ctx.case.lead_unit:
        return f"{unit!r} returned the case; approve the return with another unit"
    return _unknown_units(ctx, unit)


def _known_units(ctx: Context) -> str | None:
    return _unknown_units(ctx, ctx.payload.get("unit"))


def _subtasks_done(ctx: Context) -> str | None:
    open_ = [t.unit for t in ctx.case.subtasks if t.mandatory and t.status != "done"]
    return f"mandatory co-unit subtasks are open: {', '.join(open_)}" if open_ else None


def _has_active_subtask(ctx: Context) -> str | None:
    if _own_active(ctx) is None:
        return "none of the actor's units has an active subtask on this case"
    return None


GUARDS: Mapping[str, Guard] = {
    "routable": _routable,
    "routing_disputed": _routing_disputed,
    "another_unit": _another_unit,
    "known_units": _known_units,
    "subtasks_done": _subtasks_done,
    "has_active_subtask": _has_active_subtask,
}


# -- effects -----------------------------------------------------------------------------


def _route(ctx: Context) -> Mapping[str, Any]:
    named = ctx.payload.get("unit")
    routing = resolve(ctx)
    record: dict[str, Any] = {"by": ctx.actor.id, "at": ctx.now}
    if routing is not None:
        record.update(
            entry=routing.entry_id,
            list_version=routing.list_version,
            explanation=routing.explanation,
            gap=routing.gap,
            lead_unit=routing.lead_unit,
            candidates=routing.candidates,
            supervising_unit=routing.supervising_unit,
        )
    if named is not None:
        record["override"] = routing is not None and named != routing.lead_unit
        record["reason"] = ctx.payload.get("reason")
        return _assigned(ctx, named, _named_co_units(ctx), RoutingRecord(**record))
    assert routing is not None  # the routable guard ran first
    if routing.lead_unit is None:  # the list's other shape: needs_arbitration
        return {
            "lead_unit": None,
            "co_units": (),
            "routing": RoutingRecord(**record),
            "dispatched_by": ctx.actor.id,
        }
    co_units = [
        _subtask(co.unit, co.duty, co.mandatory, co.after, co.within) for co in routing.co_units
    ]
    return _assigned(ctx, routing.lead_unit, co_units, RoutingRecord(**record))


def _assign_named(ctx: Context) -> Mapping[str, Any]:
    """Assign to the unit the payload names (a redispatch, an arbiter's decision)."""
    record = RoutingRecord(by=ctx.actor.id, at=ctx.now, reason=ctx.payload.get("reason"))
    return _assigned(ctx, ctx.payload["unit"], _named_co_units(ctx), record)


def _named_co_units(ctx: Context) -> list[Subtask]:
    return [_subtask(unit, "", True, None, None) for unit in ctx.payload.get("co_units", ())]


def _subtask(
    unit: str, duty: str, mandatory: bool, after: str | None, within: str | None
) -> Subtask:
    """A waiting subtask: it starts when the lead unit accepts the case (or, with
    ``after``, when that co-unit is done) and then has ``within`` from activation."""
    return Subtask(
        unit=unit,
        duty=duty,
        mandatory=mandatory,
        after=after,
        within=None if within is None else Duration.parse(within),
        status="waiting",
        due_at=None,
    )


def _assigned(
    ctx: Context, unit: str, co_units: Sequence[Subtask], record: RoutingRecord
) -> dict[str, Any]:
    """Updates giving the case to ``unit``, with a waiting subtask per other co-unit."""
    subtasks = [task for task in co_units if task.unit != unit]
    return {
        "lead_unit": unit,
        "co_units": [t.unit for t in subtasks],
        "routing": record,
        "subtasks": subtasks or None,
        "dispatched_by": ctx.actor.id,
    }


def _record_misdirect(ctx: Context) -> Mapping[str, Any]:
    misdirect = Misdirect(dispatcher=ctx.case.dispatched_by, unit=ctx.case.lead_unit, at=ctx.now)
    return {"misdirects": [*ctx.case.misdirects, misdirect]}


def _activate_subtasks(ctx: Context) -> Mapping[str, Any]:
    tasks = ctx.case.subtasks
    if not tasks:
        return {}
    done = {t.unit for t in tasks if t.status == "done"}
    return {"subtasks": [_activated(ctx, t, done) for t in tasks]}


def _complete_subtask(ctx: Context) -> Mapping[str, Any]:
    own = _own_active(ctx)
    assert own is not None  # the has_active_subtask guard ran first
    tasks = []
    for task in ctx.case.subtasks:
        if task.unit == own.unit:
            due = task.due_at or _case_due(ctx)
            result = ctx.payload.get("result")
            task = task.model_copy(
                update={
                    "status": "done",
                    "done_at": ctx.now,
                    "late": due is not None and ctx.now > due,
                    "result": result,
                }
            )
        tasks.append(task)
    done = {t.unit for t in tasks if t.status == "done"}
    return {"subtasks": [_activated(ctx, t, done) for t in tasks]}


def _activated(ctx: Context, task: Subtask, done: set[str]) -> Subtask:
    if task.status != "waiting" or (task.after and task.after not in done):
        return task
    # Its clock (due and warning instants) is started by the Timekeeper, after the case's.
    return task.model_copy(update={"status": "active", "activated_at": ctx.now})


def _own_active(ctx: Context) -> Subtask | None:
    return next(
        (t for t in ctx.case.subtasks if t.status == "active" and t.unit in ctx.actor.units),
        None,
    )


def _case_due(ctx: Context) -> datetime | None:
    deadline = ctx.case.deadline
    return deadline.due_at if deadline is not None else None


EFFECTS: Mapping[str, Effect] = {
    "route": _route,
    "assign_named_unit": _assign_named,
    "record_misdirect": _record_misdirect,
    "activate_subtasks": _activate_subtasks,
    "complete_subtask": _complete_subtask,
}
