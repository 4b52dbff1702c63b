"""Closing the loop: the reporter confirms, or rejects the result, answering the two
questions of the callback either way: was it resolved, and how satisfied are they.

Most reporters answer within hours; a late result is rated lower and rejected more
often, which sends the case back to the same unit for rework. The two answers are
drawn independently: some reporters call a matter resolved and still say they are
dissatisfied, others are satisfied with the service though the matter is not
resolved. Reporters who never
answer are called back by a verifier once the confirmation clock has run out. A grid
worker's on-the-spot fix is checked by a verifier, who reopens the few that were not
fixed; a reopened case goes back to dispatch, and the loop starts again. A grid worker
whose report another unit handled answers like any reporter; one whose own unit handled
it is party to the case, so a verifier checks the result in their stead.
"""

from __future__ import annotations

from typing import Any

from closedloop.simulation.stage import Stage, Story

_CALLBACK_OFFICE = (26.0, 0.2)
"""When a verifier calls back a silent reporter: after the 3-working-day clock."""


def await_answer(stage: Stage, story: Story) -> None:
    """The case waits for confirmation: plan who confirms it, and when."""
    if story.lead_unit is None and "grid_worker" in story.reporter.roles:
        at = stage.wait(stage.habits.verification_office, office=True)
        stage.later(story, at, _verify_fix)
    elif story.silent:
        stage.later(story, stage.wait(_CALLBACK_OFFICE, office=True), _call_back)
    else:
        stage.later(story, stage.wait(stage.habits.reporter_answer), _answer)


def _answers(stage: Stage, story: Story, *, rejecting: bool = False) -> dict[str, Any]:
    """The reporter's answers to the callback's two questions, drawn independently."""
    habits, dice = stage.habits, stage.dice
    if rejecting:
        resolved, ratings = habits.resolved_rejecting, habits.ratings_rejecting
    elif story.late:
        resolved, ratings = habits.resolved_late, habits.ratings_late
    else:
        resolved, ratings = habits.resolved_on_time, habits.ratings_on_time
    return {"resolved": "yes" if dice.chance(resolved) else "no", "rating": dice.pick(ratings)}


def _answer(stage: Stage, story: Story) -> None:
    habits = stage.habits
    own_unit = story.lead_unit is not None and story.lead_unit in story.reporter.units
    checker = stage.district.cast.verifier if own_unit else story.reporter
    rework = habits.rework_late if story.late else habits.rework_on_time
    if story.lead_unit is not None and stage.dice.chance(rework):
        reason = "问题仍未解决 still not fixed"
        answers = _answers(stage, story, rejecting=True)
        if stage.act(story, checker, "reject_result", reason=reason, **answers) is not None:
            stage.steps.rework(stage, story)
        return
    stage.act(story, checker, "confirm", **_answers(stage, story))


def _call_back(stage: Stage, story: Story) -> None:
    comment = "电话回访 confirmed by a callback"
    verifier = stage.district.cast.verifier
    stage.act(story, verifier, "confirm", comment=comment, **_answers(stage, story))


def _verify_fix(stage: Stage, story: Story) -> None:
    verifier = stage.district.cast.verifier
    if stage.dice.chance(stage.habits.reopen_on_the_spot):
        reason = "现场复核未解决 not fixed on inspection"
        if stage.act(story, verifier, "reopen", reason=reason) is not None:
            at = stage.wait(stage.habits.dispatch_minutes, minutes=True)
            stage.later(story, at, stage.steps.dispatch)
        return
    checked = "现场核实 checked on site"
    stage.act(story, verifier, "confirm", resolved="yes", rating="satisfied", comment=checked)
