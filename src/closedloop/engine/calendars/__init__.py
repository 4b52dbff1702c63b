"""Calendars that count deadlines: natural time, working days, working hours.

See ``docs/calendars.md`` for the counting conventions. Holiday data comes from
sources: ``ChineseHolidays`` (the ``cn`` extra), ``CountryHolidays`` (the ``holidays``
extra) and ``HolidayTable`` (data the host supplies), layered with ``LayeredHolidays``.
``chinese_office_hours()`` is a ready-made office-hours calendar on Chinese working days.
"""

from closedloop.engine.calendars.holiday_table import HolidayTable
from closedloop.engine.calendars.office import OFFICE_HOURS, chinese_office_hours
from closedloop.engine.calendars.sources import (
    ChineseHolidays,
    CountryHolidays,
    HolidaySource,
    LayeredHolidays,
)
from closedloop.engine.calendars.working import Fallback, NaturalCalendar, Window, WorkingCalendar

__all__ = [
    "OFFICE_HOURS",
    "ChineseHolidays",
    "CountryHolidays",
    "Fallback",
    "HolidaySource",
    "HolidayTable",
    "LayeredHolidays",
    "NaturalCalendar",
    "Window",
    "WorkingCalendar",
    "chinese_office_hours",
]
