"""Reports coming in, and the dispatcher's first look: classify, dispatch or close.

Citizens report around the clock at the hourly rates of :class:`Habits`, fewer at
weekends; grid workers report from their patrols in office hours, and fix some matters
on the spot. The dispatcher merges duplicates it spots, answers questions, rejects
what is not a public matter, and classifies the rest (sometimes wrongly) before
dispatching by the responsibility list.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import partial

from closedloop.engine.model import Actor
from closedloop.simulation import wording
from closedloop.simulation.stage import Stage, Story

_RECENT = 40
"""How many recent citizen reports a duplicate may repeat."""


def schedule_hour(stage: Stage, start: datetime) -> None:
    """Put the reports of the hour beginning at ``start`` on the agenda."""
    local = start.astimezone(stage.district.time_zone)
    working = stage.calendar.working_time(start, start + timedelta(hours=1)) > timedelta(0)
    working_day = _working_day(stage, start)
    rate = stage.habits.citizens_per_hour[local.hour]
    if not working_day:
        rate *= stage.habits.weekend_factor
    for _ in range(stage.dice.count(rate)):
        at = start + timedelta(hours=stage.dice.fraction())
        stage.agenda.push(at, partial(citizen_reports, stage))
    if not working:
        return
    for worker, grids in stage.district.cast.grid_workers.items():
        for _ in range(stage.dice.count(stage.habits.patrol_per_office_hour)):
            at = start + timedelta(hours=stage.dice.fraction())
            stage.agenda.push(at, partial(grid_worker_reports, stage, worker, grids))


def _working_day(stage: Stage, start: datetime) -> bool:
    day = start.astimezone(stage.district.time_zone).replace(hour=0, minute=0)
    return stage.calendar.working_time(day, day + timedelta(days=1)) > timedelta(0)


def citizen_reports(stage: Stage) -> None:
    """A citizen reports a matter (or asks a question, or repeats a recent report)."""
    dice, habits = stage.dice, stage.habits
    number = len(stage.stories) + 1
    citizen = Actor(f"citizen-{number:05d}")
    repeated = _recent(stage) if dice.chance(habits.duplicate) else None
    grid = repeated.grid if repeated else dice.choice(stage.district.grids)
    category = repeated.category if repeated else dice.pick(_mix(stage, habits.citizen_mix))
    story = Story("", citizen, grid, category, dice.pick(habits.urgencies))
    story.duplicate_of = repeated.case_id if repeated else None
    if dice.chance(habits.question):
        story.kind = "question"
        text = dice.choice(wording.QUESTIONS)
    elif dice.chance(habits.out_of_scope):
        story.kind = "out_of_scope"
        text = dice.choice(wording.OUT_OF_SCOPE)
    else:
        text = _description(stage, category, grid)
    story.silent = dice.chance(habits.reporter_silent)
    contact = {"name": f"市民{number}", "phone": "139" + dice.digits(8)}
    channel = dice.choice(("hotline", "hotline", "hotline", "app", "wechat"))
    case = stage.engine.report(
        citizen, description=text, location={"area": grid}, channel=channel, contact=contact
    )
    story.case_id = case.id
    stage.applied["report"] += 1
    stage.stories.append(story)
    stage.later(story, stage.wait(habits.triage_minutes, minutes=True), triage)
    if dice.chance(habits.withdraw):
        stage.agenda.push(stage.wait((6.0, 1.0)), partial(_withdraw, stage, story))


def grid_worker_reports(stage: Stage, worker: Actor, grids: tuple[str, ...]) -> None:
    """A grid worker on patrol reports a matter, and fixes some on the spot."""
    dice, habits = stage.dice, stage.habits
    grid = dice.choice(grids)
    category = dice.pick(_mix(stage, habits.patrol_mix))
    case = stage.engine.report(
        worker,
        description=_description(stage, category, grid),
        location={"area": grid},
        category=category,
        channel="grid",
    )
    story = Story(case.id, worker, grid, category, dice.pick(habits.urgencies), channel="grid")
    stage.applied["report"] += 1
    stage.stories.append(story)
    fixable = category in habits.on_the_spot_categories and story.urgency == "normal"
    if fixable and dice.chance(habits.on_the_spot):
        stage.later(story, stage.wait((0.4, 0.5)), _fix_on_the_spot)
    else:
        stage.later(story, stage.wait(habits.triage_minutes, minutes=True), triage)


def _fix_on_the_spot(stage: Stage, story: Story) -> None:
    result = stage.dice.choice(wording.RESULTS)
    worker = story.reporter
    fixed = stage.act(story, worker, "resolve_on_spot", result=result, category=story.category)
    if fixed is not None:
        stage.steps.await_answer(stage, story)


def triage(stage: Stage, story: Story) -> None:
    """The dispatcher's first look: merge, answer, reject, or classify and dispatch."""
    dice, habits, dispatcher = stage.dice, stage.habits, stage.district.cast.dispatcher
    if story.duplicate_of and dice.chance(habits.duplicate_spotted):
        merged = stage.act(
            story, dispatcher, "merge", duplicate_of=story.duplicate_of, reason="重复诉求"
        )
        if merged is not None:
            return  # otherwise (the earlier case has closed) it is handled on its own
    if story.kind == "out_of_scope":
        stage.act(story, dispatcher, "reject", reason="不属于受理范围 not a public matter")
    elif story.kind == "question":
        answered = stage.act(story, dispatcher, "answer", answer="已电话答复 answered by phone")
        if answered is not None:
            stage.steps.await_answer(stage, story)
    else:
        category = story.category
        if dice.chance(habits.misclassify):
            category = dice.choice([c for c in _leaves(stage) if c != story.category])
        filed = stage.act(story, dispatcher, "classify", category=category, urgency=story.urgency)
        if filed is not None:
            at = stage.wait(habits.dispatch_minutes, minutes=True)
            stage.later(story, at, stage.steps.dispatch)


def _withdraw(stage: Stage, story: Story) -> None:
    stage.act(story, story.reporter, "cancel", reason="问题已自行解决 sorted out myself")


def _recent(stage: Stage) -> Story | None:
    recent = [s for s in stage.stories[-_RECENT:] if s.kind == "matter" and s.case_id]
    return recent[int(stage.dice.fraction() * len(recent))] if recent else None


def _mix(stage: Stage, mix: Mapping[str, float]) -> dict[str, float]:
    """The weights of the district's categories (uniform when ``mix`` names none)."""
    leaves = _leaves(stage)
    chosen = {code: mix.get(code, 0.0) for code in leaves}
    return chosen if any(chosen.values()) else dict.fromkeys(leaves, 1.0)


def _leaves(stage: Stage) -> tuple[str, ...]:
    return stage.district.categories.leaves()


def _description(stage: Stage, category: str, grid: str) -> str:
    name = stage.district.categories.get(category).name
    detail = stage.dice.choice(wording.detail_choices(category))
    return wording.description(name, detail, stage.district.grid_name(grid))
