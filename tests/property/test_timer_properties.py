"""Timers under random calendars, limits and clock steps, with late and repeated ticks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from closedloop import Engine, Workflow
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.calendars import HolidayTable, NaturalCalendar, WorkingCalendar
from closedloop.engine.ports import WorkCalendar
from closedloop.testing import ManualClock
from closedloop.testing.definitions import in_climbing_order
from tests.cast import CITIZEN

START = datetime(2026, 3, 2, tzinfo=UTC)


def loop(limit: str, warn_at: float, ladder: list[str]) -> Workflow:
    """One waiting state timed by the clock under test, closed by its clerk."""
    return Workflow.from_dict(
        {
            "name": "timed",
            "roles": [{"name": "clerk", "sees_all": True}],
            "clocks": [
                {
                    "name": "wait",
                    "duration": limit,
                    "warn_at": warn_at,
                    "escalation": [{"after": after} for after in ladder],
                }
            ],
            "states": [
                {"name": "open", "initial": True, "owner": "clerk", "clock": "wait"},
                {"name": "done", "final": True},
            ],
            "transitions": [{"name": "finish", "from": ["open"], "to": "done", "roles": ["clerk"]}],
        }
    )


durations = st.builds(
    lambda n, unit: f"{n} {unit}",
    st.integers(1, 12),
    st.sampled_from(["hours", "working hours", "working days", "minutes"]),
)
holidays = st.sets(st.dates(date(2026, 3, 1), date(2027, 12, 31)), max_size=40)


@st.composite
def calendars(draw: st.DrawFn) -> WorkCalendar:
    if draw(st.booleans()):
        return NaturalCalendar()
    table = HolidayTable(years=range(2026, 2028), holidays=sorted(draw(holidays)))
    windows = draw(st.sampled_from([None, ((time(8, 30), time(12)), (time(13, 30), time(17, 30)))]))
    zone = draw(st.sampled_from(["Asia/Shanghai", "UTC", "America/Chicago"]))
    return WorkingCalendar("work", timezone=zone, days=table, windows=windows)


steps = st.lists(st.tuples(st.integers(1, 60 * 24 * 5), st.integers(0, 2)), min_size=1, max_size=25)


@given(
    limit=durations,
    warn_at=st.floats(0.1, 0.9),
    ladder=st.lists(durations, max_size=2).map(lambda rungs: in_climbing_order(rungs, str)),
    calendar=calendars(),
    clock_steps=steps,
)
def test_timers_fire_once_never_early_and_in_order(
    limit: str, warn_at: float, ladder: list[str], calendar: WorkCalendar, clock_steps: list[Any]
) -> None:
    clock = ManualClock(START)
    engine = Engine(
        loop(limit, warn_at, ladder), store=InMemoryStore(), clock=clock, calendar=calendar
    )
    case = engine.report(CITIZEN, description="timed")
    assert case.deadline is not None
    for minutes, ticks in clock_steps:  # late ticks, missed ticks, repeated ticks
        clock.advance(minutes=minutes)
        for _ in range(ticks):
            engine.tick()
    clock.advance(days=400)  # long enough for every rung of the ladder
    engine.tick()
    fired = [e for e in engine.history(case.id) if e.actor == "system"]
    keys = [(e.trigger, e.payload.get("level"), e.payload["due_at"]) for e in fired]
    assert len(keys) == len(set(keys)), "a timer fired twice"
    for event in fired:
        assert event.at >= datetime.fromisoformat(event.payload["due_at"]), "fired early"
    expected = ["breach"] + ["escalate"] * len(ladder)
    if case.deadline.warn_at < case.deadline.due_at:
        expected.insert(0, "warn")
    assert [e.trigger for e in fired] == expected
    assert [e.payload.get("level") for e in fired if e.trigger == "escalate"] == list(
        range(1, len(ladder) + 1)
    )
    assert engine.verify(case.id).ok
