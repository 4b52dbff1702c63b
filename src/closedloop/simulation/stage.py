"""The stage every simulated action plays on: the agenda, the engine, the clock, notes.

Actions are scheduled on an :class:`Agenda` (a heap ordered by time, then by the order
they were scheduled, so a run is reproducible). An action about a case is tied to the
simulation's view of that case (its :attr:`Story.step`): once the simulation has moved
the case on, actions planned for the earlier step are dropped unplayed.

Commands go through :meth:`Stage.act`. A command the engine refuses because the case
moved on (any :class:`~closedloop.errors.CaseError`: a guard, a state, a visibility, a
concurrent writer) is counted and skipped; every other error is a bug and propagates.

The parts of the loop lead into each other in a circle (a reopened case goes back to
dispatch, a rejected result back to its unit), so they do not import each other: each
hands a case on through the stage's :class:`Steps`, which the runner fills in.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from closedloop.engine.calendars import WorkingCalendar
from closedloop.engine.model import Actor, Case
from closedloop.engine.service import Engine
from closedloop.errors import CaseError
from closedloop.simulation.district import District
from closedloop.simulation.habits import Dice, Habits, Wait
from closedloop.testing.clock import ManualClock

Action = Callable[[], None]
"""Something that happens at a time on the agenda."""
Play = Callable[["Stage", "Story"], None]
"""Something someone does about a case: ``play(stage, story)``."""
Follow = Callable[["Stage", "Story", Case], None]
"""What follows a command, given the case it left: ``follow(stage, story, case)``."""


@dataclass(frozen=True, slots=True)
class Steps:
    """The steps where one part of the loop hands a case on to another.

    Attributes:
        dispatch: The dispatcher dispatches a classified (or reopened) case.
        start_handling: The lead unit has signed for the case and plans its work.
        rework: The same unit works on the case again.
        await_answer: The result was fed back; the case waits for confirmation.
    """

    dispatch: Play
    start_handling: Follow
    rework: Play
    await_answer: Play


class Agenda:
    """Future actions, earliest first; ties in the order they were scheduled."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, Action]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, at: datetime, action: Action) -> None:
        """Schedule ``action`` at ``at``."""
        heapq.heappush(self._heap, (at, next(self._order), action))

    def pop_before(self, limit: datetime) -> tuple[datetime, Action] | None:
        """The earliest action due before ``limit``, removed; ``None`` if there is none."""
        if not self._heap or self._heap[0][0] >= limit:
            return None
        at, _, action = heapq.heappop(self._heap)
        return at, action


@dataclass(slots=True)
class Story:
    """The simulation's own notes on one case: what it really is and where it stands.

    Attributes:
        case_id: The engine's id of the case.
        reporter: Who reported it.
        grid: Where.
        category: What it really is (the dispatcher may classify it otherwise).
        urgency: How urgent it really is.
        kind: ``matter`` (to be handled), ``question`` or ``out_of_scope``.
        silent: The reporter will not answer the confirmation request.
        duplicate_of: The case this one repeats, if any.
        channel: How it was reported (``grid`` for a grid worker's patrol).
        step: Bumped whenever the simulation moves the case on.
        lead_unit: The unit the case is with.
        truth: The unit the responsibility list gives for the real category.
        due_at: The due time of the handling clock, as last seen.
        late: The result was submitted after the handling clock's due time.
        gap: Only the list's fallback owner covers the case.
        final: An arbiter decided the unit; it can no longer return the case.
        rejected_return: A return by the current unit was refused once.
        extensions: Extensions granted so far.
    """

    case_id: str
    reporter: Actor
    grid: str
    category: str
    urgency: str
    kind: str = "matter"
    silent: bool = False
    duplicate_of: str | None = None
    channel: str = "hotline"
    step: int = 0
    lead_unit: str | None = None
    truth: str | None = None
    due_at: datetime | None = None
    late: bool = False
    gap: bool = False
    final: bool = False
    rejected_return: bool = False
    extensions: int = 0


@dataclass(slots=True)
class Stage:
    """Everything an action needs: the engine and its clock, the district, the dice.

    Attributes:
        steps: Where each part of the loop hands a case on.
        engine: The engine under simulation.
        clock: Its manual clock, moved by the simulation.
        calendar: The working calendar (office hours are its windows).
        district: The district simulated.
        habits: How people behave.
        dice: The seeded randomness.
        agenda: The future actions.
        stories: Every case's notes, in the order the cases were reported.
        applied: Commands applied, by trigger.
        refused: Commands refused because the case had moved on, by error type.
    """

    steps: Steps
    engine: Engine
    clock: ManualClock
    calendar: WorkingCalendar
    district: District
    habits: Habits
    dice: Dice
    agenda: Agenda = field(default_factory=Agenda)
    stories: list[Story] = field(default_factory=list)
    applied: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    @property
    def now(self) -> datetime:
        """The simulated instant."""
        return self.clock.now()

    def later(self, story: Story, at: datetime, action: Play) -> None:
        """Play ``action`` on ``story`` at ``at``, unless the case has moved on by then."""
        step = story.step

        def play() -> None:
            if story.step == step:
                action(self, story)

        self.agenda.push(max(at, self.now), play)

    def act(
        self,
        story: Story,
        actor: Actor,
        trigger: str,
        fields: Mapping[str, Any] | None = None,
        /,
        *,
        moves: bool = True,
        **payload: Any,
    ) -> Case | None:
        """Fire ``trigger`` as ``actor``; ``None`` (counted) when the engine refuses it.

        The first four arguments are positional, so a trigger's field may have any name:
        ``story``, ``actor`` and ``trigger`` are fields when given as keywords, and a
        field named ``moves`` goes in ``fields``.

        Args:
            story: The case's notes.
            actor: Who acts.
            trigger: The trigger to fire.
            fields: The trigger's fields, as a mapping (any names).
            moves: The command moves the case on (drops actions planned before it).
            payload: The trigger's fields, as keywords (``moves`` aside), with ``fields``.

        Raises:
            TypeError: a field is given both in ``fields`` and as a keyword.
        """
        if fields:
            twice = sorted(fields.keys() & payload.keys())
            if twice:
                raise TypeError(f"act() got the field {twice[0]!r} in fields and as a keyword")
            payload = {**fields, **payload}
        try:
            case = self.engine.trigger(story.case_id, trigger, by=actor, **payload)
        except CaseError as refusal:
            self.refused[type(refusal).__name__] += 1
            return None
        self.applied[trigger] += 1
        if moves:
            story.step += 1
        story.lead_unit = case.lead_unit
        if case.state == "in_progress" and case.deadline is not None:
            story.due_at = case.deadline.due_at
        return case

    # -- when things happen --------------------------------------------------------------

    def after(self, hours: float) -> datetime:
        """``hours`` of elapsed time from now."""
        return self.now + timedelta(hours=hours)

    def after_office(self, hours: float) -> datetime:
        """``hours`` of office time from now (nights, weekends and holidays skipped)."""
        return self.calendar.advance(self.now, timedelta(hours=hours))

    def wait(self, wait: Wait, *, office: bool = False, minutes: bool = False) -> datetime:
        """When a log-normal wait drawn now ends (in minutes, or in office hours)."""
        amount = self.dice.wait(wait) / (60 if minutes else 1)
        return self.after_office(amount) if office else self.after(amount)
