"""Running a simulated district: hour by hour, reports, actions, ticks and deliveries.

Each simulated hour the runner puts that hour's reports on the agenda, plays every
action due within the hour in time order (moving the manual clock to each), then
ticks the engine at the end of the hour (warnings, breaches, escalations) and delivers
the outbox. The same seed gives the same cases, the same audit trails and the same
numbers.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from closedloop import workflows
from closedloop.adapters.callback import CallbackNotifier
from closedloop.engine.calendars import chinese_office_hours
from closedloop.engine.ports import CaseStore
from closedloop.engine.service import Engine
from closedloop.errors import ValidationError
from closedloop.simulation import assignment, closing, handling, intake
from closedloop.simulation.district import District
from closedloop.simulation.habits import Dice, Habits
from closedloop.simulation.stage import Stage, Steps
from closedloop.testing.clock import ManualClock

START = datetime(2026, 3, 2, tzinfo=ZoneInfo("Asia/Shanghai"))
"""Where simulated time starts: Monday 2 March 2026, 00:00 in Shanghai (inside the
years the installed Chinese holiday tables cover)."""

STEPS = Steps(
    dispatch=assignment.dispatch,
    start_handling=handling.start,
    rework=handling.rework,
    await_answer=closing.await_answer,
)
"""Where each part of the loop hands a case on to the next."""

Progress = Callable[[int, int], None]
"""Told ``(hours simulated, hours in all)`` after every simulated hour."""


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What a run did.

    Attributes:
        seed: The seed it ran with.
        start: The first simulated instant.
        end: The last simulated instant (the final tick).
        case_ids: Every case reported, in order.
        applied: Commands applied (reports included), by trigger.
        refused: Commands the engine refused because the case had moved on, by error.
        timers: Warnings, breaches and escalations the ticks applied.
        delivered: Notifications delivered, by the event that caused them.
    """

    seed: int
    start: datetime
    end: datetime
    case_ids: tuple[str, ...]
    applied: Mapping[str, int]
    refused: Mapping[str, int]
    timers: int
    delivered: Mapping[str, int]

    @property
    def commands(self) -> int:
        """How many commands were applied."""
        return sum(self.applied.values())


class Simulation:
    """A district simulated on a store, with a manual clock and a seeded random source.

    Attributes:
        engine: The engine the simulation drives (its store holds the cases).
        clock: The manual clock the simulation moves.
        stage: The agenda, the per-case notes and the counts of commands.
        delivered: Notifications delivered (through a counting ``CallbackNotifier``),
            by the event that caused them.

    Args:
        store: Where the cases go (``SQLStore`` for the demo, ``InMemoryStore`` in tests).
        days: How many days to simulate.
        seed: The seed of every random draw.
        district: The district; the built-in Yunshan District by default.
        habits: How people behave; :class:`Habits` defaults by default.
        start: The first simulated instant.

    Raises:
        ValidationError: ``days`` is below 1.
    """

    def __init__(
        self,
        store: CaseStore,
        *,
        days: int = 30,
        seed: int = 0,
        district: District | None = None,
        habits: Habits | None = None,
        start: datetime = START,
    ) -> None:
        if days < 1:
            raise ValidationError([("days", f"must be at least 1, got {days}")], subject="days")
        self.district = district or District.load()
        self.days = days
        self.seed = seed
        self.start = start
        self.clock = ManualClock(start)
        self.delivered: Counter[str] = Counter()
        calendar = chinese_office_hours(self.district.time_zone.key)
        numbers = itertools.count(1)
        self.engine = Engine(
            workflows.standard(after_photo=["grid"]),
            store=store,
            clock=self.clock,
            calendar=calendar,
            responsibilities=self.district.duties,
            notifier=CallbackNotifier(lambda sent: self.delivered.update((sent.event,))),
            id_factory=lambda: f"case-{next(numbers):05d}",
            worker_id="simulation",
            seed=seed,
        )
        self.stage = Stage(
            STEPS, self.engine, self.clock, calendar, self.district, habits or Habits(), Dice(seed)
        )
        self._timers = 0

    @property
    def hours(self) -> int:
        """How many hours the run simulates."""
        return self.days * 24

    def run(self, progress: Progress | None = None) -> SimulationResult:
        """Simulate every hour, then return what happened.

        Raises:
            ClosedLoopError: anything but a refusal because the case moved on (a bug).
        """
        for hour in range(self.hours):
            self.play_hour(self.start + timedelta(hours=hour))
            if progress is not None:
                progress(hour + 1, self.hours)
        stage = self.stage
        return SimulationResult(
            seed=self.seed,
            start=self.start,
            end=self.clock.now(),
            case_ids=tuple(story.case_id for story in stage.stories),
            applied=dict(sorted(stage.applied.items())),
            refused=dict(sorted(stage.refused.items())),
            timers=self._timers,
            delivered=dict(sorted(self.delivered.items())),
        )

    def play_hour(self, begin: datetime) -> None:
        """Play the hour from ``begin``: its reports and actions, then a tick and deliveries."""
        stage, end = self.stage, begin + timedelta(hours=1)
        intake.schedule_hour(stage, begin)
        while (due := stage.agenda.pop_before(end)) is not None:
            at, action = due
            self.clock.set(at)
            action()
        self.clock.set(end)
        self._timers += self.engine.tick().applied
        self.engine.deliver()


def simulate(
    store: CaseStore,
    *,
    days: int = 30,
    seed: int = 0,
    district: District | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Simulate ``days`` of the district on ``store``; see :class:`Simulation`.

    Raises:
        ClosedLoopError: anything but a refusal because the case moved on (a bug).
    """
    simulation = Simulation(store, days=days, seed=seed, district=district)
    return simulation.run(progress)
