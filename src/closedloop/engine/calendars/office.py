"""Office hours on mainland China's working days: a ready-made :class:`WorkingCalendar`.

Government offices in mainland China work 08:30-12:00 and 13:30-17:30 on working days
(Monday to Friday, minus public holidays, plus the make-up working days the State
Council announces). :func:`chinese_office_hours` builds that calendar under the name
``office-hours``, the name ``closedloop demo`` records on its cases and
``closedloop worker`` knows.
"""

from __future__ import annotations

from datetime import time

from closedloop.engine.calendars.holiday_table import HolidayTable
from closedloop.engine.calendars.sources import ChineseHolidays, HolidaySource, LayeredHolidays
from closedloop.engine.calendars.working import Window, WorkingCalendar
from closedloop.errors import MissingDependency

OFFICE_HOURS: tuple[Window, ...] = ((time(8, 30), time(12)), (time(13, 30), time(17, 30)))
"""The daily windows of an office day: 08:30-12:00 and 13:30-17:30 local time."""


def chinese_office_hours(
    timezone: str = "Asia/Shanghai", supplied: HolidaySource | None = None
) -> WorkingCalendar:
    """Office hours (:data:`OFFICE_HOURS`) on Chinese working days, named ``office-hours``.

    Working days come from ``chinesecalendar`` (the ``cn`` extra); days beyond its
    tables, or every day when it is not installed, count Monday to Friday as working
    days (``fallback="weekdays"``, recorded on the cases that use it, whose clocks are
    then provisional).

    Args:
        timezone: The IANA zone the windows are in.
        supplied: Holiday data of the host's (a ``HolidayTable`` of next year's
            schedule), in front of the package's tables: where it has data, it answers.

    Raises:
        ValidationError: the zone is unknown.
    """
    days = _working_days()
    return WorkingCalendar(
        "office-hours",
        timezone=timezone,
        days=days if supplied is None else LayeredHolidays(supplied, days),
        windows=OFFICE_HOURS,
        fallback="weekdays",
    )


def _working_days() -> HolidaySource:
    try:
        return ChineseHolidays()
    except MissingDependency:  # without the cn extra: plain weekdays, recorded as fallback
        return HolidayTable(name="weekdays", years=())
