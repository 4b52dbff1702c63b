"""Handling: the lead unit's work, co-units, questions to the reporter, extensions, result.

Once a unit has signed for a case it plans its work: a log-normal number of office
hours (elapsed minutes for an emergency). Co-units finish their subtasks first; some
units need more information from the reporter (the clock pauses meanwhile); a unit
that sees it will overrun often asks for an extension before the due time, which the
dispatcher (the first time) or the supervisor grants or refuses. The result goes to
the dispatcher, who feeds it back to the reporter or sends it back for more work.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta
from fractions import Fraction
from functools import partial
from typing import Any

from closedloop.engine.durations import Duration
from closedloop.engine.model import Actor, Case
from closedloop.simulation import wording
from closedloop.simulation.stage import Stage, Story

_SUBMIT_RETRIES = 3


def start(stage: Stage, story: Story, case: Case) -> None:
    """The lead unit has signed for the case: plan its work up to the result."""
    finish = _work_ends(stage, story)
    finish = _co_units(stage, story, case, finish)
    finish = _information(stage, story, finish)
    finish = _held_back(stage, story, finish)
    _extension(stage, story, case, finish)
    stage.later(story, finish, submit)


def _held_back(stage: Stage, story: Story, finish: datetime) -> datetime:
    """A unit that hugs deadlines submits in the last stretch of its allowed time."""
    habits = stage.habits
    if story.lead_unit not in habits.deadline_huggers or story.due_at is None:
        return finish
    low, high = habits.hug
    share = low + (high - low) * stage.dice.fraction()
    return max(finish, stage.now + (story.due_at - stage.now) * share)


def rework(stage: Stage, story: Story) -> None:
    """The same unit works on the case again (sent back, or rejected by the reporter)."""
    if story.urgency == "emergency":
        at = stage.wait(stage.habits.handling_emergency_minutes, minutes=True)
    else:
        at = stage.wait(stage.habits.rework_office, office=True)
    stage.later(story, at, submit)


def submit(stage: Stage, story: Story, attempt: int = 0) -> None:
    """The lead unit submits its result; if something still blocks it, it tries later."""
    assert story.lead_unit is not None
    unit = stage.district.cast.handler(story.lead_unit)
    late = story.due_at is not None and stage.now > story.due_at
    result = stage.dice.choice(wording.RESULTS)
    if stage.act(story, unit, "submit_result", result=result, **_after_photos(story)) is not None:
        story.late = late
        stage.later(story, stage.wait(stage.habits.review), review)
    elif attempt < _SUBMIT_RETRIES:
        stage.later(story, stage.after_office(2), partial(submit, attempt=attempt + 1))


def _after_photos(story: Story) -> dict[str, Any]:
    """The photo of the finished work the district asks for on grid cases: a reference
    to where the unit's app stored it, and the digest of its bytes."""
    if story.channel != "grid":
        return {}
    key = f"photos/{story.case_id}/after-{story.step}.jpg"
    digest = hashlib.sha256(key.encode()).hexdigest()
    return {"after_photos": [{"key": key, "content_type": "image/jpeg", "sha256": digest}]}


def review(stage: Stage, story: Story) -> None:
    """The dispatcher feeds the result back, or sends it back to the unit."""
    dispatcher = stage.district.cast.dispatcher
    if stage.dice.chance(stage.habits.send_back):
        reason = "结果不完整，请补充 the result is incomplete"
        if stage.act(story, dispatcher, "send_back", reason=reason) is not None:
            rework(stage, story)
    elif stage.act(story, dispatcher, "feedback", message="已办结 handled") is not None:
        stage.steps.await_answer(stage, story)


def _work_ends(stage: Stage, story: Story) -> datetime:
    habits = stage.habits
    if story.urgency == "emergency":
        return stage.wait(habits.handling_emergency_minutes, minutes=True)
    wait = habits.handling_office.get(story.urgency, habits.handling_office["normal"])
    return stage.wait(wait, office=True)


