"""Work calendars: how deadlines count time (the ``WorkCalendar`` port of ``ports``).

:class:`NaturalCalendar` counts elapsed time. :class:`WorkingCalendar` counts working
days and working hours in a named IANA time zone, from a holiday source (see
:mod:`closedloop.engine.calendars.sources`). Both are pure: no wall clock, no I/O.

Conventions of :meth:`WorkingCalendar.add`:

* A natural duration (``2 hours``) is elapsed time on every calendar.
* ``N working days`` count from the start of the local day after ``start``: the due
  time is the end of the N-th working day after the start date - 24:00 local (the next
  day's 00:00), or the end of that day's last window when the calendar has windows. So
  a case reported at any time on a Wednesday with ``1 working day`` is due at the end
  of the next working day.
* A fraction of a working day is that fraction of a working day's working time:
  ``2.5 working days`` end half-way through the working time of the third working day
  (12:00 without windows). ``0 working days`` is ``start`` itself.
* ``working hours`` and ``working minutes`` advance from ``start`` through working time:
  the windows of working days, or whole working days when there are no windows.

:meth:`WorkingCalendar.working_time` measures the working time in ``[start, end)``
(a whole working day counts 24 hours when there are no windows) and
:meth:`WorkingCalendar.advance` is its inverse; the engine uses the pair to move a due
time by paused time.

Time is counted on the local wall clock of the calendar's zone, so a working day is 24
hours even when daylight saving makes it 23 or 25. On such a day the hour that the
clock repeats counts once, and a count that ends in the hour the clock skips ends when
the clock jumps.

Coverage: a day the holiday source has no data for raises
:class:`~closedloop.errors.CalendarNotCovered`, unless the calendar was built with
``fallback="weekdays"`` (Monday to Friday working). Days answered by the fallback are
reported by :meth:`WorkingCalendar.fallback_days`, for the engine to record on the case.
A table the host supplies takes precedence over a package for the years (and days) it
covers when layered in front of it: ``HolidayTable.from_yaml(path).over(ChineseHolidays())``.
A count asks only about days whose working time it needs.
"""

from __future__ import annotations

import copy
import itertools
import math
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from fractions import Fraction
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from closedloop.engine.calendars.local_time import LocalTimeline, require_aware
from closedloop.engine.calendars.sources import HolidaySource
from closedloop.engine.durations import Duration
from closedloop.errors import CalendarNotCovered, ValidationError

Fallback = Literal["weekdays"]
"""The fallback policies a :class:`WorkingCalendar` accepts for days without data."""

Window = tuple[time, time]
"""A daily working window, start and end in local time."""

_DAY = timedelta(days=1)
_ZERO = timedelta(0)
_MICROSECOND = timedelta(microseconds=1)


def _not_negative(amount: timedelta, what: str) -> None:
    if amount < _ZERO:
        raise ValidationError([(what, f"must not be negative, got {amount}")], subject=what)


class NaturalCalendar:
    """Natural time: every duration is elapsed time and all time counts.

    Results keep the time zone of ``start``.

    Args:
        timezone: An IANA zone in which to show this calendar's due times to people (in
            notification texts); it does not change any count. UTC when not given.

    Raises:
        ValidationError: the zone is unknown.
    """

    def __init__(self, timezone: str | None = None) -> None:
        self._zone: tzinfo = UTC
        if timezone is not None:
            problems: list[tuple[str, str]] = []
            zone = _zone(timezone, problems)
            if zone is None:
                raise ValidationError(problems, subject="natural calendar")
            self._zone = zone

    @property
    def timezone(self) -> tzinfo:
        """The zone due times are shown in (UTC unless one was given)."""
        return self._zone

    @property
    def name(self) -> str:
        """``"natural"``."""
        return "natural"

    def add(self, start: datetime, duration: Duration) -> datetime:
        """``start`` plus the duration's natural length (a working day counts 24 hours).

        Raises:
            NaiveDatetime: ``start`` has no time zone.
            ValidationError: the duration is negative.
        """
        length = duration.as_timedelta()
        _not_negative(length, "duration")
        return self.advance(start, length)

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        """The elapsed time from ``start`` to ``end``; zero if ``end`` is not later.

        Raises:
            NaiveDatetime: ``start`` or ``end`` has no time zone.
        """
        begin = require_aware(start, "start").astimezone(UTC)
        finish = require_aware(end, "end").astimezone(UTC)
        return max(finish - begin, _ZERO)

    def advance(self, start: datetime, amount: timedelta) -> datetime:
        """``start`` plus ``amount`` of elapsed time.

        Raises:
            NaiveDatetime: ``start`` has no time zone.
            ValidationError: ``amount`` is negative.
        """
        require_aware(start, "start")
        _not_negative(amount, "amount")
        return (start.astimezone(UTC) + amount).astimezone(start.tzinfo)

    def fallback_days(self, start: datetime, end: datetime) -> tuple[date, ...]:
        """Always empty: natural time needs no holiday data."""
        require_aware(start, "start")
        require_aware(end, "end")
        return ()


