"""Assignment: dispatch by the list, sign-for or return, the dispatcher's decision, arbitration.

A unit that got a case meant for another unit (the dispatcher classified it wrongly,
or approved a return to the wrong unit) usually returns it; a unit holding a matter
only the fallback covers sometimes does. The dispatcher approves a return to the unit
the list gives for the real category, and otherwise mostly rejects it; a second return
goes to arbitration, whose decision is final.
"""

from __future__ import annotations

from closedloop.engine.model import Case
from closedloop.simulation import wording
from closedloop.simulation.stage import Stage, Story


def dispatch(stage: Stage, story: Story) -> None:
    """The dispatcher dispatches by the responsibility list."""
    case = stage.act(story, stage.district.cast.dispatcher, "dispatch")
    if case is None:
        return
    routing = stage.district.duties.resolve(story.category, story.grid, stage.now)
    story.truth = routing.lead_unit or routing.candidates[0]
    story.gap = case.routing is not None and bool(case.routing.gap)
    assigned(stage, story, case)


def assigned(stage: Stage, story: Story, case: Case) -> None:
    """Plan what follows an assignment: the arbiter's decision or the unit's answer."""
    if case.state == "arbitration":
        at = stage.wait(stage.habits.arbitration_office, office=True)
        stage.later(story, at, arbitrate)
    elif story.urgency == "emergency":
        at = stage.wait(stage.habits.sign_for_emergency_minutes, minutes=True)
        stage.later(story, at, respond)
    else:
        stage.later(story, stage.wait(stage.habits.sign_for_office, office=True), respond)


def respond(stage: Stage, story: Story) -> None:
    """The lead unit signs for the case, or returns it with a reason."""
    assert story.lead_unit is not None
    unit = stage.district.cast.handler(story.lead_unit)
    reason = _return_reason(stage, story)
    if reason is None:
        case = stage.act(story, unit, "accept")
        if case is not None:
            stage.steps.start_handling(stage, story, case)
        return
    case = stage.act(story, unit, "return", reason_code=reason, evidence=wording.EVIDENCE[reason])
    if case is None:
        return
    if case.state == "arbitration":
        assigned(stage, story, case)
    else:
        at = stage.wait(stage.habits.return_decision)
        stage.later(story, at, decide_return)


def _return_reason(stage: Stage, story: Story) -> str | None:
    habits, dice = stage.habits, stage.dice
    if story.final:
        return None
    if story.lead_unit != story.truth:
        misplaced = story.lead_unit not in _serving(stage, story)
        chosen = "wrong_area" if misplaced else "wrong_function"
        return chosen if dice.chance(habits.return_if_misrouted) else None
    if story.rejected_return:
        return "ownership_unclear" if dice.chance(habits.return_again) else None
    if story.gap:
        return "ownership_unclear" if dice.chance(habits.return_if_gap) else None
    return "other" if dice.chance(habits.return_otherwise) else None


def decide_return(stage: Stage, story: Story) -> None:
    """The dispatcher approves the return to another unit, rejects it, or refers it."""
    habits, dice = stage.habits, stage.dice
    dispatcher = stage.district.cast.dispatcher
    alternative = _alternative(stage, story)
    if story.truth is not None and story.lead_unit != story.truth:
        reason = f"按清单改派 the list gives {story.truth} for this matter"
        case = stage.act(story, dispatcher, "redispatch", unit=story.truth, reason=reason)
    elif dice.chance(habits.refer_to_arbitration):
        case = stage.act(story, dispatcher, "refer_to_arbitration", reason="权属争议 disputed")
    elif alternative is None or dice.chance(habits.reject_return):
        reason = "清单明确由贵单位办理 the list names your unit"
        case = stage.act(story, dispatcher, "reject_return", reason=reason)
        story.rejected_return = case is not None
    else:
        reason = f"改派 {alternative} 试办 try {alternative}"
        case = stage.act(story, dispatcher, "redispatch", unit=alternative, reason=reason)
        story.rejected_return = False
    if case is not None:
        assigned(stage, story, case)


def arbitrate(stage: Stage, story: Story) -> None:
    """The arbiter names the unit the list gives for the real category; it is final."""
    unit = story.truth or story.lead_unit
    assert unit is not None
    reason = f"依据权责清单 {stage.district.duties.version} 裁定 decided by the list"
    cast = stage.district.cast
    arbiter = cast.neutral(cast.arbiter, story.lead_unit)
    case = stage.act(story, arbiter, "arbitrate", unit=unit, reason=reason)
    if case is not None:
        story.final = True
        story.rejected_return = False
        assigned(stage, story, case)


def _serving(stage: Stage, story: Story) -> set[str]:
    return {unit.id for unit in stage.district.directory.units_serving(story.grid)}


def _alternative(stage: Stage, story: Story) -> str | None:
    """Another unit serving the grid, as a dispatcher approving a return might pick."""
    for unit in stage.district.directory.units_serving(story.grid):
        if unit.id not in (story.lead_unit, story.truth):
            return unit.id
    return None