def _co_units(stage: Stage, story: Story, case: Case, finish: datetime) -> datetime:
    """Plan each active co-unit subtask; the result waits for the last of them."""
    for task in case.subtasks:
        if task.status == "active":
            done = _co_unit_done(stage, story, task.unit)
            finish = max(finish, done + timedelta(minutes=30))
    return finish


def _co_unit_done(stage: Stage, story: Story, unit: str) -> datetime:
    """Plan a co-unit's subtask; when it will be done (in office hours unless urgent)."""
    if story.urgency == "emergency":
        done = stage.wait(stage.habits.handling_emergency_minutes, minutes=True)
    else:
        done = stage.wait(stage.habits.co_unit_office, office=True)
    stage.later(story, done, partial(_complete_subtask, unit=unit))
    return done


def _complete_subtask(stage: Stage, story: Story, *, unit: str) -> None:
    """A co-unit reports its part done; subtasks that waited on it are planned now."""
    case = stage.act(
        story, stage.district.cast.handler(unit), "complete_subtask", moves=False, result="已配合"
    )
    for task in case.subtasks if case else ():
        if task.status == "active" and task.activated_at == stage.now:
            _co_unit_done(stage, story, task.unit)


def _information(stage: Stage, story: Story, finish: datetime) -> datetime:
    """Perhaps ask the reporter for information; the result moves by the pause."""
    habits, dice = stage.habits, stage.dice
    if not dice.chance(habits.ask_for_information):
        return finish
    asked = stage.now + (finish - stage.now) * 0.3
    answered = asked + timedelta(hours=dice.wait(habits.information))
    by = story.reporter
    if dice.chance(habits.information_unanswered):
        by = stage.district.cast.dispatcher
        answered = asked + timedelta(hours=24)
    assert story.lead_unit is not None
    unit = stage.district.cast.handler(story.lead_unit)
    question = "请提供具体位置和照片 please send the exact spot and a photo"
    ask = partial(_act, actor=unit, trigger="request_info", question=question)
    stage.later(story, asked, ask)
    answer = partial(_act, actor=by, trigger="provide_info", info="在东侧 on the east side")
    stage.later(story, answered, answer)
    return finish + (answered - asked)


def _extension(stage: Stage, story: Story, case: Case, finish: datetime) -> None:
    """A unit that will overrun often asks for more time before the due time."""
    due = story.due_at
    if case.deadline is None or due is None or finish <= due:
        return
    if not stage.dice.chance(stage.habits.extension_when_overrunning):
        return
    asked = stage.now + (due - stage.now) * (0.2 + 0.4 * stage.dice.fraction())
    duration = _asked_duration(case.deadline.limit, finish - due)
    stage.later(story, asked, partial(_ask_for_extension, duration=duration))


def _asked_duration(limit: Duration, overrun: timedelta) -> str:
    """Enough whole units of the clock's own unit to cover ``overrun`` (1 to 5)."""
    unit = Duration(Fraction(1), limit.unit).as_timedelta()
    amount = min(max(math.ceil(overrun / unit), 1), 5)
    return str(Duration(Fraction(amount), limit.unit, limit.working))


def _ask_for_extension(stage: Stage, story: Story, *, duration: str) -> None:
    assert story.lead_unit is not None
    unit = stage.district.cast.handler(story.lead_unit)
    reason = "需采购配件 parts must be ordered"
    asked = stage.act(
        story, unit, "request_extension", moves=False, duration=duration, reason=reason
    )
    if asked is not None:
        at = stage.wait(stage.habits.extension_decision_office, office=True)
        stage.later(story, at, _decide_extension)


def _decide_extension(stage: Stage, story: Story) -> None:
    cast = stage.district.cast
    decider = cast.dispatcher if story.extensions == 0 else cast.supervisor
    decider = cast.neutral(decider, story.lead_unit)
    if stage.dice.chance(stage.habits.extension_granted):
        if stage.act(story, decider, "approve_extension", moves=False) is not None:
            story.extensions += 1
    else:
        reason = "请按期办结 please finish on time"
        stage.act(story, decider, "refuse_extension", moves=False, reason=reason)


def _act(stage: Stage, story: Story, *, actor: Actor, trigger: str, **payload: str) -> None:
    stage.act(story, actor, trigger, moves=False, **payload)