class WorkingCalendar:
    """Working days and hours in one time zone, from a holiday source.

    See the module docstring for how durations are counted.

    Args:
        name: Recorded on cases and audit events, for example ``"cn-gov-hours"``.
        timezone: An IANA zone name, for example ``"Asia/Shanghai"``.
        days: Which days are working days (:mod:`closedloop.engine.calendars.sources`).
        windows: Daily working windows in local time, such as
            ``((time(8, 30), time(12)), (time(13, 30), time(17, 30)))``; ``None``
            (the default) makes each working day count whole, 00:00 to 24:00.
        fallback: ``"weekdays"`` to treat days the source has no data for as working
            Monday to Friday (reported by :meth:`fallback_days`); ``None`` (the default)
            to raise :class:`~closedloop.errors.CalendarNotCovered` for them.

    Raises:
        ValidationError: the name is empty, the zone unknown, a window ends before it
            starts or overlaps another, or the fallback policy is unknown; ``errors``
            lists every problem.
    """

    def __init__(
        self,
        name: str,
        *,
        timezone: str,
        days: HolidaySource,
        windows: tuple[Window, ...] | None = None,
        fallback: Fallback | None = None,
    ) -> None:
        problems: list[tuple[str, str]] = []
        if not isinstance(name, str) or not name:
            problems.append(("name", "must be a non-empty string"))
        if not isinstance(days, HolidaySource):
            problems.append(("days", f"{days!r} is not a holiday source"))
        if fallback not in (None, "weekdays"):
            problems.append(("fallback", f"{fallback!r} is not a policy; use None or 'weekdays'"))
        zone = _zone(timezone, problems)
        spans = _spans(windows, problems)
        if problems:
            raise ValidationError(problems, subject=f"working calendar {name!r}")
        assert zone is not None
        self._name = name
        self._days = days
        self._fallback = fallback
        self._local = LocalTimeline(zone)
        self._spans = spans
        self._day_length = sum((end - begin for begin, end in spans), _ZERO)

    def __repr__(self) -> str:
        return (
            f"WorkingCalendar({self._name!r}, timezone={self.timezone.key!r}, "
            f"days={self._days.name!r}, windows={self._spans_text()}, "
            f"fallback={self._fallback!r})"
        )

    @property
    def name(self) -> str:
        """The name given at construction."""
        return self._name

    @property
    def timezone(self) -> ZoneInfo:
        """The zone whose local days and windows are counted; results are in it."""
        return self._local.zone

    @property
    def fallback(self) -> Fallback | None:
        """The fallback policy for days without data, or ``None``."""
        return self._fallback

    def with_fallback(self, fallback: Fallback | None) -> WorkingCalendar:
        """This calendar (same name, zone, days and windows) with another fallback policy.

        The engine counts a provisional deadline on ``with_fallback("weekdays")`` when
        the calendar itself has no data for a day the count needs.

        Raises:
            ValidationError: the policy is unknown.
        """
        if fallback not in (None, "weekdays"):
            raise ValidationError(
                [("fallback", f"{fallback!r} is not a policy; use None or 'weekdays'")],
                subject=f"working calendar {self._name!r}",
            )
        other = copy.copy(self)
        other._fallback = fallback
        return other

    def add(self, start: datetime, duration: Duration) -> datetime:
        """The due instant of ``duration`` from ``start`` (see the module docstring).

        Raises:
            NaiveDatetime: ``start`` has no time zone.
            ValidationError: the duration is negative.
            CalendarNotCovered: the count reaches a day without data and no fallback.
        """
        require_aware(start, "start")
        _not_negative(duration.as_timedelta(), "duration")
        if not duration.working:
            return (start.astimezone(UTC) + duration.as_timedelta()).astimezone(self.timezone)
        wall = self._local.wall(start)
        if duration.unit == "days":
            due = self._add_days(wall, duration.amount)
        else:
            due = self._advance_wall(wall, duration.as_timedelta())
        return self._local.instant(due, not_before=start)

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        """The working time in ``[start, end)``; zero if ``end`` is not later.

        Raises:
            NaiveDatetime: ``start`` or ``end`` has no time zone.
            CalendarNotCovered: a day with working time in the interval has no data
                and there is no fallback.
        """
        begin = self._local.wall(require_aware(start, "start"))
        finish = self._local.wall(require_aware(end, "end"))
        total = _ZERO
        day = begin.date()
        while datetime.combine(day, time()) < finish:
            for low, high in self._overlaps(day, begin, finish):
                total += high - low
            day += _DAY
        return total

    def advance(self, start: datetime, amount: timedelta) -> datetime:
        """The earliest instant with ``amount`` of working time after ``start``.

        Raises:
            NaiveDatetime: ``start`` has no time zone.
            ValidationError: ``amount`` is negative.
            CalendarNotCovered: the count reaches a day without data and no fallback.
        """
        require_aware(start, "start")
        _not_negative(amount, "amount")
        due = self._advance_wall(self._local.wall(start), amount)
        return self._local.instant(due, not_before=start)

    def fallback_days(self, start: datetime, end: datetime) -> tuple[date, ...]:
        """The local days from ``start`` to ``end`` the fallback policy answered.

        Every local day that ``[start, end)`` touches and the holiday source has no data
        for, in order; empty when the calendar has no fallback. Call it with a case's
        start and due time to record which days were not covered by real data.

        Raises:
            NaiveDatetime: ``start`` or ``end`` has no time zone.
        """
        begin = self._local.wall(require_aware(start, "start"))
        finish = self._local.wall(require_aware(end, "end"))
        if self._fallback is None:
            return ()
        found: list[date] = []
        day = begin.date()
        while datetime.combine(day, time()) < finish:
            if self._days.is_working_day(day) is None:
                found.append(day)
            day += _DAY
        return tuple(found)

    # -- counting on the local wall clock ---------------------------------------------

    def _spans_text(self) -> str:
        if self._spans == ((_ZERO, _DAY),):
            return "None"
        shown = ", ".join(f"{_clock_text(low)}-{_clock_text(high)}" for low, high in self._spans)
        return f"({shown})"

    def _is_working(self, day: date) -> bool:
        answer = self._days.is_working_day(day)
        if answer is not None:
            return answer
        if self._fallback == "weekdays":
            return day.weekday() < 5
        raise CalendarNotCovered(self._name, day.isoformat(), self._days.coverage)

    def _overlaps(
        self, day: date, begin: datetime, finish: datetime
    ) -> list[tuple[datetime, datetime]]:
        """The parts of ``day``'s working spans inside ``[begin, finish)``.

        The holiday source is asked only when a span overlaps, so a count that merely
        touches an uncovered day does not fail.
        """
        midnight = datetime.combine(day, time())
        parts = [
            (max(midnight + low, begin), min(midnight + high, finish)) for low, high in self._spans
        ]
        parts = [(low, high) for low, high in parts if low < high]
        return parts if parts and self._is_working(day) else []

    def _advance_wall(self, wall: datetime, amount: timedelta) -> datetime:
        remaining = amount
        day = wall.date()
        while remaining > _ZERO:
            for low, high in self._overlaps(day, wall, datetime.max):
                if remaining <= high - low:
                    return low + remaining
                remaining -= high - low
            day += _DAY
        return wall

    def _add_days(self, wall: datetime, amount: Fraction) -> datetime:
        if amount == 0:
            return wall
        whole = math.ceil(amount) - 1
        day = wall.date()
        for _ in range(whole + 1):
            day += _DAY
            while not self._is_working(day):
                day += _DAY
        share = round((amount - whole) * (self._day_length // _MICROSECOND))
        return self._advance_wall(datetime.combine(day, time()), share * _MICROSECOND)


def _zone(name: str, problems: list[tuple[str, str]]) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        problems.append(("timezone", f"{name!r} is not an IANA time zone name"))
        return None


def _spans(
    windows: tuple[Window, ...] | None, problems: list[tuple[str, str]]
) -> tuple[tuple[timedelta, timedelta], ...]:
    """The working spans of a day as offsets from local midnight."""
    if windows is None:
        return ((_ZERO, _DAY),)
    if not windows:
        problems.append(("windows", "give at least one window, or None for whole days"))
    spans: list[tuple[timedelta, timedelta]] = []
    for index, window in enumerate(windows):
        begin, end = window
        if begin.tzinfo is not None or end.tzinfo is not None:
            problems.append((f"windows[{index}]", "times are local; give them no tzinfo"))
        elif end <= begin:
            problems.append((f"windows[{index}]", f"ends at {end}, not after it starts at {begin}"))
        else:
            spans.append((_offset(begin), _offset(end)))
    spans.sort()
    problems.extend(
        ("windows", f"window from {_clock_text(later[0])} overlaps the one before it")
        for earlier, later in itertools.pairwise(spans)
        if later[0] < earlier[1]
    )
    return tuple(spans)


def _offset(moment: time) -> timedelta:
    return timedelta(
        hours=moment.hour,
        minutes=moment.minute,
        seconds=moment.second,
        microseconds=moment.microsecond,
    )


def _clock_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
