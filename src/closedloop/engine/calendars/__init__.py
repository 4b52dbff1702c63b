"""Calendars that count deadlines: natural time, working days, working hours.

See ``docs/calendars.md`` for the counting conventions. Holiday data comes from
sources: ``ChineseHolidays`` (the ``cn`` extra), ``CountryHolidays`` (the ``holidays``
extra) and ``HolidayTable`` (data the host supplies), layered with ``LayeredHolidays``.
"""

from closedloop.engine.calendars.sources import (
    ChineseHolidays,
    CountryHolidays,
    HolidaySource,
    LayeredHolidays,
)
from closedloop.engine.calendars.tables import HolidayTable
from closedloop.engine.calendars.working import Fallback, NaturalCalendar, Window, WorkingCalendar

__all__ = [
    "ChineseHolidays",
    "CountryHolidays",
    "Fallback",
    "HolidaySource",
    "HolidayTable",
    "LayeredHolidays",
    "NaturalCalendar",
    "Window",
    "WorkingCalendar",
]
