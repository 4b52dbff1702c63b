"""Holiday sources: which local days are working days, and for which days that is known.

A :class:`~closedloop.engine.calendars.WorkingCalendar` asks its source one question
per day: :meth:`HolidaySource.is_working_day`. The answer is ``True`` or ``False`` for a
day the source has data for, and ``None`` for a day outside its coverage - the calendar
then raises :class:`~closedloop.errors.CalendarNotCovered` or applies the fallback policy
the host chose. A source never guesses.

Sources:

* :class:`ChineseHolidays` - mainland China, from the ``chinesecalendar`` package (extra
  ``cn``), which knows statutory holidays and make-up working days (调休). It covers the
  years its installed tables hold.
* :class:`CountryHolidays` - any country of the ``holidays`` package (extra
  ``holidays``): that country's weekend and public holidays, over the years the package
  declares for it, or fewer if the host says so.
* :class:`~closedloop.engine.calendars.holiday_table.HolidayTable` - explicit data the host
  supplies (for example next year's official schedule), in code or from a YAML file.
* :class:`LayeredHolidays` - several sources, the first that has data for a day answers;
  ``table.over(ChineseHolidays())`` puts supplied data before a package.

Package sources import their package when constructed, not when this module is imported,
so the extras stay optional.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol, runtime_checkable

from closedloop.errors import MissingDependency, ValidationError


@runtime_checkable
class HolidaySource(Protocol):
    """Says whether a local day is a working day, for the days it has data for."""

    @property
    def name(self) -> str:
        """A short name, shown in errors and recorded with calendar names."""
        ...

    @property
    def coverage(self) -> str:
        """The days this source has data for, in words (for error messages)."""
        ...

    def is_working_day(self, day: date) -> bool | None:
        """Whether ``day`` is a working day; ``None`` when the source has no data for it."""
        ...


def _missing_package(package: str, extra: str) -> MissingDependency:
    return MissingDependency(package, extra, "this holiday source")


class ChineseHolidays:
    """Mainland China's working days, from the installed ``chinesecalendar`` tables.

    A day is a working day when the tables list it as a make-up working day, or when it
    is Monday to Friday and not a listed holiday. Coverage is every day of the years
    from the first to the last year of the tables' holidays - the same range
    ``chinesecalendar`` itself answers for - so upgrading the package extends it.

    Raises:
        MissingDependency: ``chinesecalendar`` is not installed.
    """

    def __init__(self) -> None:
        try:
            import chinese_calendar
        except ImportError as exc:
            raise _missing_package("chinesecalendar", "cn") from exc
        self._holidays: frozenset[date] = frozenset(chinese_calendar.holidays)
        self._workdays: frozenset[date] = frozenset(chinese_calendar.workdays)
        self._version = str(getattr(chinese_calendar, "__version__", "unknown"))
        years = [day.year for day in self._holidays]
        self._first_year = min(years)
        self._last_year = max(years)

    @property
    def name(self) -> str:
        """``"chinesecalendar"``."""
        return "chinesecalendar"

    @property
    def first_year(self) -> int:
        """The first year the installed tables cover."""
        return self._first_year

    @property
    def last_year(self) -> int:
        """The last year the installed tables cover; the next one needs supplied data."""
        return self._last_year

    @property
    def coverage(self) -> str:
        """The covered years and the package version."""
        return f"{self._first_year}-{self._last_year} (chinesecalendar {self._version})"

    def is_working_day(self, day: date) -> bool | None:
        """See :meth:`HolidaySource.is_working_day`."""
        if not self._first_year <= day.year <= self._last_year:
            return None
        if day in self._workdays:
            return True
        return day.weekday() < 5 and day not in self._holidays


class CountryHolidays:
    """A country's weekend and public holidays, from the ``holidays`` package.

    The package computes holidays from rules for every year in its range for the
    country (``start_year`` to ``end_year`` of the country class), and that range is
    the default coverage. Rules cannot know what a government announces year by year
    (make-up working days, one-off holidays), so for such countries narrow ``years``
    to the years whose schedule is published and supply the rest as a
    :class:`HolidayTable` (for China prefer :class:`ChineseHolidays`).

    Args:
        country: ISO 3166-1 alpha-2 code, for example ``"DE"``.
        subdiv: A subdivision code the package knows, for example ``"BY"``.
        years: The years to cover; must lie in the package's range for the country.

    Raises:
        MissingDependency: ``holidays`` is not installed.
        ValidationError: the package does not know the country or subdivision, or
            ``years`` is empty or reaches outside the package's range.
    """

    def __init__(
        self, country: str, *, subdiv: str | None = None, years: range | None = None
    ) -> None:
        try:
            import holidays
        except ImportError as exc:
            raise _missing_package("holidays", "holidays") from exc
        try:
            self._entity: Any = holidays.country_holidays(country, subdiv=subdiv)
        except NotImplementedError as exc:
            raise ValidationError([("country", str(exc))], subject="holiday source") from exc
        known = range(int(self._entity.start_year), int(self._entity.end_year) + 1)
        if years is not None and (
            len(years) == 0 or years[0] not in known or years[-1] not in known
        ):
            raise ValidationError(
                [("years", f"{years} is not within {known.start}-{known.stop - 1}")],
                subject="holiday source",
            )
        self._years = known if years is None else years
        self._name = f"holidays:{country}" + (f"-{subdiv}" if subdiv else "")

    @property
    def name(self) -> str:
        """``"holidays:<country>"`` or ``"holidays:<country>-<subdiv>"``."""
        return self._name

    @property
    def coverage(self) -> str:
        """The covered years."""
        return f"{self._years[0]}-{self._years[-1]} ({self._name})"

    def is_working_day(self, day: date) -> bool | None:
        """See :meth:`HolidaySource.is_working_day`."""
        if day.year not in self._years:
            return None
        return bool(self._entity.is_working_day(day))


class LayeredHolidays:
    """Several sources in order of precedence; the first with data for a day answers.

    Args:
        first: The source that takes precedence (usually a supplied table).
        rest: The sources consulted, in order, for days ``first`` does not cover.
    """

    def __init__(self, first: HolidaySource, *rest: HolidaySource) -> None:
        self._sources: tuple[HolidaySource, ...] = (first, *rest)

    @property
    def name(self) -> str:
        """The names of the layers joined with ``" over "``."""
        return " over ".join(source.name for source in self._sources)

    @property
    def coverage(self) -> str:
        """Every layer's coverage."""
        return "; ".join(source.coverage for source in self._sources)

    def is_working_day(self, day: date) -> bool | None:
        """See :meth:`HolidaySource.is_working_day`."""
        for source in self._sources:
            answer = source.is_working_day(day)
            if answer is not None:
                return answer
        return None
