"""Properties of working calendars over random holidays, windows, starts and durations."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from closedloop.engine.calendars import Window, WorkingCalendar
from closedloop.engine.calendars.holiday_table import HolidayTable
from closedloop.engine.durations import Duration, Unit

# Zones without daylight saving: there wall time and elapsed time agree, so the
# measure and its inverse are exact everywhere.
STEADY_ZONES = ["UTC", "Asia/Shanghai", "Asia/Kolkata", "Asia/Tokyo"]
# Zones whose clock skips and repeats an hour; a count cannot end inside the skipped
# hour, so only the inequalities are asked of them.
SHIFTING_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney"]
YEARS = range(2025, 2028)
FIRST_DAY, LAST_DAY = date(YEARS[0], 1, 1), date(YEARS[-1], 12, 31)

days_in_years = st.dates(min_value=FIRST_DAY, max_value=LAST_DAY)


@st.composite
def windows(draw: st.DrawFn) -> tuple[Window, ...] | None:
    """None (whole days) or one to three sorted, non-overlapping daily windows."""
    count = draw(st.integers(min_value=0, max_value=3))
    if count == 0:
        return None
    edges = sorted(
        draw(st.sets(st.integers(0, 24 * 4 - 1), min_size=2 * count, max_size=2 * count))
    )
    quarter = [time(edge // 4, (edge % 4) * 15) for edge in edges]
    return tuple(zip(quarter[::2], quarter[1::2], strict=True))


@st.composite
def calendars(draw: st.DrawFn, zones: list[str]) -> WorkingCalendar:
    """A calendar with random holidays, make-up days, weekend and windows, 2025-2027.

    Days outside those years fall back to Monday-Friday, so no count runs out of data.
    """
    holidays = draw(st.sets(days_in_years, max_size=60))
    workdays = draw(st.sets(days_in_years, max_size=20)) - holidays
    weekend = draw(st.sets(st.integers(0, 6), max_size=3))
    table = HolidayTable(years=YEARS, holidays=holidays, workdays=workdays, weekend=weekend)
    return WorkingCalendar(
        "random",
        timezone=draw(st.sampled_from(zones)),
        days=table,
        windows=draw(windows()),
        fallback="weekdays",
    )


def starts(zones: list[str]) -> st.SearchStrategy[datetime]:
    return st.datetimes(
        min_value=datetime(YEARS[0], 1, 1),
        max_value=datetime(YEARS[-1], 12, 31),
        timezones=st.sampled_from([ZoneInfo(name) for name in zones]),
        allow_imaginary=False,
    )


@st.composite
def durations(draw: st.DrawFn) -> Duration:
    unit: Unit = draw(st.sampled_from(["minutes", "hours", "days"]))
    limit = {"minutes": 20_000, "hours": 800, "days": 300}[unit]
    amount = Fraction(draw(st.integers(0, limit * 4)), 4)
    return Duration(amount, unit, working=draw(st.booleans()))


amounts = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=150))
ALL_ZONES = STEADY_ZONES + SHIFTING_ZONES


def utc(moment: datetime) -> datetime:
    """Compare instants, not wall times (aware datetimes of one zone compare by wall)."""
    return moment.astimezone(UTC)


@given(calendars(ALL_ZONES), starts(ALL_ZONES), durations())
def test_a_due_time_is_never_before_its_start(
    calendar: WorkingCalendar, start: datetime, duration: Duration
) -> None:
    assert utc(calendar.add(start, duration)) >= utc(start)


@given(calendars(ALL_ZONES), starts(ALL_ZONES), durations(), durations())
def test_a_longer_duration_is_never_due_earlier(
    calendar: WorkingCalendar, start: datetime, first: Duration, second: Duration
) -> None:
    shorter, longer = sorted([first.amount, second.amount])
    short = Duration(shorter, first.unit, first.working)
    long = Duration(longer, first.unit, first.working)

    assert utc(calendar.add(start, short)) <= utc(calendar.add(start, long))


@given(calendars(ALL_ZONES), starts(ALL_ZONES), durations())
def test_the_warning_at_70_percent_precedes_the_due_time(
    calendar: WorkingCalendar, start: datetime, duration: Duration
) -> None:
    assert utc(calendar.add(start, duration.scaled(0.7))) <= utc(calendar.add(start, duration))


@given(calendars(STEADY_ZONES), starts(ALL_ZONES), amounts)
def test_advance_is_the_inverse_of_working_time(
    calendar: WorkingCalendar, start: datetime, amount: timedelta
) -> None:
    assert calendar.working_time(start, calendar.advance(start, amount)) == amount


@given(calendars(SHIFTING_ZONES), starts(ALL_ZONES), amounts)
def test_advance_reaches_at_least_the_amount_across_daylight_saving(
    calendar: WorkingCalendar, start: datetime, amount: timedelta
) -> None:
    due = calendar.advance(start, amount)

    assert utc(due) >= utc(start)
    assert calendar.working_time(start, due) >= amount


@given(calendars(ALL_ZONES), starts(ALL_ZONES), starts(ALL_ZONES))
def test_advancing_by_the_measured_time_does_not_overshoot(
    calendar: WorkingCalendar, first: datetime, second: datetime
) -> None:
    start, end = sorted([first, second], key=utc)

    measured = calendar.working_time(start, end)

    assert utc(calendar.advance(start, measured)) <= utc(end)


@given(calendars(STEADY_ZONES), starts(ALL_ZONES), starts(ALL_ZONES), starts(ALL_ZONES))
def test_working_time_adds_up_and_never_exceeds_elapsed_time(
    calendar: WorkingCalendar, first: datetime, second: datetime, third: datetime
) -> None:
    a, b, c = sorted([first, second, third], key=utc)

    whole = calendar.working_time(a, c)

    assert whole == calendar.working_time(a, b) + calendar.working_time(b, c)
    assert whole <= utc(c) - utc(a)
